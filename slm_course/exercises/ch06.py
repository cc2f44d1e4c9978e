"""Chapter 6 exercises (pretrained weights): a name map, GPT-2's Conv1D, a Q8_0 block, the Q/K
permutation, the shape check.

The learner writes each piece in ``solutions/06_pretrained_weights.ipynb`` (the exercise copy); the
expected values come from :mod:`slm_course.weights` and :mod:`slm_course.model.hf`, the loaders the
later chapters use.
"""
from __future__ import annotations

import numpy as np
import torch

from slm_course.exercises.core import Case, Problem, call, random_tensor
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
    return cases


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
    cases = [("a matching checkpoint", good), ("two transposed matrices", transposed),
             ("every block renamed", renamed), ("missing, unexpected and mis-shaped at once", mixed),
             ("shapes written as lists", as_lists)]
    return [Case(f"check_shapes({label}, model shapes)", call(ckpt, model), _shape_report(ckpt, model))
            for label, ckpt in cases]


q1 = Problem(
    name="q1", chapter="06", target="gguf_to_ours", title="map GGUF names to the course's", cases=_names_cases,
    hints=[
        "Split the name into the block number and the rest (`blk.12.ffn_up.weight` → `12`, `ffn_up.weight`); "
        "look the rest up in a dictionary of the nine block tensors; three names live outside the blocks.",
        "`if name in TOP: return TOP[name]` · `_, layer, rest = name.split(____, 2)` · "
        "`return f\"blocks.{layer}.{BLOCK[____]}\"`, with `BLOCK = {\"attn_q.weight\": \"attn.q_proj.weight\", ____}`.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="06", target="split_c_attn", title="GPT-2's Conv1D: transpose and split c_attn",
    cases=_conv1d_cases,
    hints=[
        "A Conv1D weight is stored `(in, out)`; `nn.Linear` wants `(out, in)`. Transpose first, then the "
        "query, key and value matrices are consecutive blocks of `d` rows.",
        "`full = weight.____()` (now `(3·d, d)`) · `d = weight.shape[____]` · "
        "`return (full[:d], full[____:____], full[2 * d:])` — a tuple.",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="06", target="dequantize_q8_0_block", title="dequantize one Q8_0 block",
    cases=_q8_cases,
    hints=[
        "The first two bytes are a little-endian float16 scale `d`, the other 32 are *signed* bytes `q`; "
        "each weight is `d · q`, computed in float32.",
        "`d = block[:2].contiguous().view(torch.____).to(torch.float32)` · "
        "`q = block[2:].contiguous().view(torch.____).to(torch.float32)` · `return ____`",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="06", target="unpermute", title="undo llama.cpp's Q/K row permutation",
    cases=_unpermute_cases,
    hints=[
        "Within each head llama.cpp interleaved the two halves: row `i` of the first half went to `2i`, row "
        "`i` of the second half to `2i + 1`. Undo it head by head: a reshape, a transpose, a reshape back.",
        "`head_dim = weight.shape[0] // n_heads` · `w = weight.reshape(n_heads, head_dim // 2, ____, -1)` · "
        "`return w.transpose(____, ____).reshape(weight.shape)`",
    ],
    points=2,
)

q5 = Problem(
    name="q5", chapter="06", target="check_shapes", title="the shape check: every problem at once",
    cases=_shape_cases,
    hints=[
        "Compare the two sets of names (which the model wants and the file lacks, and the reverse), then the "
        "shapes of the names both have; report all three lists, sorted, rather than stopping at the first.",
        "`missing = sorted(set(model) - set(____))` · `unexpected = ____` · "
        "`mismatched = sorted(k for k in ____ if tuple(model[k]) != tuple(checkpoint[k]))` · "
        "`return {\"missing\": ____, \"unexpected\": ____, \"mismatched\": ____}`",
    ],
    points=1,
)

