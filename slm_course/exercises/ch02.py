"""Chapter 2 exercises (attention): masks, masked softmax, scaled scores, context vectors, heads,
and a sliding-window (local) causal mask, the causal mask's idea applied where the lesson did not go.

The learner writes each piece in ``solutions/02_attention.ipynb`` (the exercise copy); the expected
values come from :mod:`slm_course.attention`, the implementation the course's model uses.
"""
from __future__ import annotations

import torch

from slm_course.attention import (
    attention_scores,
    causal_mask,
    masked_softmax,
    merge_heads,
    scaled_dot_product,
    simple_self_attention,
    split_heads,
)
from slm_course.exercises.core import Case, Problem, call, random_tensor, show


def _causal_mask_cases() -> list[Case]:
    return [Case(f"causal_mask({n})", call(n), lambda n=n: causal_mask(n)) for n in (1, 2, 4, 7)]


def _masked_softmax_cases() -> list[Case]:
    scores = random_tensor(4, 4, seed=1)
    batch = random_tensor(2, 3, 5, 5, seed=2)  # (B, H, T, T): one (T, T) mask serves every batch and head
    padding = torch.tensor([[False, False, True], [False, False, True]])  # hide the last key (a pad token)
    wide = random_tensor(2, 3, seed=3) * 10
    far = torch.tensor([[100.0, 0.0, -100.0], [0.0, 100.0, -50.0]])  # exp(100) = inf in float32: shift by the max
    return [
        Case("masked_softmax(scores (4, 4), causal_mask(4))", call(scores, causal_mask(4)),
             lambda: masked_softmax(scores, causal_mask(4))),
        Case("masked_softmax(scores (2, 3, 5, 5), causal_mask(5))", call(batch, causal_mask(5)),
             lambda: masked_softmax(batch, causal_mask(5))),
        Case("masked_softmax(scores (2, 3) × 10, mask hiding the last column)", call(wide, padding),
             lambda: masked_softmax(wide, padding)),
        Case(f"masked_softmax({show(far)}, causal_mask(3)[:2])", call(far, causal_mask(3)[:2]),
             lambda: masked_softmax(far, causal_mask(3)[:2])),
    ]


def _attention_scores_cases() -> list[Case]:
    q, k = random_tensor(4, 8, seed=4), random_tensor(4, 8, seed=5)
    q4, k4 = random_tensor(2, 3, 5, 16, seed=6), random_tensor(2, 3, 6, 16, seed=7)  # 5 queries, 6 keys
    q1, k1 = random_tensor(3, 1, seed=8), random_tensor(2, 1, seed=9)
    return [
        Case("attention_scores(queries (4, 8), keys (4, 8))", call(q, k), lambda: attention_scores(q, k)),
        Case("attention_scores(queries (2, 3, 5, 16), keys (2, 3, 6, 16))", call(q4, k4),
             lambda: attention_scores(q4, k4)),
        Case("attention_scores(queries (3, 1), keys (2, 1))", call(q1, k1), lambda: attention_scores(q1, k1)),
    ]


def _context_cases() -> list[Case]:
    sentence = random_tensor(6, 3, seed=10)
    batch = random_tensor(2, 4, 3, seed=11)
    one = random_tensor(1, 5, seed=12)
    return [
        Case("simple_self_attention(inputs (6, 3))", call(sentence), lambda: simple_self_attention(sentence)),
        Case("simple_self_attention(inputs (2, 4, 3))", call(batch), lambda: simple_self_attention(batch)),
        Case("simple_self_attention(inputs (1, 5))", call(one), lambda: simple_self_attention(one)),
    ]


def _merge_heads_cases() -> list[Case]:
    x = random_tensor(2, 4, 3, 2, seed=13)  # (B=2, H=4, T=3, hd=2)
    counting = torch.arange(24, dtype=torch.float32).reshape(1, 3, 4, 2)
    one_head = random_tensor(2, 1, 5, 3, seed=14)
    return [
        Case("merge_heads(x of shape (2, 4, 3, 2))", call(x), lambda: merge_heads(x)),
        Case("merge_heads(arange(24).reshape(1, 3, 4, 2))", call(counting), lambda: merge_heads(counting)),
        Case("merge_heads(x of shape (2, 1, 5, 3))", call(one_head), lambda: merge_heads(one_head)),
    ]


def _causal_attention_cases() -> list[Case]:
    q, k, v = (random_tensor(5, 4, seed=s) for s in (15, 16, 17))
    qb, kb, vb = (random_tensor(2, 3, 6, 8, seed=s) for s in (18, 19, 20))
    return [
        Case("causal_self_attention(q, k, v of shape (5, 4))", call(q, k, v),
             lambda: scaled_dot_product(q, k, v, causal=True, return_weights=True), parts=(("context", "weights"),)),
        Case("causal_self_attention(q, k, v of shape (2, 3, 6, 8))", call(qb, kb, vb),
             lambda: scaled_dot_product(qb, kb, vb, causal=True, return_weights=True),
             parts=(("context", "weights"),)),
    ]


def _multi_head_cases() -> list[Case]:
    x = random_tensor(2, 5, 8, seed=21)
    weight = random_tensor(24, 8, seed=22) / 3  # (3 × D, D), like nn.Linear(8, 24).weight

    def expected(inputs: torch.Tensor, qkv_weight: torch.Tensor, num_heads: int) -> torch.Tensor:
        q, k, v = (split_heads(part, num_heads) for part in (inputs @ qkv_weight.T).chunk(3, dim=-1))
        return merge_heads(scaled_dot_product(q, k, v, causal=True))

    one = random_tensor(1, 3, 8, seed=23)  # a batch of one
    return [
        Case(f"multi_head_attention(x (2, 5, 8), qkv_weight (24, 8), num_heads={h})", call(x, weight, h),
             lambda h=h: expected(x, weight, h))
        for h in (2, 4, 1)
    ] + [Case("multi_head_attention(x (1, 3, 8), qkv_weight (24, 8), num_heads=2)  (a batch of one, by name)",
              call(one, weight, num_heads=2), lambda: expected(one, weight, 2))]


def local_causal_mask_reference(num_tokens: int, window: int) -> torch.Tensor:
    """Boolean (T, T): True where token i may NOT look at token j, i.e. j > i (the future) or
    i - j >= window (too far back). Built from the package's ``causal_mask``: sliding-window
    attention (Mistral, Gemma 2's local layers) hides the distant past as well as the future."""
    too_far = torch.ones(num_tokens, num_tokens, dtype=torch.bool).tril(-window)
    return causal_mask(num_tokens) | too_far


def _local_mask_cases() -> list[Case]:
    settings = [(5, 2), (6, 3), (4, 1), (4, 4), (3, 10), (1, 1)]
    return [Case(f"local_causal_mask({t}, window={w})", call(t, w), lambda t=t, w=w: local_causal_mask_reference(t, w))
            for t, w in settings]


q1 = Problem(
    name="q1", chapter="02", target="causal_mask", title="the causal mask", cases=_causal_mask_cases,
    hints=[
        "Token i may look at tokens 0..i. The mask marks what it must NOT see: the positions j > i, "
        "strictly above the diagonal. Return a boolean (T, T) tensor.",
        "For 3 tokens the mask is [[F, T, T], [F, F, T], [F, F, F]]: True strictly above the main "
        "diagonal, the part an upper-triangle function keeps when told to start one diagonal up.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="02", target="masked_softmax", title="softmax with a mask", cases=_masked_softmax_cases,
    hints=[
        "Hidden positions must get weight exactly 0 while each row still sums to 1: change their scores "
        "before the softmax (to a score whose exp is 0), not the weights after it. Do not edit `scores` in place.",
        "Worked on one row: scores [1, 2, 5] with the last hidden become [1, 2, −∞]; exp(−∞) is exactly "
        "0, so the softmax gives about [0.27, 0.73, 0] and the row still sums to 1.",
    ],
    points=2,
)

q3 = Problem(
    name="q3", chapter="02", target="attention_scores", title="scaled attention scores",
    cases=_attention_scores_cases,
    hints=[
        "Each score is a dot product of a query with a key: a matrix product of the queries with the keys "
        "transposed over their last two dimensions, divided by the square root of the vector size d.",
        "Worked on one pair: the query [1, 0] and the key [2, 3] give 1·2 + 0·3 = 2, divided by √2 since "
        "d = 2. For batches, swap only the keys' last two dimensions: (..., T, d) becomes (..., d, T).",
    ],
    points=1,
)

q4 = Problem(
    name="q4", chapter="02", target="simple_self_attention", title="context vectors by hand",
    cases=_context_cases,
    hints=[
        "Three steps: scores (every token's dot product with every token), weights (softmax of each "
        "row), context (the weighted sum of the input vectors). No √d scaling in this version.",
        "Worked on inputs [[1, 0], [0, 1]]: the scores are the identity matrix, each row's softmax is "
        "[0.73, 0.27] or [0.27, 0.73], and the first context vector is 0.73·[1, 0] + 0.27·[0, 1] = "
        "[0.73, 0.27].",
    ],
    points=1,
)

q5 = Problem(
    name="q5", chapter="02", target="merge_heads", title="merge the heads back", cases=_merge_heads_cases,
    hints=[
        "Undo split_heads in reverse order: first bring the token dimension back before the heads, "
        "(B, H, T, hd) -> (B, T, H, hd), then join the last two dimensions.",
        "Worked on shapes: 2 × 4 × 3 × 2 with heads and tokens swapped is 2 × 3 × 4 × 2, and joining the "
        "last two gives 2 × 3 × 8. After a transpose the memory is no longer in order: `view` refuses, "
        "`reshape` copies when it must.",
    ],
    points=2,
)

q6 = Problem(
    name="q6", chapter="02", target="causal_self_attention", title="causal attention returning its weights",
    cases=_causal_attention_cases,
    hints=[
        "Chain your earlier pieces: scaled scores, the causal mask for T tokens, the masked softmax, "
        "then the weighted sum of the values. Return a tuple (context, weights), in that order.",
        "The mask is as wide as there are tokens: the second-to-last dimension of the queries. The "
        "context is the weights times the values; return the pair context first, weights second.",
    ],
    points=2,
)

q7 = Problem(
    name="q7", chapter="02", target="multi_head_attention", title="batched multi-head attention",
    cases=_multi_head_cases,
    hints=[
        "One matrix multiply gives queries, keys and values at once: `inputs @ qkv_weight.T` has 3·D "
        "features in the order Q, K, V; cut it in three, split each into heads, attend causally in every "
        "head at once, and merge the heads.",
        "One projection gives 3·D features per token; cutting them into three equal chunks along the "
        "last dimension gives Q, K and V in that order. Once each is split into heads, your causal "
        "attention already works on every head at once, and merging the heads brings back (B, T, D).",
    ],
    points=3,
)

q8 = Problem(
    name="q8", chapter="02", target="local_causal_mask", title="a sliding-window causal mask",
    cases=_local_mask_cases,
    hints=[
        "Two things are hidden now: the future (j > i, as in the causal mask) and the distant past "
        "(i - j >= window). Build each as a boolean (T, T) tensor and combine them with `|`.",
        "Worked on 4 tokens with window 2: token 3 sees tokens 2 and 3 only. The distant past (i − j ≥ "
        "window) is the part of a matrix of ones on or below the diagonal −window, what `tril` keeps "
        "with that negative offset.",
    ],
    points=2,
)
