"""Chapter 5 exercises (evaluation and generation): perplexity, temperature, top-k, top-p, one
KV-cache decode step, and min-p, the filtering idea taken where the lesson did not go.

The learner writes each piece in ``solutions/05_evaluation_generation.ipynb`` (the exercise copy);
the expected values come from :mod:`slm_course.generate`, the implementation ``generate`` uses.
"""
from __future__ import annotations

import math

import torch

from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.generate import (
    apply_temperature, attend_one_step, min_p_filter, perplexity_from_losses, top_k_filter, top_p_filter,
)


def _perplexity_cases() -> list[Case]:
    lists = [[0.0], [1.0, 3.0], [2.5, 0.1, 4.0, 1.2], [math.log(2048)] * 3, [7.6]]
    cases = [Case(f"perplexity({x})", call(x), lambda x=x: perplexity_from_losses(x)) for x in lists]
    # A long evaluation: the product of 5000 per-token perplexities (e^3 each) overflows a float.
    long = [3.0 + 0.5 * math.sin(i) for i in range(5000)]
    cases.append(Case("perplexity([3.0 + 0.5·sin(i) for i in range(5000)])  (5000 tokens)", call(long),
                      lambda: perplexity_from_losses(long)))
    return cases


def _temperature_cases() -> list[Case]:
    logits = random_tensor(2, 6, seed=1) * 3
    one = torch.tensor([1.0, 2.0, 3.0])
    cube = random_tensor(2, 3, 4, seed=6)  # (batch, positions, vocab): the last dimension is the vocabulary
    far = torch.tensor([300.0, 310.0, 250.0])
    return [
        Case(f"temperature_probs(logits (2, 6), {t})", call(logits, t),
             lambda t=t: torch.softmax(apply_temperature(logits, t), dim=-1)) for t in (0.5, 1.0, 2.0)
    ] + [Case("temperature_probs(tensor([1., 2., 3.]), 0.25)", call(one, 0.25),
              lambda: torch.softmax(apply_temperature(one, 0.25), dim=-1)),
         Case("temperature_probs(logits (2, 3, 4), temperature=0.7)", call(cube, temperature=0.7),
              lambda: torch.softmax(apply_temperature(cube, 0.7), dim=-1)),
         # scores in the hundreds at a low temperature: exp without the max shift overflows
         Case("temperature_probs(tensor([300., 310., 250.]), 0.5)", call(far, 0.5),
              lambda: torch.softmax(apply_temperature(far, 0.5), dim=-1))]


def _top_k_cases() -> list[Case]:
    logits = random_tensor(3, 10, seed=2)
    ties = torch.tensor([[2.0, 1.0, 1.0, 0.0, -1.0]])
    flat = torch.tensor([0.5, -1.0, 3.0, 2.0])
    cube = random_tensor(2, 3, 10, seed=7)
    return [
        Case("top_k_filter(logits (3, 10), 3)", call(logits, 3), lambda: top_k_filter(logits, 3)),
        Case("top_k_filter(logits (3, 10), 1)", call(logits, 1), lambda: top_k_filter(logits, 1)),
        Case("top_k_filter(tensor([[2., 1., 1., 0., -1.]]), 2)  (a tie at the cut)", call(ties, 2),
             lambda: top_k_filter(ties, 2)),
        Case("top_k_filter(logits (3, 10), 10)  (k = vocab)", call(logits, 10), lambda: top_k_filter(logits, 10)),
        Case("top_k_filter(logits (3, 10), 25)  (k > vocab)", call(logits, 25), lambda: top_k_filter(logits, 25)),
        Case("top_k_filter(tensor([0.5, -1., 3., 2.]), k=2)  (one row, 1-D)", call(flat, k=2),
             lambda: top_k_filter(flat, 2)),
        Case("top_k_filter(logits (2, 3, 10), k=4)  (batch, positions, vocab)", call(cube, k=4),
             lambda: top_k_filter(cube, 4)),
        Case("top_k_filter(logits (1, 10), 3)  (a batch of one)", call(logits[:1], 3),
             lambda: top_k_filter(logits[:1], 3)),
    ]


def _top_p_cases() -> list[Case]:
    logits = random_tensor(3, 12, seed=3) * 2
    ties = torch.tensor([[2.0, 1.0, 1.0, 0.0, -1.0]])
    probs = torch.softmax(ties, -1)[0]
    vocab = random_tensor(2, 49152, seed=4) * 8
    flat = torch.tensor([0.5, -1.0, 3.0, 2.0])
    cube = random_tensor(2, 3, 12, seed=8) * 2
    cases = [(logits, p, f"logits (3, 12), {p}") for p in (0.3, 0.75, 0.95)]
    cases += [(ties, 0.5, "tensor([[2., 1., 1., 0., -1.]]), 0.5"),
              (ties, round(float(probs[0]) + 0.01, 4), f"tensor([[2., 1., 1., 0., -1.]]), {float(probs[0]) + 0.01:.4f}  (a tie)"),
              (logits, 1e-4, "logits (3, 12), 0.0001  (keep at least one)"),
              (logits, 1.0, "logits (3, 12), 1.0"),
              # A realistic vocabulary with a wide spread: the float32 running total reaches 1 long before
              # the last token, whose probabilities underflow it; p = 1 must still keep every token.
              (vocab, 1.0, "logits (2, 49152) × 8 (a real vocabulary), 1.0"),
              (vocab, 0.9, "logits (2, 49152) × 8 (a real vocabulary), 0.9"),
              (flat, 0.6, "tensor([0.5, -1., 3., 2.]), 0.6  (one row, 1-D)"),
              (cube, 0.8, "logits (2, 3, 12), 0.8  (batch, positions, vocab)"),
              (logits[:1], 0.5, "logits (1, 12), 0.5  (a batch of one)")]
    return [Case(f"top_p_filter({label})", call(x, p=p) if x is cube else call(x, p),
                 lambda x=x, p=p: top_p_filter(x, p)) for x, p, label in cases]


def _decode_cases() -> list[Case]:
    cases = []
    for batch, heads, past, d, seed in ((1, 1, 3, 4, 10), (2, 3, 5, 8, 20), (1, 2, 1, 4, 30)):
        q, kn, vn = (random_tensor(batch, heads, 1, d, seed=seed + i) for i in range(3))
        kp, vp = random_tensor(batch, heads, past, d, seed=seed + 3), random_tensor(batch, heads, past, d, seed=seed + 4)
        cases.append(Case(f"decode_step(q, k_new, v_new (each ({batch}, {heads}, 1, {d})), k_past, v_past ({batch}, {heads}, {past}, {d}))",
                          call(q, kn, vn, kp, vp), lambda a=(q, kn, vn, kp, vp): attend_one_step(*a)))
    # Passed by name, and d = 16 (the scale is sqrt(d) of the head size, not of the number of keys).
    q, kn, vn = (random_tensor(1, 2, 1, 16, seed=40 + i) for i in range(3))
    kp, vp = random_tensor(1, 2, 7, 16, seed=43), random_tensor(1, 2, 7, 16, seed=44)
    cases.append(Case("decode_step(q=q, k_new=k_new, v_new=v_new, k_past=k_past, v_past=v_past)  (d = 16, t = 7)",
                      call(q=q, k_new=kn, v_new=vn, k_past=kp, v_past=vp),
                      lambda a=(q, kn, vn, kp, vp): attend_one_step(*a)))
    return cases


def _min_p_cases() -> list[Case]:
    logits = random_tensor(3, 20, seed=5) * 3
    peaked = torch.tensor([[8.0, 2.0, 1.0, 1.0, 0.0], [0.1, 0.0, 0.0, -0.1, 0.05]])
    tied = torch.tensor([2.0, 2.0, 0.0, 1.0])
    cube = random_tensor(2, 2, 20, seed=9) * 2
    large = torch.tensor([[900.0, 899.0, 880.0]])  # exp(900) overflows unless shifted (softmax shifts)
    return [
        Case(f"min_p_filter(logits (3, 20), {m})", call(logits, m), lambda m=m: min_p_filter(logits, m)) for m in (0.05, 0.3)
    ] + [
        Case("min_p_filter(a sure row and an unsure row, 0.1)", call(peaked, 0.1), lambda: min_p_filter(peaked, 0.1)),
        Case("min_p_filter(logits (3, 20), 0.0)", call(logits, 0.0), lambda: min_p_filter(logits, 0.0)),
        # Two tokens tie for the top at min_p = 1: both are exactly at the cut, and both stay.
        Case("min_p_filter(tensor([2., 2., 0., 1.]), min_p=1.0)  (exactly at the cut, 1-D)", call(tied, min_p=1.0),
             lambda: min_p_filter(tied, 1.0)),
        Case("min_p_filter(logits (2, 2, 20), 0.1)  (batch, positions, vocab)", call(cube, 0.1),
             lambda: min_p_filter(cube, 0.1)),
        Case("min_p_filter(tensor([[900., 899., 880.]]), 0.2)  (large scores)", call(large, 0.2),
             lambda: min_p_filter(large, 0.2)),
    ]


q1 = Problem(
    name="q1", chapter="05", target="perplexity", title="perplexity from per-token losses", cases=_perplexity_cases,
    hints=[
        "Perplexity is the exponential of the mean loss (nats per token), not the mean of the exponentials. "
        "Return a Python float.",
        "Worked on losses [1, 3]: their mean is 2, so the perplexity is e² ≈ 7.39 — not the mean of e¹ "
        "and e³, about 11.4.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="05", target="temperature_probs", title="temperature", cases=_temperature_cases,
    hints=[
        "Divide the logits by the temperature (a small temperature makes big differences bigger), then take a "
        "softmax over the vocabulary, the last dimension.",
        "Worked on logits [2, 0]: at temperature 0.5 they become [4, 0], whose softmax is about [0.98, "
        "0.02]; at temperature 2 they become [1, 0], about [0.73, 0.27].",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="05", target="top_k_filter", title="the top-k filter", cases=_top_k_cases,
    hints=[
        "Find the k-th largest logit of each row; every logit below it becomes -inf (not 0: a logit of 0 is "
        "still a likely token). Logits equal to the k-th are kept. k at or above the vocabulary keeps everything.",
        "`torch.topk` gives each row's k largest values sorted from the largest, so its last column is "
        "the k-th; slicing that column as a range (not a single index) keeps it as a dimension of size "
        "1, which broadcasts. Then compare strictly: equal logits stay.",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="05", target="top_p_filter", title="the top-p (nucleus) filter", cases=_top_p_cases,
    hints=[
        "Sort the probabilities from the most likely down. A token is kept when the tokens ranked above it hold "
        "less than p of the mass — so the token that crosses p is kept, and the first one always. Then keep every "
        "token whose logit is at least the smallest kept one (that keeps ties together).",
        "Worked on sorted probabilities [0.5, 0.3, 0.2] with p = 0.6: the mass ranked above each token "
        "is [0, 0.5, 0.8] — the running total minus the token's own probability — so the first two are "
        "kept (0 and 0.5 are below 0.6). At p = 1 keep everything before any sum: in float32 the running "
        "total of a large vocabulary reaches 1 before its last token.",
    ],
    points=3,
)

q5 = Problem(
    name="q5", chapter="05", target="decode_step", title="one KV-cache decode step", cases=_decode_cases,
    hints=[
        "Append the new token's key and value to the cached ones along the token dimension (-2), then let the "
        "one query attend to all of them. The new token is the last position: nothing is in its future, so no "
        "mask. (is_causal=True with one query would hide every key but the first!) Return a tuple of three.",
        "Worked on shapes: a cache (1, 1, 3, 4) plus a new key (1, 1, 1, 4) joined along the token "
        "dimension gives (1, 1, 4, 4); the one query scores all 4 keys, a softmax over them weights the "
        "4 values. No mask: nothing is in the newest token's future.",
    ],
    points=2,
)

q6 = Problem(
    name="q6", chapter="05", target="min_p_filter", title="min-p: a filter that follows the model's confidence",
    cases=_min_p_cases,
    hints=[
        "Turn the logits into probabilities; the cut is min_p times the largest probability of the same row. "
        "Tokens below the cut become -inf; the others keep their logits.",
        "Worked on probabilities [0.6, 0.3, 0.1] with min_p = 0.2: the cut is 0.2 · 0.6 = 0.12, so only "
        "the last token (0.1 is below 0.12) becomes −∞. A token exactly at the cut stays.",
    ],
    points=2,
)
