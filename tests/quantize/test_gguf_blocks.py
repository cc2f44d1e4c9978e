"""GGUF block formats, bit for bit against the gguf package's own quantizers."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from gguf import GGMLQuantizationType
from gguf.quants import dequantize as gguf_dequantize
from gguf.quants import quantize as gguf_quantize

from slm_course.quantize import BYTES_PER_BLOCK, q8_0_block, quantize_block, round_half_away

KINDS = ["Q8_0", "Q4_0", "Q4_1"]


def cases():
    g = torch.Generator().manual_seed(0)
    halves = torch.tensor([0.5, 1.5, 2.5, -2.5, -0.5, 127.0, 3.5, -3.5] * 4).reshape(1, 32)
    return {
        "normal": torch.randn(16, 128, generator=g),
        "small": torch.randn(4, 64, generator=g) * 1e-4,
        "zeros": torch.zeros(2, 32),
        "halves": halves,  # ties: roundf rounds them away from zero
        "one-sided": torch.rand(3, 96, generator=g) + 1.0,
        "3-d": torch.randn(2, 3, 64, generator=g),
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", list(cases()))
def test_bit_identical_to_gguf(kind, case):
    x = cases()[case]
    mine = quantize_block(x, kind)
    ref = gguf_quantize(x.numpy(), GGMLQuantizationType[kind])
    assert mine.dtype == torch.uint8 and mine.shape == ref.shape
    assert np.array_equal(mine.numpy(), ref)
    assert mine.shape[-1] == x.shape[-1] // 32 * BYTES_PER_BLOCK[kind]


@pytest.mark.parametrize("kind,tolerance", [("Q8_0", 0.01), ("Q4_0", 0.2), ("Q4_1", 0.15)])
def test_round_trip_through_gguf_dequantize(kind, tolerance):
    x = cases()["normal"]
    back = gguf_dequantize(quantize_block(x, kind).numpy(), GGMLQuantizationType[kind])
    assert np.abs(back - x.numpy()).max() / x.abs().max().item() < tolerance


def test_q8_0_block_numbers():
    x = torch.linspace(-1, 1, 32)
    scale, q = q8_0_block(x)
    assert scale == pytest.approx(1 / 127, rel=1e-3) and q.dtype == torch.int8
    assert q[0].item() == -127 and q[-1].item() == 127
    with pytest.raises(ValueError, match="32"):
        q8_0_block(torch.zeros(31))


def test_roundf_and_errors():
    assert round_half_away(torch.tensor([0.5, 1.5, 2.5, -2.5, 0.49])).tolist() == [1, 2, 3, -3, 0]
    with pytest.raises(ValueError, match="multiple of 32"):
        quantize_block(torch.zeros(2, 33), "Q8_0")
    with pytest.raises(ValueError, match="Q8_0"):
        quantize_block(torch.zeros(2, 32), "Q5_0")
