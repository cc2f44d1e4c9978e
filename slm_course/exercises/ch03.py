"""Chapter 3 exercises (architecture): LayerNorm, RMSNorm, RoPE, SwiGLU, grouped-query heads, GPT-2's
parameter count, and the count of a Llama-style model (RMSNorm, RoPE, SwiGLU and grouped-query
attention together: the lesson's pieces applied to a model the lesson did not count by hand).

The learner writes each piece in ``solutions/03_architecture.ipynb`` (the exercise copy); the
expected values come from :mod:`slm_course.model`, the model the later chapters train.
"""
from __future__ import annotations

from typing import Any

import torch

from slm_course.exercises.core import Case, Problem, call, compare_values, forbid, random_tensor

# Stated rules: the norms are written from tensor operations (see slm_course.exercises.rules.forbid).
LAYER_NORM_SHORTCUTS = ("torch.nn.functional.layer_norm", "torch.layer_norm")
RMS_NORM_SHORTCUTS = ("torch.nn.functional.rms_norm", "torch.rms_norm")
from slm_course.model import (
    SLMConfig,
    LayerNorm,
    RMSNorm,
    SwiGLU,
    apply_rope,
    count_parameters,
    repeat_kv,
    rope_frequencies,
)


@torch.no_grad()
def _layer_norm(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, eps: float) -> torch.Tensor:
    norm = LayerNorm(x.shape[-1], eps)
    norm.weight.copy_(weight)
    norm.bias.copy_(bias)
    return norm(x)


@torch.no_grad()
def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    norm = RMSNorm(x.shape[-1], eps)
    norm.weight.copy_(weight)
    return norm(x)


def _layer_norm_cases() -> list[Case]:
    x4 = random_tensor(3, 4, seed=1) * 3 + 5  # few features: the biased and unbiased variance differ
    w4, b4 = random_tensor(4, seed=2), random_tensor(4, seed=3)
    x16 = random_tensor(2, 3, 16, seed=4)
    flat = torch.full((2, 6), 7.0)  # zero variance: only eps keeps the division finite
    offset = random_tensor(2, 8, seed=14) * 0.5 + 100.0  # E[x²] − E[x]² cancels in float32 here
    def guarded(*args, **kwargs):
        return forbid(call(*args, **kwargs), *LAYER_NORM_SHORTCUTS, advice="Write it with mean, var and sqrt.")

    return [
        Case("layer_norm(x (3, 4), weight, bias)", guarded(x4, w4, b4), lambda: _layer_norm(x4, w4, b4, 1e-5)),
        Case("layer_norm(x (2, 3, 16), ones(16), zeros(16))", guarded(x16, torch.ones(16), torch.zeros(16)),
             lambda: _layer_norm(x16, torch.ones(16), torch.zeros(16), 1e-5)),
        Case("layer_norm(x (3, 4), weight, bias, eps=0.5)", guarded(x4, w4, b4, eps=0.5),
             lambda: _layer_norm(x4, w4, b4, 0.5)),
        Case("layer_norm(full((2, 6), 7.0), ones(6), bias)", guarded(flat, torch.ones(6), b4.repeat(2)[:6]),
             lambda: _layer_norm(flat, torch.ones(6), b4.repeat(2)[:6], 1e-5)),
        Case("layer_norm(x (2, 8) × 0.5 + 100, ones(8), zeros(8), eps=1e-8)  (a large mean)",
             guarded(offset, torch.ones(8), torch.zeros(8), eps=1e-8),
             lambda: _layer_norm(offset, torch.ones(8), torch.zeros(8), 1e-8)),
    ]


def _rms_norm_cases() -> list[Case]:
    x = random_tensor(3, 8, seed=5) + 2  # not centred: RMSNorm must not subtract the mean
    w = random_tensor(8, seed=6)
    x3 = random_tensor(2, 4, 6, seed=7)
    small = random_tensor(2, 5, seed=8) * 0.05  # mean square comparable to eps
    tiny = random_tensor(2, 6, seed=13) * 3e-3  # mean square ≈ 1e-5: the default eps=1e-6 (not 1e-5) shows
    def guarded(*args, **kwargs):
        return forbid(call(*args, **kwargs), *RMS_NORM_SHORTCUTS, advice="Write it with pow, mean and sqrt.")

    return [
        Case("rms_norm(x (3, 8), weight)", guarded(x, w), lambda: _rms_norm(x, w, 1e-6)),
        Case("rms_norm(x (2, 6) × 0.003, ones(6)) (the default eps)", guarded(tiny, torch.ones(6)),
             lambda: _rms_norm(tiny, torch.ones(6), 1e-6)),
        Case("rms_norm(x (2, 4, 6), ones(6))", guarded(x3, torch.ones(6)), lambda: _rms_norm(x3, torch.ones(6), 1e-6)),
        Case("rms_norm(x (2, 5) × 0.05, ones(5), eps=1e-2)", guarded(small, torch.ones(5), eps=1e-2),
             lambda: _rms_norm(small, torch.ones(5), 1e-2)),
    ]


def _rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    cos, sin = rope_frequencies(x.shape[-1], x.shape[-2], theta)
    return apply_rope(x, cos, sin)


def _interleaved_rope(x: torch.Tensor, theta: float) -> torch.Tensor:
    """RoPE in the paper's (and Meta's original Llama code's) layout: pair i is (x[..., 2i], x[..., 2i+1])."""
    d = x.shape[-1]
    cos, sin = rope_frequencies(d, x.shape[-2], theta)
    cos, sin = cos[:, : d // 2].double(), sin[:, : d // 2].double()  # the half table holds each angle twice
    a, b = x[..., 0::2].double(), x[..., 1::2].double()
    return torch.stack([a * cos - b * sin, b * cos + a * sin], dim=-1).flatten(-2)  # (..., T, d)


def _rope_compare(x: torch.Tensor, theta: float):
    """Compare as usual, casting a float answer to x's dtype, and name the interleaved layout if used."""

    def compare(expected: Any, actual: Any) -> str | None:
        if isinstance(actual, torch.Tensor) and actual.is_floating_point() and actual.dtype != expected.dtype:
            actual = actual.to(expected.dtype)  # computed in float64 (say): the values are what count
        reason = compare_values(expected, actual)
        if reason is None or not isinstance(actual, torch.Tensor) or actual.shape != expected.shape:
            return reason
        if torch.allclose(actual.double(), _interleaved_rope(x, theta), rtol=1e-4, atol=1e-5):
            return ("this is the interleaved layout, pairs (x[..., 2i], x[..., 2i+1]) as in the RoFormer paper "
                    "and Meta's original Llama code; this exercise uses the half layout of the chapter and of "
                    "Llama in transformers: pair i is (x[..., i], x[..., i + d/2])")
        return reason

    return compare


def _rope_cases() -> list[Case]:
    x = random_tensor(1, 1, 4, 8, seed=9)
    xb = random_tensor(2, 3, 6, 16, seed=10)
    x_theta = random_tensor(1, 2, 5, 4, seed=11)
    one = random_tensor(2, 2, 1, 6, seed=12)
    plain = random_tensor(5, 8, seed=15)  # (T, d): no batch or head dimensions
    return [
        Case("rope(x (1, 1, 4, 8))", call(x), lambda: _rope(x, 10_000.0), _rope_compare(x, 10_000.0)),
        Case("rope(x (2, 3, 6, 16))", call(xb), lambda: _rope(xb, 10_000.0), _rope_compare(xb, 10_000.0)),
        Case("rope(x (1, 2, 5, 4), theta=100.0)", call(x_theta, theta=100.0), lambda: _rope(x_theta, 100.0),
             _rope_compare(x_theta, 100.0)),
        Case("rope(x (2, 2, 1, 6)) (position 0 only)", call(one), lambda: _rope(one, 10_000.0),
             _rope_compare(one, 10_000.0)),
        Case("rope(x (5, 8))  (tokens and features only)", call(plain), lambda: _rope(plain, 10_000.0),
             _rope_compare(plain, 10_000.0)),
    ]


@torch.no_grad()
def _swiglu(x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
    d_ff, d_model = w_gate.shape
    mlp = SwiGLU(SLMConfig(d_model=d_model, n_heads=1, mlp="swiglu", d_ff=d_ff, bias=False))
    mlp.gate.weight.copy_(w_gate)
    mlp.up.weight.copy_(w_up)
    mlp.down.weight.copy_(w_down)
    return mlp(x)


def _swiglu_cases() -> list[Case]:
    cases = []
    for seed, (batch, d_model, d_ff) in enumerate([((4,), 6, 10), ((2, 3), 8, 12), ((1, 1), 4, 4)]):
        x = random_tensor(*batch, d_model, seed=20 + seed)
        w_gate, w_up = random_tensor(d_ff, d_model, seed=30 + seed), random_tensor(d_ff, d_model, seed=40 + seed)
        w_down = random_tensor(d_model, d_ff, seed=50 + seed)
        cases.append(Case(
            f"swiglu(x {(*batch, d_model)}, w_gate ({d_ff}, {d_model}), w_up ({d_ff}, {d_model}), w_down ({d_model}, {d_ff}))",
            call(x, w_gate, w_up, w_down),
            lambda x=x, g=w_gate, u=w_up, d=w_down: _swiglu(x, g, u, d),
        ))
    return cases


def _repeat_kv_cases() -> list[Case]:
    counting = torch.arange(2.0).view(1, 2, 1, 1).expand(1, 2, 3, 2).contiguous()  # head j holds j
    x = random_tensor(2, 3, 4, 5, seed=60)
    same = random_tensor(1, 4, 2, 3, seed=61)
    return [
        Case("repeat_kv(kv heads holding 0 and 1, shape (1, 2, 3, 2), n_heads=6)", call(counting, 6),
             lambda: repeat_kv(counting, 6)),
        Case("repeat_kv(kv (2, 3, 4, 5), n_heads=6)", call(x, 6), lambda: repeat_kv(x, 6)),
        Case("repeat_kv(kv (2, 3, 4, 5), n_heads=3)", call(x, 3), lambda: repeat_kv(x, 3)),
        Case("repeat_kv(kv (1, 4, 2, 3), n_heads=8)", call(same, n_heads=8), lambda: repeat_kv(same, 8)),
        Case("repeat_kv(kv (2, 3, 4, 5), n_heads=3)  (one query head per K/V head: unchanged)", call(x, n_heads=3),
             lambda: repeat_kv(x, 3)),
    ]


def _gpt_count(vocab_size: int, context_length: int, d_model: int, n_layers: int, tie_embeddings: bool) -> int:
    config = SLMConfig(vocab_size=vocab_size, context_length=context_length, d_model=d_model, n_layers=n_layers,
                       n_heads=1, norm="layernorm", positions="learned", mlp="gelu", qkv_bias=True, bias=True,
                       tie_embeddings=tie_embeddings)
    return count_parameters(config)


def _count_cases() -> list[Case]:
    shapes = [
        (50257, 1024, 768, 12, True),  # GPT-2 124M
        (50257, 1024, 768, 12, False),
        (2048, 256, 128, 4, True),  # the tiny preset
        (10, 3, 2, 1, False),
        (100, 8, 16, 3, True),
    ]
    return [
        Case(f"gpt_parameter_count({v}, {c}, {d}, {n}, tie_embeddings={t})", call(v, c, d, n, t),
             lambda v=v, c=c, d=d, n=n, t=t: _gpt_count(v, c, d, n, t))
        for v, c, d, n, t in shapes
    ]


def _llama_count(vocab_size: int, d_model: int, n_layers: int, n_heads: int, n_kv_heads: int, d_ff: int,
                 tie_embeddings: bool) -> int:
    config = SLMConfig(vocab_size=vocab_size, d_model=d_model, n_layers=n_layers, n_heads=n_heads,
                       n_kv_heads=n_kv_heads, norm="rmsnorm", positions="rope", mlp="swiglu", d_ff=d_ff,
                       tie_embeddings=tie_embeddings)
    return count_parameters(config)


def _llama_count_cases() -> list[Case]:
    shapes = [
        (49152, 576, 30, 9, 3, 1536, True),  # SmolLM2-135M: 134,515,008
        (49152, 576, 30, 9, 9, 1536, True),  # the same without grouped-query attention
        (32000, 2048, 22, 32, 4, 5632, False),  # TinyLlama-1.1B: untied head
        (100, 8, 2, 2, 1, 12, False),
        (10, 4, 1, 1, 1, 4, True),
    ]
    return [
        Case(f"llama_parameter_count({v}, {d}, {n}, {h}, {kv}, {f}, tie_embeddings={t})", call(v, d, n, h, kv, f, t),
             lambda v=v, d=d, n=n, h=h, kv=kv, f=f, t=t: _llama_count(v, d, n, h, kv, f, t))
        for v, d, n, h, kv, f, t in shapes
    ]


q1 = Problem(
    name="q1", chapter="03", target="layer_norm", title="layer normalisation", cases=_layer_norm_cases,
    hints=[
        "Normalise each token's vector over its features (the last dimension): subtract its mean, divide "
        "by the square root of its variance plus eps, then scale by `weight` and shift by `bias`. The "
        "variance is the biased one (divide by d, not d − 1). `F.layer_norm` is off limits.",
        "Take the mean and the variance over the last dimension, keeping it (size 1) so they broadcast; "
        "the variance divides by d, which is `unbiased=False` (or `correction=0`). eps goes inside the "
        "square root, then the gain and the shift.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="03", target="rms_norm", title="RMSNorm", cases=_rms_norm_cases,
    hints=[
        "RMSNorm is LayerNorm without the centring and without the bias: divide by the root mean square "
        "of the features (eps inside the square root), then scale. `F.rms_norm` is off limits.",
        "Worked on features [3, 4]: their mean square is (9 + 16) / 2 = 12.5, so (eps aside) they become "
        "[3, 4] / √12.5 ≈ [0.85, 1.13], then times the weight. The mean is over the last dimension only.",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="03", target="rope", title="rotary position embeddings", cases=_rope_cases,
    hints=[
        "Feature pair i is (x[..., i], x[..., i + d/2]). At position p it turns by the angle "
        "p · theta^(−2i/d): build a (T, d/2) table of angles from the positions 0 … T−1 and the d/2 "
        "frequencies, then rotate each pair with its cos and sin. Build a new tensor; do not write into `x`.",
        "The angle table, worked for d = 4 and T = 3: the frequencies are θ^0 = 1 and θ^(−2/4); position "
        "p turns pair i by p times frequency i, a (3, 2) table (an outer product of positions and "
        "frequencies). With x1 the first half and x2 the second, the new halves are x1·cos − x2·sin and "
        "x2·cos + x1·sin.",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="03", target="swiglu", title="the SwiGLU feed-forward", cases=_swiglu_cases,
    hints=[
        "Two projections of the same input: one goes through SiLU (x · sigmoid(x), not a plain sigmoid) "
        "and gates the other by an element-wise product; a third matrix brings the result back to "
        "d_model. Weights are stored as in `nn.Linear`, (out, in), so multiply by their transpose.",
        "SiLU(a) is a · sigmoid(a) (`F.silu`). Gate the up projection element-wise with the SiLU of the "
        "gate projection, then project down. In nn.Linear's layout, applying a weight W means x times W "
        "transposed.",
    ],
    points=1,
)

q5 = Problem(
    name="q5", chapter="03", target="repeat_kv", title="grouped-query attention: share K/V heads",
    cases=_repeat_kv_cases,
    hints=[
        "Each K/V head serves a group of g = n_heads / n_kv_heads consecutive query heads: head 0 is used "
        "by query heads 0 … g−1, head 1 by g … 2g−1. Repeat each head in place in the order "
        "0, 0, 1, 1, …; do not tile the whole stack (0, 1, 0, 1, …).",
        "Worked on heads: K/V heads [A, B] for 4 query heads become [A, A, B, B] — each head repeated in "
        "place, what `repeat_interleave` does along the head dimension; plain `repeat` would give [A, B, "
        "A, B].",
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="03", target="gpt_parameter_count", title="count GPT-2's parameters",
    cases=_count_cases,
    hints=[
        "Add up: token embeddings (vocab × d), position embeddings (context × d), per block two "
        "LayerNorms, the attention (Q, K, V and output projections, each with a bias) and the "
        "feed-forward (d → 4d → d, with biases), then the final LayerNorm, and an output layer "
        "(vocab × d, no bias) only when it is not tied. Use integer arithmetic: the answer is an int.",
        "Worked per block for d = 2: the two LayerNorms hold 2·(2 + 2) = 8, the attention 4·(2·2 + 2) = "
        "24, the feed-forward (2·8 + 8) + (8·2 + 2) = 42: in all 74, which is 12d² + 13d. Then add the "
        "token and position tables, the final LayerNorm and the head when it is untied.",
    ],
    points=2,
)

q7 = Problem(
    name="q7", chapter="03", target="llama_parameter_count", title="count a Llama-style model's parameters",
    cases=_llama_count_cases,
    hints=[
        "Same bookkeeping as GPT-2, other parts: no position table (RoPE has no parameters); RMSNorm has "
        "a weight only; no biases anywhere; K and V have n_kv_heads heads of d / n_heads features each; "
        "SwiGLU has three matrices of d × d_ff. One final RMSNorm; the head counts only when untied.",
        "Worked on SmolLM2-135M (d = 576, 9 heads, 3 K/V heads, d_ff = 1536): head_dim is 64, so K and V "
        "are 576 × 192 each while Q and the output are 576 × 576; SwiGLU holds three 576 × 1536 "
        "matrices; each block has two RMSNorm weights of 576.",
    ],
    points=2,
)
