"""Chapter 6 exercises (pretrained weights): a name map, GPT-2's Conv1D, a Q8_0 block, the Q/K
permutation, the shape check, and a predict-then-run: llama.cpp's permutation itself and what skipping the
unpermute does to RoPE attention scores.

The learner writes each piece in ``solutions/06_pretrained_weights.ipynb`` (the exercise copy); the
expected values come from :mod:`slm_course.weights` and :mod:`slm_course.model.hf`, the loaders the
later chapters use.
"""
from __future__ import annotations

import numpy as np
import torch

from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.model.layers import apply_rope, rope_frequencies
from slm_course.weights.dequantize import dequantize_q8_0
from slm_course.weights.gguf_load import GGUF_BLOCK_MAP, GGUF_TOP_MAP, permute_rows, unpermute_rows

_OURS_FROM_GGUF = {v: k for k, v in GGUF_TOP_MAP.items()}
_BLOCK_FROM_GGUF = {v: k for k, v in GGUF_BLOCK_MAP.items()}


def _ours(gguf_name: str) -> str:
    """The package's answer for q1 (the inverse of ``gguf_load.gguf_name``)."""
    if gguf_name in _OURS_FROM_GGUF:
        return _OURS_FROM_GGUF[gguf_name]
    _, layer, rest = gguf_name.split(".", 2)
    return f"blocks.{layer}.{_BLOCK_FROM_GGUF[rest]}"


def _names_cases() -> list[Case]:
    names = ["blk.0.attn_q.weight", "blk.7.ffn_gate.weight", "blk.7.ffn_up.weight", "blk.29.ffn_down.weight",
             "blk.12.attn_output.weight", "blk.3.attn_norm.weight", "blk.3.ffn_norm.weight", "blk.10.attn_k.weight",
             "blk.1.attn_v.weight", "token_embd.weight", "output_norm.weight", "output.weight"]
    return [Case(f"gguf_to_ours({n!r})", call(n), _ours(n)) for n in names]


def _split_c_attn(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    d = weight.shape[0]
    full = weight.t()
    return tuple(full[j * d:(j + 1) * d].contiguous() for j in range(3))


def _conv1d_cases() -> list[Case]:
    w4 = random_tensor(4, 12, seed=61)
    w8 = random_tensor(8, 24, seed=62)
    ramp = torch.arange(2 * 6, dtype=torch.float32).reshape(2, 6)  # every entry different: layouts show
    return [Case(f"split_c_attn(weight {tuple(w.shape)})", call(w), lambda w=w: _split_c_attn(w))
            for w in (ramp, w4, w8)]


def _q8_block(scale: float, qs: list[int]) -> torch.Tensor:
    raw = np.float16(scale).tobytes() + np.array(qs, dtype=np.int8).tobytes()
    return torch.tensor(list(raw), dtype=torch.uint8)


def _q8_cases() -> list[Case]:
    rng = np.random.default_rng(63)
    blocks = [
        _q8_block(0.01, list(range(-16, 16))),  # negative and positive bytes
        _q8_block(0.0001234, [-128, 127] + [0] * 30),  # the extreme bytes; a scale float16 cannot hold exactly
        _q8_block(-2.5, rng.integers(-128, 128, 32).tolist()),  # a negative scale
        _q8_block(3000.0, rng.integers(-128, 128, 32).tolist()),  # products beyond float16's range
        _q8_block(0.0, [5] * 32),  # scale 0: all weights 0
        _q8_block(3e-7, [-128, 127, 1, -1] * 8),  # a subnormal float16 scale (exponent bits 0)
        _q8_block(65504.0, [-128, 127] * 16),  # float16's largest scale: products near 8.3e6
    ]
    return [Case(f"dequantize_q8_0_block(block {k}: scale bytes {b[:2].tolist()}, first q {b[2:5].tolist()}…)",
                 call(b), lambda b=b: dequantize_q8_0(b)) for k, b in enumerate(blocks)]


def _unpermute_cases() -> list[Case]:
    ramp = torch.arange(16, dtype=torch.float32).reshape(16, 1)
    cases = [Case("unpermute(permuted arange(16) as (16, 1), n_heads=2)", call(permute_rows(ramp, 2), 2), ramp)]
    for rows, cols, heads, seed in ((24, 5, 2, 64), (24, 5, 3, 65), (48, 8, 1, 66), (36, 4, 3, 67)):
        w = random_tensor(rows, cols, seed=seed)
        cases.append(Case(f"unpermute(weight ({rows}, {cols}), n_heads={heads})", call(w, heads),
                          lambda w=w, h=heads: unpermute_rows(w, h)))
    w = random_tensor(40, 3, seed=68)  # n_heads passed by its name, as the loader does
    cases.append(Case("unpermute(weight (40, 3), n_heads=5)", call(w, n_heads=5), lambda: unpermute_rows(w, 5)))
    return cases


def _permute_cases() -> list[Case]:
    ramp = torch.arange(16, dtype=torch.float32).reshape(16, 1)
    cases = [Case("permute_qk(arange(16) as (16, 1), n_heads=2)", call(ramp, 2), lambda: permute_rows(ramp, 2))]
    for rows, cols, heads, seed in ((24, 5, 3, 160), (48, 4, 1, 161), (36, 2, 3, 162)):
        w = random_tensor(rows, cols, seed=seed)
        cases.append(Case(f"permute_qk(weight ({rows}, {cols}), n_heads={heads})", call(w, heads),
                          lambda w=w, h=heads: permute_rows(w, h)))
    w = random_tensor(40, 3, seed=163)
    cases.append(Case("permute_qk(weight (40, 3), n_heads=5)", call(w, n_heads=5), lambda: permute_rows(w, 5)))
    return cases


def skipped_unpermute_effect(n_heads: int = 2, head_dim: int = 16, seq_len: int = 6) -> dict[str, bool]:
    """Run it: RoPE attention scores with Q/K weights left as llama.cpp stores them (the unpermute skipped)
    against the right ones, on random weights. True where the scores change: at the same position
    (the diagonal of each head's (T, T) score matrix), at other positions, and with RoPE switched off."""
    d = n_heads * head_dim
    wq, wk, x = random_tensor(d, d, seed=170), random_tensor(d, d, seed=171), random_tensor(seq_len, d, seed=172)
    cos, sin = rope_frequencies(head_dim, seq_len)

    def scores(q_w, k_w, rope):
        q = (x @ q_w.t()).reshape(seq_len, n_heads, head_dim).transpose(0, 1)[None]  # (1, H, T, hd)
        k = (x @ k_w.t()).reshape(seq_len, n_heads, head_dim).transpose(0, 1)[None]
        if rope:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return (q @ k.transpose(-1, -2))[0]  # (H, T, T)

    right, skipped = scores(wq, wk, True), scores(permute_rows(wq, n_heads), permute_rows(wk, n_heads), True)
    diagonal = torch.eye(seq_len, dtype=torch.bool).expand_as(right)

    def differs(a, b):
        return bool((~torch.isclose(a, b, rtol=1e-4, atol=1e-4)).any())

    off_rope = differs(scores(wq, wk, False), scores(permute_rows(wq, n_heads), permute_rows(wk, n_heads), False))
    return {"same_position": differs(right[diagonal], skipped[diagonal]),
            "other_positions": differs(right[~diagonal], skipped[~diagonal]), "without_rope": off_rope}


def _prediction_cases() -> list[Case]:
    return [Case("skipped_unpermute_prediction() against what running the model shows", call(),
                 lambda: skipped_unpermute_effect())]


def _shape_report(checkpoint: dict, model: dict) -> dict[str, list[str]]:
    return {"missing": sorted(set(model) - set(checkpoint)),
            "unexpected": sorted(set(checkpoint) - set(model)),
            "mismatched": sorted(k for k in set(model) & set(checkpoint) if tuple(model[k]) != tuple(checkpoint[k]))}


def _shape_cases() -> list[Case]:
    model = {"tok_emb.weight": (100, 8), "blocks.0.attn.q_proj.weight": (8, 8), "blocks.0.attn.k_proj.weight": (4, 8),
             "blocks.10.mlp.up.weight": (16, 8), "blocks.2.mlp.up.weight": (16, 8), "final_norm.weight": (8,)}
    good = dict(model)
    transposed = {**model, "blocks.0.attn.k_proj.weight": (8, 4), "blocks.2.mlp.up.weight": (8, 16)}
    renamed = {k.replace("blocks.", "layers."): v for k, v in model.items() if k.startswith("blocks.")}
    renamed["tok_emb.weight"] = (100, 8)
    mixed = {**{k: v for k, v in model.items() if k != "final_norm.weight"}, "lm_head.weight": (100, 8),
             "tok_emb.weight": (101, 8)}
    as_lists = {k: list(v) for k, v in model.items()}  # shapes given as lists compare by their numbers
    lists_and_bad = {**as_lists, "blocks.10.mlp.up.weight": [8, 16], "extra.bias": [3]}
    cases = [("a matching checkpoint", good), ("two transposed matrices", transposed),
             ("every block renamed", renamed), ("missing, unexpected and mis-shaped at once", mixed),
             ("shapes written as lists", as_lists), ("lists, one transposed, one extra", lists_and_bad),
             ("an empty checkpoint", {})]
    return [Case(f"check_shapes({label}, model shapes)", call(ckpt, model), _shape_report(ckpt, model))
            for label, ckpt in cases]


q1 = Problem(
    name="q1", chapter="06", target="gguf_to_ours", title="map GGUF names to the course's", cases=_names_cases,
    hints=[
        "Split the name into the block number and the rest (`blk.12.ffn_up.weight` → `12`, `ffn_up.weight`); "
        "look the rest up in a dictionary of the nine block tensors; three names live outside the blocks.",
        "Split on the first two dots only: `name.split(\".\", 2)` gives `[\"blk\", \"29\", \"ffn_down.weight\"]`, "
        "so a two-digit block number stays whole and the rest is the dictionary's key.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="06", target="split_c_attn", title="GPT-2's Conv1D: transpose and split c_attn",
    cases=_conv1d_cases,
    hints=[
        "A Conv1D weight is stored `(in, out)`; `nn.Linear` wants `(out, in)`. Transpose first, then the "
        "query, key and value matrices are consecutive blocks of `d` rows.",
        "On a tiny case with one feature: c_attn is the single row wq wk wv; its transpose is a column of "
        "three, and q, k and v are its first, second and third rows. A reshape would not do it: it keeps the "
        "memory order.",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="06", target="dequantize_q8_0_block", title="dequantize one Q8_0 block",
    cases=_q8_cases,
    hints=[
        "The first two bytes are a little-endian float16 scale `d`, the other 32 are *signed* bytes `q`; "
        "each weight is `d · q`, computed in float32.",
        "Reinterpret the bytes rather than convert them: a view as float16 reads the two scale bytes as one "
        "number (subnormal scales included), where a conversion would give two numbers from 0 to 255.",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="06", target="unpermute", title="undo llama.cpp's Q/K row permutation",
    cases=_unpermute_cases,
    hints=[
        "Within each head llama.cpp interleaved the two halves: row `i` of the first half went to `2i`, row "
        "`i` of the second half to `2i + 1`. Undo it head by head: a reshape, a transpose, a reshape back.",
        "One head of four rows as stored holds the original rows in the order zero two one three. Write them as "
        "a grid of two by two whose row p is the pair p and two plus p; read the grid column by column and "
        "you get zero one two three back.",
    ],
    points=2,
)

q5 = Problem(
    name="q5", chapter="06", target="check_shapes", title="the shape check: every problem at once",
    cases=_shape_cases,
    hints=[
        "Compare the two sets of names (which the model wants and the file lacks, and the reverse), then the "
        "shapes of the names both have; report all three lists, sorted, rather than stopping at the first.",
        "Set difference gives a missing list in one step, e.g. `{\"a\", \"b\"} - {\"b\"}` is `{\"a\"}`; and "
        "shapes compare by their numbers only once both are tuples: `[8, 8] == (8, 8)` is False.",
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="06", target="permute_qk", title="llama.cpp's Q/K row permutation itself",
    cases=_permute_cases,
    hints=[
        "The converter's direction, the inverse of exercise 4: inside each head, interleave the first half's "
        "rows with the second half's (first-half row i to 2i, second-half row i to 2i + 1).",
        "One head of 4 rows [a, b, c, d]: the halves [a, b] and [c, d] stacked as a 2 × 2 grid, read column "
        "by column, give [a, c, b, d]. With heads: group the rows per head and half before swapping.",
    ],
    points=1,
)

q7 = Problem(
    name="q7", chapter="06", target="skipped_unpermute_prediction",
    title="predict what skipping the unpermute does to attention", cases=_prediction_cases,
    hints=[
        "Skipping the unpermute reorders the rows of W_q and W_k the same way, so every query and key has its "
        "dimensions shuffled by one permutation P. Ask what a shuffle does to a dot product, then what RoPE "
        "rotates together.",
        "Without RoPE a score is q·k, and (Pq)·(Pk) = q·k. With RoPE, the score of positions m and n depends "
        "on a rotation by n − m applied to pairs of dimensions: P puts different dimensions into a pair. What "
        "is that rotation when m = n?",
    ],
    points=1,
)
