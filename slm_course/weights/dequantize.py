"""GGUF's block quantization formats, dequantized by readable functions (chapter 6).

A quantized GGUF tensor is a run of *blocks*; each block stores 32 weights as small integers plus one
or two float16 numbers that turn them back into floats. The formats chapter 6 reads:

| type  | bytes per 32 weights | block layout                               | weight               |
|-------|----------------------|--------------------------------------------|----------------------|
| Q4_0  | 18                   | ``d`` (f16) · 16 bytes of 4-bit ``q``       | ``d · (q − 8)``      |
| Q4_1  | 20                   | ``d`` (f16) · ``m`` (f16) · 16 bytes of ``q`` | ``d · q + m``        |
| Q8_0  | 34                   | ``d`` (f16) · 32 signed bytes ``q``         | ``d · q``            |
| F16   | 2 per weight         | IEEE half floats                           | the float            |
| F32   | 4 per weight         | IEEE single floats                         | the float            |

In the 4-bit formats byte ``j`` of ``q`` holds weight ``j`` in its low nibble and weight ``j + 16`` in
its high nibble. Every function takes the raw bytes (a ``uint8`` tensor, any shape whose size is a
whole number of blocks) and returns the weights as a flat float32 tensor, bit-for-bit equal to
``gguf.quants.dequantize`` (tests/weights/test_dequantize.py): scales are widened to float32 first,
then multiplied, then the minimum is added, in that order.
"""
from __future__ import annotations

import torch

BLOCK_SIZE = 32  # weights per block in Q4_0, Q4_1 and Q8_0
BLOCK_BYTES = {"Q4_0": 2 + 16, "Q4_1": 2 + 2 + 16, "Q8_0": 2 + 32}  # bytes per block of 32 weights


def _as_blocks(raw: torch.Tensor, kind: str) -> torch.Tensor:
    """``raw`` bytes as ``(n_blocks, bytes per block)``; a clear error if they do not fill whole blocks."""
    if not isinstance(raw, torch.Tensor) or raw.dtype != torch.uint8:
        raise TypeError(f"dequantize_{kind.lower()} expects raw bytes as a uint8 tensor, got {type(raw).__name__}"
                        + (f" of dtype {raw.dtype}" if isinstance(raw, torch.Tensor) else "") + ".")
    nbytes = BLOCK_BYTES[kind]
    if raw.numel() % nbytes:
        raise ValueError(f"{kind} data must be whole blocks of {nbytes} bytes; got {raw.numel()} bytes.")
    return raw.reshape(-1, nbytes)


def _f16(two_bytes: torch.Tensor) -> torch.Tensor:
    """``(n, 2)`` little-endian bytes → ``(n, 1)`` float32: the block's float16 scale, widened."""
    return two_bytes.contiguous().view(torch.float16).to(torch.float32)


def _nibbles(qs: torch.Tensor) -> torch.Tensor:
    """``(n, 16)`` bytes → ``(n, 32)`` 4-bit values 0…15: the 16 low nibbles, then the 16 high ones."""
    low = qs & 0x0F  # weights 0…15 of the block
    high = qs >> 4  # weights 16…31
    return torch.cat([low, high], dim=1)


def dequantize_q4_0(raw: torch.Tensor) -> torch.Tensor:
    """Q4_0 bytes → float32 weights ``(n_blocks · 32,)``: ``d · (q − 8)``, q a 4-bit value 0…15."""
    blocks = _as_blocks(raw, "Q4_0")
    d = _f16(blocks[:, 0:2])  # (n, 1) scale
    q = _nibbles(blocks[:, 2:18]).to(torch.int8) - 8  # (n, 32) in −8…7
    return (d * q.to(torch.float32)).reshape(-1)


def dequantize_q4_1(raw: torch.Tensor) -> torch.Tensor:
    """Q4_1 bytes → float32 weights ``(n_blocks · 32,)``: ``d · q + m``, q a 4-bit value 0…15.

    ``m`` is the block's smallest weight and ``d`` the step ``(max − min) / 15``, so the 16 levels
    span the block's range exactly.
    """
    blocks = _as_blocks(raw, "Q4_1")
    d = _f16(blocks[:, 0:2])  # (n, 1) step
    m = _f16(blocks[:, 2:4])  # (n, 1) minimum
    q = _nibbles(blocks[:, 4:20]).to(torch.float32)  # (n, 32) in 0…15
    return (d * q + m).reshape(-1)


def dequantize_q8_0(raw: torch.Tensor) -> torch.Tensor:
    """Q8_0 bytes → float32 weights ``(n_blocks · 32,)``: ``d · q``, q a signed byte −128…127."""
    blocks = _as_blocks(raw, "Q8_0")
    d = _f16(blocks[:, 0:2])  # (n, 1) scale
    q = blocks[:, 2:34].contiguous().view(torch.int8)  # (n, 32) signed bytes
    return (d * q.to(torch.float32)).reshape(-1)


def dequantize_f16(raw: torch.Tensor) -> torch.Tensor:
    """F16 bytes → float32 weights (every pair of bytes is one little-endian half float)."""
    if raw.numel() % 2:
        raise ValueError(f"F16 data must be a whole number of 2-byte values; got {raw.numel()} bytes.")
    return raw.reshape(-1).contiguous().view(torch.float16).to(torch.float32)


def dequantize_f32(raw: torch.Tensor) -> torch.Tensor:
    """F32 bytes → float32 weights (a reinterpretation; no arithmetic)."""
    if raw.numel() % 4:
        raise ValueError(f"F32 data must be a whole number of 4-byte values; got {raw.numel()} bytes.")
    return raw.reshape(-1).contiguous().view(torch.float32).clone()


DEQUANTIZERS = {
    "F32": dequantize_f32, "F16": dequantize_f16,
    "Q4_0": dequantize_q4_0, "Q4_1": dequantize_q4_1, "Q8_0": dequantize_q8_0,
}
SUPPORTED_TYPES = tuple(DEQUANTIZERS)


def dequantize(raw: torch.Tensor, kind: str) -> torch.Tensor:
    """Dequantize raw bytes of GGUF type ``kind`` (``"Q4_1"``, ``"Q8_0"``, …) to flat float32 weights."""
    if kind not in DEQUANTIZERS:
        raise ValueError(
            f"GGUF tensor type {kind} is not supported by the course's dequantizers; "
            f"supported: {', '.join(SUPPORTED_TYPES)}."
        )
    return DEQUANTIZERS[kind](raw)
