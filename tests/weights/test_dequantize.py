"""The course's GGUF dequantizers equal gguf's reference dequantization, bit for bit."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import gguf
from gguf.quants import dequantize as gguf_dequantize, quantize as gguf_quantize

from slm_course.weights import dequantize, dequantize_q4_1, dequantize_q8_0

QUANTIZED = ["Q4_0", "Q4_1", "Q8_0", "F16"]


def sample(rows: int = 6, cols: int = 128, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 0.05, (rows, cols)).astype(np.float32)
    w[0, :32] = 0.0  # an all-zero block (scale 0)
    w[1, :32] = 3.0  # a constant block (Q4_1: d = 0)
    w[2, 5] = -7.5  # an outlier
    return w


@pytest.mark.parametrize("kind", QUANTIZED)
def test_bit_for_bit_equal_to_gguf(kind):
    w = sample()
    qtype = gguf.GGMLQuantizationType[kind]
    raw = gguf_quantize(w, qtype)
    theirs = gguf_dequantize(raw, qtype).reshape(-1)
    ours = dequantize(torch.from_numpy(np.ascontiguousarray(raw).view(np.uint8).reshape(-1)), kind)
    assert ours.dtype == torch.float32
    assert np.array_equal(ours.numpy().view(np.uint32), theirs.astype(np.float32).view(np.uint32))


def test_f32_is_a_reinterpretation():
    w = sample()
    ours = dequantize(torch.from_numpy(w.view(np.uint8).reshape(-1).copy()), "F32")
    assert np.array_equal(ours.numpy(), w.reshape(-1))


def test_q4_1_one_block_by_hand():
    # d = 0.5, m = -1.0, byte j = (j % 16) | ((15 - j % 16) << 4): weight j = 0.5·j - 1, weight 16 + j = 0.5·(15 - j) - 1
    d, m = np.float16(0.5).tobytes(), np.float16(-1.0).tobytes()
    qs = bytes((j | ((15 - j) << 4)) for j in range(16))
    raw = torch.tensor(list(d + m + qs), dtype=torch.uint8)
    expected = [0.5 * j - 1 for j in range(16)] + [0.5 * (15 - j) - 1 for j in range(16)]
    assert dequantize_q4_1(raw).tolist() == expected


def test_q8_0_signed_bytes():
    raw = torch.tensor(list(np.float16(0.25).tobytes() + bytes([0, 1, 127, 128, 255] + [0] * 27)), dtype=torch.uint8)
    assert dequantize_q8_0(raw)[:5].tolist() == [0.0, 0.25, 31.75, -32.0, -0.25]


def test_errors():
    with pytest.raises(ValueError, match="whole blocks of 20 bytes"):
        dequantize_q4_1(torch.zeros(21, dtype=torch.uint8))
    with pytest.raises(TypeError, match="uint8"):
        dequantize_q8_0(torch.zeros(34))
    with pytest.raises(ValueError, match="Q6_K is not supported.*Q4_1"):
        dequantize(torch.zeros(210, dtype=torch.uint8), "Q6_K")
