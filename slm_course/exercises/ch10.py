"""Chapter 10 exercises (deployment): absmax and zero-point quantization, int4 packing, a GGUF Q8_0
block, the memory of a KV cache (applied to models the lesson did not size), and the
straight-through estimator of quantization-aware training.

The learner writes each piece in ``solutions/10_deployment.ipynb`` (the exercise copy); the expected
values come from :mod:`slm_course.quantize` and :mod:`slm_course.model.counting`.
"""
from __future__ import annotations

import torch

from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.exercises.rules import InputChanged
from slm_course.model import SLMConfig, kv_cache_bytes as _kv_cache_bytes
from slm_course.quantize import absmax_quantize, dequantize, pack_int4, q8_0_block, zeropoint_quantize


def _absmax(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    r = absmax_quantize(w, bits, "channel")
    return r.q, r.scale.reshape(-1, 1)


def _absmax_cases() -> list[Case]:
    w = random_tensor(4, 16, seed=1)
    wide = random_tensor(3, 8, seed=2) * torch.tensor([[1.0], [10.0], [0.01]])  # rows of very different size
    halves = torch.tensor([[127.0, 0.5, 1.5, 2.5, -0.5, -2.5, 3.5, 64.0]])  # scale 1: exact ties
    zero_row = torch.cat([random_tensor(1, 8, seed=3), torch.zeros(1, 8)])
    negative_peak = torch.tensor([[-8.0, 1.0, 3.0, 2.0, -0.5], [0.25, -0.75, 0.5, -1.0, 0.125]])  # max |w| negative
    subnormal = torch.tensor([[1e-39, -5e-40, 0.0, 2.5e-40, -3e-41, 7e-40]])  # scale 7.9e-42: 1/scale is inf
    return [
        Case("absmax_quantize(w (4, 16), bits=8)", call(w, 8), lambda: _absmax(w, 8)),
        Case("absmax_quantize(rows scaled ×1, ×10, ×0.01, bits=8)", call(wide, 8), lambda: _absmax(wide, 8)),
        Case("absmax_quantize(w (4, 16), bits=4)", call(w, 4), lambda: _absmax(w, 4)),
        Case("absmax_quantize([[127, 0.5, 1.5, 2.5, -0.5, -2.5, 3.5, 64]], bits=8)", call(halves, 8),
             lambda: _absmax(halves, 8)),
        Case("absmax_quantize(a row of zeros, bits=8)", call(zero_row, 8), lambda: _absmax(zero_row, 8)),
        Case("absmax_quantize([[-8, 1, 3, 2, -0.5], [0.25, -0.75, 0.5, -1, 0.125]], bits=3): the largest magnitudes "
             "negative", call(negative_peak, 3), lambda: _absmax(negative_peak, 3)),
        Case("absmax_quantize([[1e-39, -5e-40, 0, 2.5e-40, -3e-41, 7e-40]], bits=8): a subnormal scale",
             call(subnormal, 8), lambda: _absmax(subnormal, 8)),
        Case("absmax_quantize(w (1, 16), bits=8) — one row, bits by name", call(w[:1], bits=8), lambda: _absmax(w[:1], 8)),
    ]


def _zeropoint(w: torch.Tensor, bits: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    r = zeropoint_quantize(w, bits, "channel")
    return r.q, r.scale.reshape(-1, 1), r.zero.reshape(-1, 1)


def _zeropoint_cases() -> list[Case]:
    w = random_tensor(4, 16, seed=4)
    positive = random_tensor(3, 8, seed=5).abs() + 0.5  # min > 0: the range must still include zero
    negative = -(random_tensor(2, 8, seed=6).abs() + 0.5)
    halves = torch.tensor([[0.0, 15.0, 0.5, 2.5, 7.5, 3.5, 14.5, 1.5],
                           [-8.0, 7.0, -0.5, -2.5, 0.5, 1.5, 2.5, -7.5]])  # scale exactly 1: halves to even
    return [
        Case("zeropoint_quantize(w (4, 16), bits=8)", call(w, 8), lambda: _zeropoint(w, 8)),
        Case("zeropoint_quantize(w (4, 16), bits=4)", call(w, 4), lambda: _zeropoint(w, 4)),
        Case("zeropoint_quantize(all-positive rows, bits=4)", call(positive, 4), lambda: _zeropoint(positive, 4)),
        Case("zeropoint_quantize(all-negative rows, bits=8)", call(negative, 8), lambda: _zeropoint(negative, 8)),
        Case("zeropoint_quantize([[0, 15, 0.5, 2.5, 7.5, 3.5, 14.5, 1.5], [-8, 7, -0.5, -2.5, 0.5, 1.5, 2.5, -7.5]], "
             "bits=4): scale 1, halves", call(halves, 4), lambda: _zeropoint(halves, 4)),
        Case("zeropoint_quantize(w (1, 16), bits=2) — one row, bits by name", call(w[:1], bits=2),
             lambda: _zeropoint(w[:1], 2)),
    ]


def _pack_cases() -> list[Case]:
    small = torch.tensor([[1, 2, 3, 4]], dtype=torch.uint8)
    full = torch.randint(0, 16, (5, 12), generator=torch.Generator().manual_seed(7)).to(torch.uint8)
    edge = torch.tensor([[15, 0, 0, 15], [15, 15, 0, 0]], dtype=torch.uint8)
    pair = torch.tensor([[3, 12], [0, 9], [15, 15]], dtype=torch.uint8)
    return [
        Case("pack_int4([[1, 2, 3, 4]])", call(small), lambda: pack_int4(small)),
        Case("pack_int4(random (5, 12) in 0..15)", call(full), lambda: pack_int4(full)),
        Case("pack_int4([[15, 0, 0, 15], [15, 15, 0, 0]])", call(edge), lambda: pack_int4(edge)),
        Case("pack_int4([[3, 12], [0, 9], [15, 15]]): one byte per row", call(pair), lambda: pack_int4(pair)),
    ]


def _exact_block(expected, actual) -> str | None:
    """The scale must be the very float16 value llama.cpp stores and the integers identical."""
    if not isinstance(actual, tuple) or len(actual) != 2:
        return f"expected a tuple (scale, q), got {type(actual).__name__}."
    scale, q = actual
    if not isinstance(scale, float):
        return f"the scale should be a Python float (the float16 value, .item()), got {type(scale).__name__}."
    if scale != expected[0]:
        return (f"the scale is {scale!r}, expected {expected[0]!r}: the stored scale is max|x| / 127 rounded to "
                "float16.")
    if not isinstance(q, torch.Tensor) or q.dtype != torch.int8 or q.shape != expected[1].shape:
        return f"q should be an int8 tensor of shape (32,), got {getattr(q, 'dtype', type(q).__name__)}."
    if not torch.equal(q, expected[1]):
        where = int((q != expected[1]).nonzero()[0])
        return f"q[{where}] is {int(q[where])}, expected {int(expected[1][where])}."
    return None


def _q8_cases() -> list[Case]:
    normal = random_tensor(32, seed=8)
    ties = torch.tensor([127.0, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5] * 4)  # scale 1: roundf's ties
    # 0.49999997 + 0.5 rounds to 1.0 in float32, so floor(x + 0.5) gives 1 where roundf gives 0
    near_half = torch.tensor([127.0, 0.49999997, -0.49999997, 1.4999999, 2.5, -2.5, 0.5, -126.5] * 4)
    awkward = random_tensor(32, seed=3) * 0.0137  # dividing by the float16 scale instead changes an integer
    zeros = torch.zeros(32)
    tiny = torch.linspace(-1e-9, 0.8e-9, 32)  # d = 7.9e-12 becomes float16 0: q still comes from the float32 d
    subnormal = torch.linspace(-2e-6, 1e-5, 32)  # d = 7.9e-8: a subnormal float16 scale
    negative_peak = torch.tensor([-3.0] + [0.1 * i for i in range(31)])  # max |x| at a negative entry
    return [
        Case("q8_0_block(x (32,))", call(normal), lambda: q8_0_block(normal), compare=_exact_block),
        Case("q8_0_block([127, 0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 3.5] × 4)", call(ties), lambda: q8_0_block(ties), compare=_exact_block),
        Case("q8_0_block(x (32,) × 0.0137)", call(awkward), lambda: q8_0_block(awkward), compare=_exact_block),
        Case("q8_0_block(zeros(32))", call(zeros), lambda: q8_0_block(zeros), compare=_exact_block),
        Case("q8_0_block([127, 0.49999997, -0.49999997, 1.4999999, 2.5, -2.5, 0.5, -126.5] × 4)", call(near_half),
             lambda: q8_0_block(near_half), compare=_exact_block),
        Case("q8_0_block(linspace(-1e-9, 0.8e-9, 32)): a scale float16 rounds to 0", call(tiny),
             lambda: q8_0_block(tiny), compare=_exact_block),
        Case("q8_0_block(linspace(-2e-6, 1e-5, 32)): a subnormal float16 scale", call(subnormal),
             lambda: q8_0_block(subnormal), compare=_exact_block),
        Case("q8_0_block([-3, 0, 0.1, …, 3.0]): the largest magnitude negative", call(negative_peak),
             lambda: q8_0_block(negative_peak), compare=_exact_block),
    ]


def _kv(n_layers: int, n_heads: int, n_kv_heads: int, head_dim: int, tokens: int, batch: int, bytes_per_value: int) -> int:
    config = SLMConfig(d_model=n_heads * head_dim, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv_heads)
    precision = {4: "fp32", 2: "bf16", 1: "int8"}[bytes_per_value]
    return int(_kv_cache_bytes(config, tokens, batch=batch, precision=precision))


def _kv_cases() -> list[Case]:
    shapes = [
        (30, 9, 3, 64, 8192, 1, 2),  # SmolLM2-135M at its full context, bf16
        (32, 32, 8, 128, 8192, 1, 2),  # Llama 3 8B: grouped-query attention, 8 K/V heads
        (12, 12, 12, 64, 1024, 4, 4),  # GPT-2 124M, batch 4, fp32
        (1, 2, 1, 2, 1, 1, 1),
        (24, 32, 8, 64, 32768, 3, 1),  # int8 cache, a long context: 9.7 GB
    ]
    cases = [
        Case(f"kv_cache_bytes({l}, {h}, {kv}, {d}, {t}, {b}, {v})", call(l, h, kv, d, t, b, v),
             lambda s=(l, h, kv, d, t, b, v): _kv(*s))
        for l, h, kv, d, t, b, v in shapes
    ]
    named = dict(n_layers=16, n_heads=32, n_kv_heads=8, head_dim=64, tokens=4096, batch=2, bytes_per_value=2)
    cases.append(Case("kv_cache_bytes(" + ", ".join(f"{k}={v}" for k, v in named.items()) + ") — every argument by name",
                      call(**named), lambda: _kv(*named.values())))
    return cases


def _ste_reference(w: torch.Tensor, bits: int, upstream: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return dequantize(absmax_quantize(w, bits, "channel")), upstream.clone()


def _ste_run(w: torch.Tensor, bits: int, upstream: torch.Tensor):
    def run(fn):
        leaf = w.clone().requires_grad_(True)
        out = fn(leaf, bits)
        if not torch.equal(leaf.detach(), w):
            raise InputChanged("your function changed its input `w` in place; return a new tensor and leave `w` "
                               "as it was (its gradient comes through the returned tensor)")
        if not isinstance(out, torch.Tensor):
            return out
        if out.requires_grad:
            out.backward(upstream)
        return out.detach(), leaf.grad
    return run


def _ste_plain_run(w: torch.Tensor, bits: int):
    def run(fn):
        given = w.clone()
        out = fn(given, bits=bits)
        if given.requires_grad or given.grad is not None or not torch.equal(given, w):
            raise InputChanged("your function changed its input `w` (its values, requires_grad or .grad); the "
                               "caller's tensor must come back as it was")
        return out.detach() if isinstance(out, torch.Tensor) else out
    return run


def _ste_cases() -> list[Case]:
    cases = []
    for seed, (shape, bits) in enumerate([((4, 16), 4), ((3, 8), 8), ((2, 32), 2)]):
        w = random_tensor(*shape, seed=10 + seed)
        upstream = random_tensor(*shape, seed=20 + seed)
        cases.append(Case(f"fake_quantize_ste(w {shape}, bits={bits}); backward(g)", _ste_run(w, bits, upstream),
                          lambda w=w, b=bits, g=upstream: _ste_reference(w, b, g), parts=("value and gradient",)))
    plain = random_tensor(2, 8, seed=30) * torch.tensor([[1.0], [-50.0]])
    cases.append(Case("fake_quantize_ste(w (2, 8), bits=4) on a tensor without requires_grad", _ste_plain_run(plain, 4),
                      lambda: dequantize(absmax_quantize(plain, 4, "channel"))))
    return cases


q1 = Problem(
    name="q1", chapter="10", target="absmax_quantize", title="absmax (symmetric) int quantization per row",
    cases=_absmax_cases,
    hints=[
        "Each row gets its own scale: the row's largest |w| divided by the largest integer, 2^(bits-1) - 1 "
        "(127 for 8 bits). Divide, round to the nearest integer (torch.round), store as int8. A row of zeros "
        "needs a scale that does not divide by zero.",
        "Worked small, one row -8 1 3 2 at 3 bits: the largest integer is 3, the scale 8 over 3; the integers "
        "are -3, 0.375 to 0, 1.125 to 1 and 0.75 to 1. Divide by the scale rather than multiply by its "
        "reciprocal, which overflows for tiny scales.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="10", target="zeropoint_quantize", title="zero-point (asymmetric) quantization per row",
    cases=_zeropoint_cases,
    hints=[
        "Map each row's range [min(w, 0), max(w, 0)] onto the integers 0 … 2^bits - 1: the scale is the "
        "range over 2^bits - 1, the zero point is the (rounded) integer that stands for 0.0, and "
        "q = round(w / scale) + zero, clamped to the integer range.",
        "Worked small, one row -8 … 7 at 4 bits: the range is 15 over 15 integers, so the scale is 1 and the "
        "zero point 8; the value 0.5 becomes 0 + 8 (torch.round sends halves to even) and 7 becomes 15.",
    ],
    points=2,
)

q3 = Problem(
    name="q3", chapter="10", target="pack_int4", title="pack two int4 values per byte",
    cases=_pack_cases,
    hints=[
        "Take the even columns and the odd columns apart; each even value fills the low 4 bits of a byte, "
        "its odd neighbour the high 4 bits (shift it left by 4 and OR them).",
        "One byte worked out: columns 3 and 12 give 3 in the low half and 12 times 16 = 192 in the high half, "
        "the byte 195. Slicing with a step of two picks every other column.",
    ],
    points=1,
)

q4 = Problem(
    name="q4", chapter="10", target="q8_0_block", title="one GGUF Q8_0 block",
    cases=_q8_cases,
    hints=[
        "Q8_0 is absmax over a block of 32 with two details of llama.cpp: the scale d = max|x| / 127 is "
        "stored as float16 (return the float16 value), and q = roundf(x · (1/d)) rounds halves away from zero, "
        "unlike torch.round. Compute q from the float32 d, before rounding d to float16.",
        "Round halves away from zero without floor of x plus 0.5: in float32, 0.49999997 plus 0.5 is exactly "
        "1.0. Work on the magnitude: its whole part, plus one when the fraction is at least a half, then the sign.",
    ],
    points=2,
)

q5 = Problem(
    name="q5", chapter="10", target="kv_cache_bytes", title="the memory of a KV cache",
    cases=_kv_cases,
    hints=[
        "Every layer stores a key and a value vector for every token of every sequence in the batch, one per "
        "key/value head (not per query head: grouped-query attention shares them). Return an int.",
        "Worked small: 1 layer, 1 key/value head of 2 numbers, 1 token, 1 sequence, 1 byte each: a key and "
        "a value make 4 bytes. Every other argument multiplies that; the query heads do not.",
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="10", target="fake_quantize_ste", title="the straight-through estimator",
    cases=_ste_cases,
    hints=[
        "Return a tensor whose value is w quantized per row (absmax at `bits`) and dequantized again, but "
        "whose gradient with respect to w is the identity: add to w the difference (rounded - w) with its "
        "gradient cut off (.detach()).",
        "The trick on one number: with w = 0.3 and its rounded value 0.25, w + (0.25 - w) detached has the value "
        "0.25 and the derivative 1. Compute the scale and the rounding from a detached w, and leave w itself alone.",
    ],
    points=2,
)
