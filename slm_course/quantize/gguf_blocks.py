"""GGUF's block quantizations Q8_0, Q4_0 and Q4_1, written out (chapter 10; chapter 6 reads them).

llama.cpp stores weights in blocks of 32 along each row. A block is its scale (and minimum) as
float16, then the integers:

- **Q8_0** (34 bytes): ``d = max|x| / 127``, ``q = round(x / d)`` (half away from zero), int8.
  The absmax quantizer with a group size of 32.
- **Q4_0** (18 bytes): ``d = m / -8`` where ``m`` is the value of largest magnitude *with its sign*,
  ``q = trunc(x / d + 8.5)`` clipped to ``[0, 15]``, dequantized ``(q - 8) · d``; so ``m`` itself
  maps exactly to ``q = 0`` (−8) and the other side gets the 15 remaining levels.
- **Q4_1** (20 bytes): ``d = (max - min) / 15``, ``m = min``, ``q = trunc((x - m) / d + 0.5)``,
  dequantized ``q · d + m``: the zero-point quantizer with a float minimum.

Four-bit blocks pack values ``0…15`` into the low nibbles and ``16…31`` into the high nibbles of 16
bytes. The functions return the bytes exactly as the ``gguf`` package's ``gguf.quants.quantize``
does (a test checks them bit for bit), as a ``(..., n / 32 · bytes_per_block)`` uint8 tensor.
"""
from __future__ import annotations

import torch

BLOCK = 32  # weights per block in Q8_0, Q4_0 and Q4_1
BYTES_PER_BLOCK = {"Q8_0": 2 + 32, "Q4_0": 2 + 16, "Q4_1": 2 + 2 + 16}


def _as_blocks(x: torch.Tensor) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise TypeError(f"expected a floating-point torch.Tensor, got {type(x).__name__}.")
    if x.dim() == 0 or x.shape[-1] % BLOCK:
        raise ValueError(f"GGUF blocks hold {BLOCK} weights: the last dimension must be a multiple of {BLOCK}, "
                         f"got shape {tuple(x.shape)}.")
    return x.detach().float().reshape(-1, BLOCK)  # (n_blocks, 32)


def _fp16_bytes(v: torch.Tensor) -> torch.Tensor:
    """(n, 1) float32 → (n, 2) uint8: the little-endian bytes of the float16 value."""
    return v.to(torch.float16).contiguous().view(torch.uint8).reshape(-1, 2)


def _reciprocal(d: torch.Tensor) -> torch.Tensor:
    return torch.where(d == 0, torch.zeros_like(d), 1 / torch.where(d == 0, torch.ones_like(d), d))


def round_half_away(v: torch.Tensor) -> torch.Tensor:
    """C's ``roundf``: halves go away from zero (``2.5 → 3``, ``-2.5 → -3``), unlike ``torch.round``'s
    half-to-even. Written as ``gguf`` writes it (floor plus a carry) so every float rounds the same."""
    a = v.abs()
    floored = torch.floor(a)
    return torch.sign(v) * (floored + torch.floor(2 * (a - floored)))


def _pack_nibbles(q: torch.Tensor) -> torch.Tensor:
    """(n, 32) uint8 in [0, 15] → (n, 16): values 0-15 in the low nibbles, 16-31 in the high."""
    return q[:, :16] | (q[:, 16:] << 4)


def _out_shape(x: torch.Tensor, kind: str) -> tuple[int, ...]:
    return (*x.shape[:-1], x.shape[-1] // BLOCK * BYTES_PER_BLOCK[kind])


def quantize_q8_0(x: torch.Tensor) -> torch.Tensor:
    """Q8_0 bytes of ``x`` ``(..., n)``, ``n`` a multiple of 32 → uint8 ``(..., n / 32 · 34)``."""
    b = _as_blocks(x)                                              # (n_blocks, 32)
    d = b.abs().amax(dim=1, keepdim=True) / 127                    # (n_blocks, 1) the scale
    q = round_half_away(b * _reciprocal(d)).to(torch.int8)         # (n_blocks, 32) in [-127, 127]
    out = torch.cat([_fp16_bytes(d), q.view(torch.uint8)], dim=1)  # (n_blocks, 34)
    return out.reshape(_out_shape(x, "Q8_0"))


def quantize_q4_0(x: torch.Tensor) -> torch.Tensor:
    """Q4_0 bytes of ``x`` ``(..., n)`` → uint8 ``(..., n / 32 · 18)``."""
    b = _as_blocks(x)
    imax = b.abs().argmax(dim=1, keepdim=True)                     # first value of largest magnitude
    m = torch.gather(b, 1, imax)                                   # (n_blocks, 1), with its sign
    d = m / -8
    q = torch.trunc(b * _reciprocal(d) + 8.5).clamp(0, 15).to(torch.uint8)
    out = torch.cat([_fp16_bytes(d), _pack_nibbles(q)], dim=1)     # (n_blocks, 18)
    return out.reshape(_out_shape(x, "Q4_0"))


def quantize_q4_1(x: torch.Tensor) -> torch.Tensor:
    """Q4_1 bytes of ``x`` ``(..., n)`` → uint8 ``(..., n / 32 · 20)``."""
    b = _as_blocks(x)
    high = b.amax(dim=1, keepdim=True)
    low = b.amin(dim=1, keepdim=True)
    d = (high - low) / 15
    q = torch.trunc((b - low) * _reciprocal(d) + 0.5).clamp(0, 15).to(torch.uint8)
    out = torch.cat([_fp16_bytes(d), _fp16_bytes(low), _pack_nibbles(q)], dim=1)  # (n_blocks, 20)
    return out.reshape(_out_shape(x, "Q4_1"))


def quantize_block(x: torch.Tensor, kind: str) -> torch.Tensor:
    """Bytes of ``x`` in GGUF block format ``kind`` ("Q8_0", "Q4_0" or "Q4_1")."""
    fns = {"Q8_0": quantize_q8_0, "Q4_0": quantize_q4_0, "Q4_1": quantize_q4_1}
    if kind not in fns:
        raise ValueError(f"unknown block format {kind!r}; choose one of {', '.join(fns)}.")
    return fns[kind](x)


def q8_0_block(x: torch.Tensor) -> tuple[float, torch.Tensor]:
    """One Q8_0 block read back as numbers: ``(scale, q)`` for 32 weights — the float16 scale as a
    Python float and the 32 int8 integers (what :func:`quantize_q8_0` stores as bytes)."""
    if x.shape != (BLOCK,):
        raise ValueError(f"a Q8_0 block holds exactly {BLOCK} weights, got shape {tuple(x.shape)}.")
    raw = quantize_q8_0(x.reshape(1, BLOCK)).reshape(-1)
    scale = raw[:2].view(torch.float16).float().item()
    return scale, raw[2:].view(torch.int8).clone()
