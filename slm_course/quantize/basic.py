"""Quantizers written to be read (chapter 10): absmax and zero-point, per tensor, per channel, per group.

A quantizer maps float weights to small integers plus one float *scale* (and, for zero-point, one
integer *zero point*) per block of weights:

- **absmax** (symmetric): ``scale = max|w| / (2^(bits-1) - 1)``, ``q = round(w / scale)`` in
  ``[-(2^(bits-1) - 1), 2^(bits-1) - 1]``; dequantized ``q · scale``. Zero stays exactly zero.
- **zero-point** (asymmetric): the range ``[min(w, 0), max(w, 0)]`` is cut into ``2^bits - 1`` steps,
  ``scale = (max - min) / (2^bits - 1)``, ``zero = round(-min / scale)``, ``q = round(w / scale) + zero``
  in ``[0, 2^bits - 1]``; dequantized ``(q - zero) · scale``. Uses every level for lopsided weights.
- **min/max** (asymmetric with a float minimum, GGUF's Q4_1): ``scale = (max - min) / (2^bits - 1)``,
  ``q = round((w - min) / scale)``, dequantized ``q · scale + min``. The grid runs exactly from the
  block's minimum to its maximum; zero need not be on it. Costs one more float per block than
  zero-point, which rounds ``-min / scale`` to an integer and so shifts the whole grid by up to half a step.

The block a scale covers is the *granularity*: the whole tensor, one row (an output channel of a
linear layer, ``(out, in)`` weights) or a group of ``group_size`` consecutive weights in a row.
Smaller blocks follow the weights more closely and cost more scales.

Every quantizer returns a :class:`Quantized` holding the integers, the scales, the zero points and the
largest absolute error, like llama2.c's ``quantize_q80`` returns ``(q, scale, max_err)``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

Granularity = Literal["tensor", "channel", "group"]


@dataclass
class Quantized:
    """The result of a quantizer.

    ``q``: the integers, shaped like the input (int8 for absmax, uint8 for zero-point; an int4 value per
    element, unpacked: see :func:`pack_int4`). ``scale``: float32 ``(rows, groups, 1)`` — ``(1, 1, 1)``
    per tensor, ``(rows, 1, 1)`` per channel, ``(rows, in / group_size, 1)`` per group. ``zero``: int32 of
    the same shape for zero-point, None for absmax. ``error``: max ``|w - dequantize(q)|``.
    """

    q: torch.Tensor
    scale: torch.Tensor
    zero: torch.Tensor | None
    bits: int
    granularity: Granularity
    group_size: int | None
    error: float
    minimum: torch.Tensor | None = None

    @property
    def symmetric(self) -> bool:
        """True for absmax (no zero point, no minimum)."""
        return self.zero is None and self.minimum is None

    def dequantize(self) -> torch.Tensor:
        """The float32 weights these integers stand for, shaped like the input."""
        return dequantize(self)

    def nbytes(self) -> float:
        """Bytes to store it: ``bits`` per integer (int4 packs two per byte), 2 per scale (fp16, as GGUF
        stores them), 1 per zero point (at most 8 bits), 2 per minimum (fp16)."""
        size = self.q.numel() * self.bits / 8 + 2 * self.scale.numel()
        size += self.zero.numel() if self.zero is not None else 0
        return size + (2 * self.minimum.numel() if self.minimum is not None else 0)


def _check(w: torch.Tensor, bits: int, granularity: str, group_size: int | None) -> None:
    if not isinstance(w, torch.Tensor) or not w.is_floating_point():
        raise TypeError(f"expected a floating-point torch.Tensor of weights, got {type(w).__name__}"
                        + (f" of dtype {w.dtype}" if isinstance(w, torch.Tensor) else "") + ".")
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 8:
        raise ValueError(f"bits must be a whole number from 2 to 8, got {bits!r}.")
    if granularity not in ("tensor", "channel", "group"):
        raise ValueError(f"granularity must be 'tensor', 'channel' or 'group', got {granularity!r}.")
    if granularity != "tensor" and w.dim() != 2:
        raise ValueError(f"per-channel and group-wise quantization take a 2-D (out, in) weight, got shape "
                         f"{tuple(w.shape)}; use granularity='tensor' or reshape it.")
    if granularity == "group":
        if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
            raise ValueError(f"group-wise quantization needs a positive whole group_size, got {group_size!r}.")
        if w.shape[1] % group_size:
            raise ValueError(f"the rows have {w.shape[1]} weights, not a multiple of group_size={group_size}; "
                             "pick a group size that divides the input width (32, 64 or 128 usually do).")


def blocks(w: torch.Tensor, granularity: Granularity = "channel", group_size: int | None = None) -> torch.Tensor:
    """``w`` viewed as ``(rows, groups, block)``: the weights each scale covers along the last axis."""
    if granularity == "tensor":
        return w.reshape(1, 1, -1)
    if granularity == "channel":
        return w.reshape(w.shape[0], 1, w.shape[1])
    return w.reshape(w.shape[0], w.shape[1] // group_size, group_size)


def absmax_quantize(
    w: torch.Tensor, bits: int = 8, granularity: Granularity = "channel", group_size: int | None = None
) -> Quantized:
    """Symmetric quantization: ``q = round(w / scale)``, ``scale = max|w| / (2^(bits-1) - 1)`` per block."""
    _check(w, bits, granularity, group_size)
    x = blocks(w.float(), granularity, group_size)                    # (rows, groups, block)
    qmax = 2 ** (bits - 1) - 1                                        # 127 for int8, 7 for int4
    scale = x.abs().amax(dim=-1, keepdim=True) / qmax                 # (rows, groups, 1)
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)     # an all-zero block: q = 0
    q = torch.round(x / safe).clamp(-qmax, qmax)                      # round half to even
    error = (x - q * scale).abs().max().item()
    return Quantized(q.to(torch.int8).reshape(w.shape), scale, None, bits, granularity,
                     group_size if granularity == "group" else None, error)


def zeropoint_quantize(
    w: torch.Tensor, bits: int = 8, granularity: Granularity = "channel", group_size: int | None = None
) -> Quantized:
    """Asymmetric quantization: ``q = round(w / scale) + zero`` in ``[0, 2^bits - 1]``, over the block's
    range ``[min(w, 0), max(w, 0)]`` (zero is included, so a zero weight dequantizes to exactly zero)."""
    _check(w, bits, granularity, group_size)
    x = blocks(w.float(), granularity, group_size)                    # (rows, groups, block)
    qmax = 2**bits - 1                                                # 255 for int8, 15 for int4
    low = x.amin(dim=-1, keepdim=True).clamp(max=0)                   # (rows, groups, 1)
    high = x.amax(dim=-1, keepdim=True).clamp(min=0)
    scale = (high - low) / qmax
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    zero = torch.round(-low / safe).clamp(0, qmax)                    # the integer that stands for 0.0
    q = (torch.round(x / safe) + zero).clamp(0, qmax)
    error = (x - (q - zero) * scale).abs().max().item()
    return Quantized(q.to(torch.uint8).reshape(w.shape), scale, zero.to(torch.int32), bits, granularity,
                     group_size if granularity == "group" else None, error)


def minmax_quantize(
    w: torch.Tensor, bits: int = 4, granularity: Granularity = "group", group_size: int | None = 32,
    *, fp16_scales: bool = False,
) -> Quantized:
    """Asymmetric quantization with a float minimum (GGUF's Q4_1): ``q = round((w - min) / scale)`` in
    ``[0, 2^bits - 1]``, ``scale = (max - min) / (2^bits - 1)`` per block; dequantized ``q · scale + min``.
    ``fp16_scales``: round the scale and minimum to float16 first (as ``Int4Linear`` stores them), so the
    integers are chosen for the values that will really be used."""
    _check(w, bits, granularity, group_size)
    x = blocks(w.float(), granularity, group_size)                    # (rows, groups, block)
    qmax = 2**bits - 1
    low = x.amin(dim=-1, keepdim=True)                                # (rows, groups, 1)
    scale = (x.amax(dim=-1, keepdim=True) - low) / qmax
    if fp16_scales:
        low, scale = low.half().float(), scale.half().float()
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)     # a constant block: q = 0, w = min
    q = torch.round((x - low) / safe).clamp(0, qmax)
    error = (x - (q * scale + low)).abs().max().item()
    return Quantized(q.to(torch.uint8).reshape(w.shape), scale, None, bits, granularity,
                     group_size if granularity == "group" else None, error, minimum=low)


def quantize(
    w: torch.Tensor, bits: int = 8, *, symmetric: bool = True, granularity: Granularity = "channel",
    group_size: int | None = None,
) -> Quantized:
    """:func:`absmax_quantize` when ``symmetric`` else :func:`zeropoint_quantize`."""
    fn = absmax_quantize if symmetric else zeropoint_quantize
    return fn(w, bits, granularity, group_size)


def dequantize(quantized: Quantized) -> torch.Tensor:
    """``q · scale`` (absmax), ``(q - zero) · scale`` (zero-point) or ``q · scale + minimum`` (min/max),
    float32, shaped like the input."""
    if not isinstance(quantized, Quantized):
        raise TypeError(f"dequantize takes the Quantized a quantizer returned, got {type(quantized).__name__}.")
    shape = quantized.q.shape
    q = blocks(quantized.q.float(), quantized.granularity, quantized.group_size)
    if quantized.zero is not None:
        q = q - quantized.zero.float()
    if quantized.minimum is not None:
        return (q * quantized.scale + quantized.minimum).reshape(shape)
    return (q * quantized.scale).reshape(shape)


def pack_int4(q: torch.Tensor) -> torch.Tensor:
    """Two 4-bit values per byte: ``(rows, cols)`` values in ``[0, 15]`` (uint8, or int8 in ``[-8, 7]``,
    stored offset by 8) → ``(rows, cols / 2)`` uint8, column ``2j`` in the low nibble, ``2j+1`` in the high."""
    if q.dim() != 2 or q.shape[1] % 2:
        raise ValueError(f"pack_int4 takes a 2-D tensor with an even number of columns, got shape {tuple(q.shape)}.")
    if q.dtype == torch.int8:
        if int(q.min()) < -8 or int(q.max()) > 7:
            raise ValueError("signed int4 values must lie in [-8, 7].")
        q = (q.to(torch.int16) + 8).to(torch.uint8)
    elif q.dtype != torch.uint8:
        raise TypeError(f"pack_int4 takes uint8 (0..15) or int8 (-8..7) values, got {q.dtype}.")
    if int(q.max()) > 15:
        raise ValueError("unsigned int4 values must lie in [0, 15].")
    return q[:, 0::2] | (q[:, 1::2] << 4)


def unpack_int4(packed: torch.Tensor, signed: bool = False) -> torch.Tensor:
    """Inverse of :func:`pack_int4`: ``(rows, cols / 2)`` uint8 → ``(rows, cols)`` uint8 in ``[0, 15]``,
    or int8 in ``[-8, 7]`` when ``signed``."""
    if packed.dtype != torch.uint8:
        raise TypeError(f"unpack_int4 takes the uint8 bytes pack_int4 returned, got {packed.dtype}.")
    low, high = packed & 0x0F, packed >> 4
    q = torch.stack([low, high], dim=-1).reshape(packed.shape[0], -1)   # (rows, cols)
    return (q.to(torch.int16) - 8).to(torch.int8) if signed else q


def reconstruction_error(w: torch.Tensor, quantized: Quantized) -> dict[str, float]:
    """``max_abs``, ``rmse`` and ``relative`` (‖w - ŵ‖ / ‖w‖) error of a quantization of ``w``."""
    diff = w.float() - dequantize(quantized)
    norm = w.float().norm().item()
    return {"max_abs": diff.abs().max().item(), "rmse": diff.pow(2).mean().sqrt().item(),
            "relative": diff.norm().item() / norm if norm else 0.0}
