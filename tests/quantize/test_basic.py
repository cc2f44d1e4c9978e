"""Quantizers: worked values, round trips within the step size, int4 packing, clear errors."""
from __future__ import annotations

import pytest
import torch

from slm_course.quantize import (
    absmax_quantize, dequantize, minmax_quantize, pack_int4, quantize, reconstruction_error, unpack_int4,
    zeropoint_quantize,
)


def weights(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def test_absmax_worked_example():
    r = absmax_quantize(torch.tensor([[0.5, -1.0, 0.25, 1.0]]), bits=8)
    assert r.q.dtype == torch.int8 and r.q.tolist() == [[64, -127, 32, 127]]
    assert r.scale.shape == (1, 1, 1) and r.scale.item() == pytest.approx(1 / 127)
    assert r.zero is None and r.error == pytest.approx(abs(0.5 - 64 / 127), abs=1e-7)


def test_zeropoint_worked_example():
    r = zeropoint_quantize(torch.tensor([[0.0, 1.0, 2.0, 3.0]]), bits=2, granularity="tensor")
    # range [0, 3] in 3 steps: scale 1, zero 0, q = w
    assert r.q.dtype == torch.uint8 and r.q.tolist() == [[0, 1, 2, 3]]
    assert r.zero.item() == 0 and r.scale.item() == pytest.approx(1.0)
    r = zeropoint_quantize(torch.tensor([[-1.0, 0.0, 2.0]]), bits=2, granularity="tensor")
    assert r.zero.item() == 1 and dequantize(r).tolist() == [[-1.0, 0.0, 2.0]]


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("granularity,group", [("tensor", None), ("channel", None), ("group", 16)])
@pytest.mark.parametrize("symmetric", [True, False])
def test_round_trip_within_half_a_step(bits, granularity, group, symmetric):
    w = weights(12, 64)
    r = quantize(w, bits, symmetric=symmetric, granularity=granularity, group_size=group)
    back = dequantize(r)
    assert back.shape == w.shape and back.dtype == torch.float32
    step = r.scale.expand(*r.scale.shape[:2], w.numel() // r.scale[..., 0].numel()).reshape(w.shape)
    assert ((w - back).abs() <= step / 2 + 1e-6).all()
    assert r.error == pytest.approx((w - back).abs().max().item(), rel=1e-5)
    levels = 2 ** (bits - 1) - 1 if symmetric else 2**bits - 1
    assert int(r.q.max()) <= levels and int(r.q.min()) >= (-levels if symmetric else 0)


def test_finer_blocks_and_more_bits_reduce_error():
    w = weights(32, 256)
    w[0, 0] = 25.0  # an outlier: a per-tensor scale spends its levels on it
    errors = [reconstruction_error(w, absmax_quantize(w, 4, g, 32))["rmse"] for g in ("tensor", "channel", "group")]
    assert errors[0] > errors[1] > errors[2]
    by_bits = [reconstruction_error(w, absmax_quantize(w, b, "group", 32))["rmse"] for b in (2, 4, 8)]
    assert by_bits[0] > by_bits[1] > by_bits[2]


def test_zero_point_wins_on_one_sided_weights():
    w = weights(8, 64).abs()  # all positive: absmax wastes the negative half of its levels
    sym = reconstruction_error(w, absmax_quantize(w, 4))["rmse"]
    asym = reconstruction_error(w, zeropoint_quantize(w, 4))["rmse"]
    assert asym < 0.6 * sym


def test_all_zero_block_and_sizes():
    w = torch.zeros(2, 32)
    assert dequantize(absmax_quantize(w, 4, "group", 16)).abs().max() == 0
    assert dequantize(zeropoint_quantize(w, 4, "group", 16)).abs().max() == 0
    r = absmax_quantize(weights(4, 64), 4, "group", 32)
    assert r.nbytes() == 4 * 64 / 2 + 2 * 8


def test_pack_unpack_int4():
    q = torch.tensor([[1, 15, 0, 7]], dtype=torch.uint8)
    packed = pack_int4(q)
    assert packed.tolist() == [[1 | 15 << 4, 0 | 7 << 4]]
    assert torch.equal(unpack_int4(packed), q)
    s = torch.tensor([[-8, 7, 0, -1]], dtype=torch.int8)
    assert torch.equal(unpack_int4(pack_int4(s), signed=True), s)
    r = torch.randint(0, 16, (5, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    assert torch.equal(unpack_int4(pack_int4(r)), r)


@pytest.mark.parametrize("call,message", [
    (lambda: absmax_quantize(torch.ones(2, 30), 4, "group", 16), "multiple of group_size"),
    (lambda: absmax_quantize(torch.ones(2, 32), 9), "from 2 to 8"),
    (lambda: absmax_quantize(torch.ones(2, 32, dtype=torch.long), 8), "floating-point"),
    (lambda: absmax_quantize(torch.ones(2, 3, 4), 8, "channel"), "2-D"),
    (lambda: zeropoint_quantize(torch.ones(2, 32), 4, "block"), "granularity"),
    (lambda: pack_int4(torch.full((1, 2), 16, dtype=torch.uint8)), r"\[0, 15\]"),
    (lambda: pack_int4(torch.zeros(1, 3, dtype=torch.uint8)), "even"),
])
def test_clear_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_minmax_grid_spans_each_block_and_beats_a_rounded_zero_point():
    w = weights(16, 64) + 0.3  # lopsided blocks: the zero point is rounded, the float minimum is not
    mm = minmax_quantize(w, 4, "group", 32)
    assert mm.zero is None and mm.minimum.shape == (16, 2, 1) and not mm.symmetric
    back = dequantize(mm)
    blocks_w, blocks_back = w.reshape(16, 2, 32), back.reshape(16, 2, 32)
    torch.testing.assert_close(blocks_back.amin(-1), blocks_w.amin(-1))
    torch.testing.assert_close(blocks_back.amax(-1), blocks_w.amax(-1))
    assert ((w - back).abs() <= mm.scale.expand(16, 2, 32).reshape(16, 64) / 2 + 1e-6).all()
    assert reconstruction_error(w, mm)["rmse"] < reconstruction_error(w, zeropoint_quantize(w, 4, "group", 32))["rmse"]
    assert mm.nbytes() == 16 * 64 / 2 + 2 * 32 + 2 * 32  # nibbles + fp16 scale + fp16 minimum per block


def test_minmax_reproduces_weights_already_on_a_q4_1_grid():
    from slm_course.quantize import quantize_q4_1
    from slm_course.weights import dequantize_q4_1

    w = weights(8, 128)
    on_grid = dequantize_q4_1(quantize_q4_1(w).reshape(-1)).reshape(w.shape)
    again = dequantize(minmax_quantize(on_grid, 4, "group", 32, fp16_scales=True))
    torch.testing.assert_close(again, on_grid, rtol=0, atol=1e-6)
    # a zero point rounded to an integer shifts the grid: a second rounding error on top of the first
    assert reconstruction_error(on_grid, zeropoint_quantize(on_grid, 4, "group", 32))["relative"] > 0.02
