"""Chapter 10's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import torch

from slm_course.exercises import ch10
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects
from slm_course.quantize import absmax_quantize, dequantize, pack_int4, q8_0_block, zeropoint_quantize
from slm_course.model import SLMConfig, kv_cache_bytes

SOLVED = notebook_objects("10")
STUB = notebook_objects("10", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def test_absmax():
    def divides_by_128(w, bits):  # 2^(bits-1) levels: the largest weight overflows to +128 → clamped or wrapped
        scale = w.abs().amax(1, keepdim=True) / 2 ** (bits - 1)
        safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        return torch.round(w / safe).clamp(-128, 127).to(torch.int8), scale

    def per_tensor(w, bits):
        qmax = 2 ** (bits - 1) - 1
        scale = (w.abs().max() / qmax).expand(w.shape[0], 1).clone()
        return torch.round(w / scale).clamp(-qmax, qmax).to(torch.int8), scale

    def truncates(w, bits):
        qmax = 2 ** (bits - 1) - 1
        scale = w.abs().amax(1, keepdim=True) / qmax
        safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        return torch.trunc(w / safe).to(torch.int8), scale

    def float_integers(w, bits):
        q, scale = SOLVED["absmax_quantize"](w, bits)
        return q.float(), scale

    def flat_scale(w, bits):  # (rows,) instead of (rows, 1)
        q, scale = SOLVED["absmax_quantize"](w, bits)
        return q, scale.reshape(-1)

    def zero_row_scale_one(w, bits):  # the statement says a zero row keeps scale 0
        q, scale = SOLVED["absmax_quantize"](w, bits)
        return q, torch.where(scale == 0, torch.ones_like(scale), scale)

    def dividing_by_zero_anyway(w, bits):  # NaN integers for a zero row (int8 of NaN is not 0 reliably)
        qmax = 2 ** (bits - 1) - 1
        scale = w.abs().amax(1, keepdim=True) / qmax
        return torch.round(w / scale).nan_to_num(-128).clamp(-128, qmax).to(torch.int8), scale

    def _absmax_with(w, bits, *, peak=lambda w: w.abs().amax(1, keepdim=True), reciprocal=False,
                     rounding=torch.round):
        qmax = 2 ** (bits - 1) - 1
        scale = peak(w) / qmax
        safe = torch.where(scale == 0, torch.ones_like(scale), scale)
        x = w * (1 / safe) if reciprocal else w / safe
        return rounding(x).clamp(-qmax, qmax).to(torch.int8), scale

    def largest_value(w, bits):  # max, not max |w|: a negative peak gets a wrong scale
        return _absmax_with(w, bits, peak=lambda w: w.amax(1, keepdim=True).clamp(min=1e-30))

    def by_reciprocal(w, bits):  # 1 / 7.9e-42 is inf in float32
        return _absmax_with(w, bits, reciprocal=True)

    def floor_plus_half(w, bits):  # rounds -2.5 to -2 and 0.5 to 1
        return _absmax_with(w, bits, rounding=lambda x: torch.floor(x + 0.5))

    def bits_named_b(w, b):  # absmax_quantize(w, bits=8) fails
        return _absmax_with(w, b)

    check(ch10.q1, [largest_value, by_reciprocal, floor_plus_half, bits_named_b,
                    divides_by_128, per_tensor, truncates, float_integers, flat_scale, zero_row_scale_one,
                    dividing_by_zero_anyway])


def test_zeropoint():
    def range_without_zero(w, bits):  # min/max of the row only: zero is not representable
        qmax = 2**bits - 1
        low, high = w.amin(1, keepdim=True), w.amax(1, keepdim=True)
        scale = (high - low) / qmax
        zero = torch.round(-low / scale)
        return (torch.round(w / scale) + zero).clamp(0, qmax).to(torch.uint8), scale, zero.to(torch.int32)

    def unclamped_zero(w, bits):
        qmax = 2**bits - 1
        low, high = w.amin(1, keepdim=True), w.amax(1, keepdim=True).clamp(min=0)
        scale = (high - low) / qmax
        zero = torch.round(-low / scale)
        return (torch.round(w / scale) + zero).clamp(0, qmax).to(torch.uint8), scale, zero.to(torch.int32)

    def float_zero(w, bits):
        q, scale, zero = SOLVED["zeropoint_quantize"](w, bits)
        return q, scale, zero.float()

    def signed_levels(w, bits):  # 2^(bits-1) - 1 steps, as absmax
        qmax = 2 ** (bits - 1) - 1
        low, high = w.amin(1, keepdim=True).clamp(max=0), w.amax(1, keepdim=True).clamp(min=0)
        scale = (high - low) / qmax
        zero = torch.round(-low / scale)
        return (torch.round(w / scale) + zero).clamp(0, qmax).to(torch.uint8), scale, zero.to(torch.int32)

    def floor_plus_half(w, bits):  # C-style rounding: 0.5 becomes 1, torch.round gives 0
        qmax = 2 ** bits - 1
        low, high = w.amin(1, keepdim=True).clamp(max=0), w.amax(1, keepdim=True).clamp(min=0)
        scale = (high - low) / qmax
        zero = torch.floor(-low / scale + 0.5).clamp(0, qmax)
        q = (torch.floor(w / scale + 0.5) + zero).clamp(0, qmax)
        return q.to(torch.uint8), scale, zero.to(torch.int32)

    def per_tensor(w, bits):  # one range for the whole matrix
        r = zeropoint_quantize(w, bits, "tensor")
        return r.q, r.scale.reshape(1, 1).expand(w.shape[0], 1), r.zero.reshape(1, 1).expand(w.shape[0], 1)

    check(ch10.q2, [range_without_zero, unclamped_zero, float_zero, signed_levels, floor_plus_half, per_tensor])


def test_pack_int4():
    def swapped_nibbles(q):
        return (q[:, 0::2] << 4) | q[:, 1::2]

    def halves(q):  # GGUF's block layout (first half low, second half high), not the one asked
        n = q.shape[1] // 2
        return q[:, :n] | (q[:, n:] << 4)

    def wider_dtype(q):
        return (q[:, 0::2].long() | (q[:, 1::2].long() << 4))

    def adds(q):  # + instead of a shift: 1 + 2 = 3, not 0x21
        return q[:, 0::2] + q[:, 1::2]

    def needs_four_columns(q):  # pairs up columns 0-2 and 1-3 (a stride of cols // 2)
        half = q.shape[1] // 2
        return q[:, :half] | (q[:, half:] << 4) if q.shape[1] > 2 else q[:, :1] << 4 | q[:, 1:]

    check(ch10.q3, [swapped_nibbles, halves, wider_dtype, adds, needs_four_columns])
    assert ch10.q3.check(lambda q: q[:, ::2] + q[:, 1::2] * 16, quiet=True).correct  # another right answer


def test_q8_0_block():
    def half_to_even(x):  # torch.round: 2.5 -> 2, not 3
        d = x.abs().max() / 127
        inv = 1 / d if d > 0 else torch.tensor(0.0)
        return d.half().item(), torch.round(x * inv).to(torch.int8)

    def float32_scale(x):  # the scale as float32, not its stored float16 value
        scale, q = SOLVED["q8_0_block"](x)
        return (x.abs().max() / 127).item(), q

    def q_from_fp16_scale(x):  # rounds d to float16 first, then divides by it
        d = (x.abs().max() / 127).half().float()
        inv = 1 / d if d > 0 else torch.tensor(0.0)
        v = x * inv
        return d.item(), (torch.sign(v) * torch.floor(v.abs() + 0.5)).clamp(-127, 127).to(torch.int8)

    def nan_on_zeros(x):
        d = x.abs().max() / 127
        v = x / d
        return d.half().item(), (torch.sign(v) * torch.floor(v.abs() + 0.5)).nan_to_num(1).to(torch.int8)

    def floor_plus_half(x):  # floor(v + 0.5): -2.5 → -2, and 0.49999997 + 0.5 is 1.0 in float32
        d = x.abs().max() / 127
        v = x * (1 / d if d > 0 else torch.tensor(0.0))
        return d.to(torch.float16).item(), torch.floor(v + 0.5).to(torch.int8)

    def sign_floor_plus_half(x):  # halves away from zero, but 0.49999997 still goes to 1
        d = x.abs().max() / 127
        v = x * (1 / d if d > 0 else torch.tensor(0.0))
        return d.to(torch.float16).item(), (torch.sign(v) * torch.floor(v.abs() + 0.5)).to(torch.int8)

    def largest_value(x):  # max, not max |x|
        d = x.max() / 127
        v = x * (1 / d if d > 0 else torch.tensor(0.0))
        a = v.abs()
        q = torch.sign(v) * (torch.floor(a) + torch.floor(2 * (a - torch.floor(a))))
        return d.to(torch.float16).item(), q.clamp(-127, 127).to(torch.int8)

    check(ch10.q4, [half_to_even, float32_scale, q_from_fp16_scale, nan_on_zeros, floor_plus_half,
                    sign_floor_plus_half, largest_value])

    def with_numpy(x):  # another right answer: NumPy's float32 and C-style rounding by copysign
        import numpy as np

        v = x.numpy().astype(np.float32)
        d = np.float32(np.abs(v).max() / np.float32(127))
        inv = np.float32(1) / d if d > 0 else np.float32(0)
        scaled = v * inv
        whole = np.floor(np.abs(scaled))
        q = np.copysign(whole + (np.abs(scaled) - whole >= 0.5), scaled)
        return float(np.float16(d)), torch.from_numpy(q.astype(np.int8))

    assert ch10.q4.check(with_numpy, quiet=True).correct


def test_kv_cache_bytes():
    def query_heads(n_layers, n_heads, n_kv_heads, head_dim, tokens, batch, bytes_per_value):
        return 2 * n_layers * n_heads * head_dim * tokens * batch * bytes_per_value

    def keys_only(n_layers, n_heads, n_kv_heads, head_dim, tokens, batch, bytes_per_value):
        return n_layers * n_kv_heads * head_dim * tokens * batch * bytes_per_value

    def float_result(n_layers, n_heads, n_kv_heads, head_dim, tokens, batch, bytes_per_value):
        return 2.0 * n_layers * n_kv_heads * head_dim * tokens * batch * bytes_per_value

    def forgets_batch(n_layers, n_heads, n_kv_heads, head_dim, tokens, batch, bytes_per_value):
        return 2 * n_layers * n_kv_heads * head_dim * tokens * bytes_per_value

    def other_names(layers, heads, kv_heads, head_dim, tokens, batch, bytes_per_value):  # by keyword: fails
        return 2 * layers * kv_heads * head_dim * tokens * batch * bytes_per_value

    check(ch10.q5, [query_heads, keys_only, float_result, forgets_batch, other_names])


def test_straight_through():
    def no_gradient(w, bits):  # the rounded weights alone: the gradient is cut
        return dequantize(absmax_quantize(w.detach(), bits, "channel"))

    def no_rounding(w, bits):
        return w * 1.0

    def wrong_detach(w, bits):  # detaches w instead of the difference: gradient zero
        rounded = dequantize(absmax_quantize(w.detach(), bits, "channel"))
        return w.detach() + (rounded - w.detach()) + 0 * w

    def per_tensor(w, bits):
        qmax = 2 ** (bits - 1) - 1
        scale = w.detach().abs().max() / qmax
        rounded = torch.round(w.detach() / scale).clamp(-qmax, qmax) * scale
        return w + (rounded - w).detach()

    def edits_w(w, bits):  # writes the rounded values into w itself: value and gradient look right
        qmax = 2 ** (bits - 1) - 1
        scale = w.detach().abs().amax(dim=1, keepdim=True) / qmax
        w.data.copy_(torch.round(w.detach() / scale).clamp(-qmax, qmax) * scale)
        return w * 1

    def turns_on_grad(w, bits):  # makes the caller's tensor require grad
        w.requires_grad_(True)
        qmax = 2 ** (bits - 1) - 1
        scale = w.detach().abs().amax(dim=1, keepdim=True) / qmax
        return w + (torch.round(w.detach() / scale).clamp(-qmax, qmax) * scale - w).detach()

    def scale_not_detached(w, bits):  # the gradient also flows through the row's largest entry
        qmax = 2 ** (bits - 1) - 1
        scale = w.abs().amax(dim=1, keepdim=True) / qmax
        rounded = (torch.round(w / scale).clamp(-qmax, qmax) - w / scale).detach() + w / scale
        return rounded * scale

    check(ch10.q6, [no_gradient, no_rounding, wrong_detach, per_tensor, edits_w, turns_on_grad, scale_not_detached])


def test_solutions_equal_the_package():
    w = torch.randn(5, 32, generator=torch.Generator().manual_seed(0))
    q, scale = SOLVED["absmax_quantize"](w, 4)
    r = absmax_quantize(w, 4, "channel")
    assert torch.equal(q, r.q) and torch.equal(scale, r.scale.reshape(-1, 1))
    q, scale, zero = SOLVED["zeropoint_quantize"](w, 4)
    r = zeropoint_quantize(w, 4, "channel")
    assert torch.equal(q, r.q) and torch.equal(zero, r.zero.reshape(-1, 1))
    u = torch.randint(0, 16, (3, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(SOLVED["pack_int4"](u), pack_int4(u))
    mine, theirs = SOLVED["q8_0_block"](w[0]), q8_0_block(w[0])
    assert mine[0] == theirs[0] and torch.equal(mine[1], theirs[1])
    config = SLMConfig.from_name("smollm2-135m")
    assert SOLVED["kv_cache_bytes"](30, 9, 3, 64, 2048, 1, 2) == kv_cache_bytes(config, 2048, precision="bf16")
    x = w.clone().requires_grad_(True)
    out = SOLVED["fake_quantize_ste"](x, 4)
    out.sum().backward()
    assert torch.equal(out.detach(), dequantize(absmax_quantize(w, 4, "channel"))) and torch.equal(x.grad, torch.ones_like(w))
