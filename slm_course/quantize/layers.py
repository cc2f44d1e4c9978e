"""Weight-only quantized linear layers and swapping them into a model (chapter 10).

- :class:`Int8Linear`: int8 weights ``(out, in)`` and one float32 scale per output row (absmax);
  multiplies with ``torch._weight_int8pack_mm`` when this PyTorch build has it, else dequantizes and
  uses ``F.linear`` (same numbers up to float rounding; a test compares both).
- :class:`Int4Linear`: 4-bit weights on a min/max grid (GGUF's Q4_1), two per byte, one float16 scale and
  minimum per group of ``group_size`` weights in a row; multiplies with PyTorch's CPU int4 kernel
  (``torch._weight_int4pack_mm_for_cpu`` on a repacked copy) when present, else dequantizes.
- :class:`QuantizedEmbedding`: a token-embedding lookup that reads the rows of a quantized output
  layer, so a tied embedding/head stays one (quantized) matrix.

:func:`quantize_model` walks the model with ``slm_course.model.surgery.replace_linears``.
Activations stay float32: only the weights are stored small ("weight-only" quantization), which is
what makes decoding faster on a CPU, where reading the weights from memory is the bottleneck.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.model.surgery import replace_linears
from slm_course.quantize.basic import absmax_quantize, minmax_quantize, pack_int4, unpack_int4


# PyTorch's CPU weight-only kernels take bfloat16 activations (see kernel_activation_dtype). Up to a prompt's
# worth of rows they beat dequantizing the weight and calling the float32 multiply by far (one thread, a
# 576 -> 1536 layer on the course machine: int8 kernel 0.03 / 0.23 / 1.0 ms for 1 / 16 / 64 rows against 0.2 /
# 3.5 / 4.9 ms dequantized; PyTorch's AVX2 code 1.7 against 5.6 ms at 64 rows). Longer inputs (a perplexity
# window) are dequantized, so the activations stay float32 and a perplexity measures the weights' rounding only.
KERNEL_MAX_ROWS = 64


def kernel_activation_dtype() -> torch.dtype:
    """The activation dtype the CPU weight-only kernels get: bfloat16, on every CPU.

    Both kernels read bfloat16 activations far faster than float32 ones, also where the CPU has no native
    bfloat16 (they widen them to float32 in registers). Measured on the course machine, one thread, one row
    through a 576 → 1536 layer: int8 kernel 0.05 ms with bfloat16 activations against 0.6 ms with float32,
    float32 ``F.linear`` 0.14 ms; with PyTorch's AVX2 code (``ATEN_CPU_CAPABILITY=avx2``) 0.05 ms against
    0.9 ms, ``F.linear`` 0.17 ms. Results then differ from the float32 path by bfloat16's rounding of the
    activations (about 0.3 % relative)."""
    return torch.bfloat16


def int8_kernel_available() -> bool:
    """True when this PyTorch has the CPU weight-only int8 matmul ``torch._weight_int8pack_mm``."""
    return hasattr(torch, "_weight_int8pack_mm")


def int4_kernel_available() -> bool:
    """True when this PyTorch has the CPU int4 packed matmul (``_weight_int4pack_mm_for_cpu``)."""
    return hasattr(torch, "_weight_int4pack_mm_for_cpu") and hasattr(torch, "_convert_weight_to_int4pack_for_cpu")


def _kernel_takes(layer: nn.Module, x: torch.Tensor) -> bool:
    """Whether ``layer``'s weight-only kernel serves ``x``: the kernel is on, ``x`` is float32 on the CPU and
    at most ``KERNEL_MAX_ROWS`` rows (longer inputs dequantize, so their activations stay float32)."""
    return (layer.use_kernel and x.device.type == "cpu" and x.dtype == torch.float32
            and x.numel() <= KERNEL_MAX_ROWS * layer.in_features)


def _kernel_output(y: torch.Tensor, x: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """A kernel's ``(rows, out)`` result back to float32, ``x``'s leading shape, plus the layer's bias."""
    y = y.float().reshape(*x.shape[:-1], layer.out_features)
    return y if layer.bias is None else y + layer.bias


class Int8Linear(nn.Module):
    """``y = x Wᵀ + b`` with ``W ≈ q · scale``: ``q`` int8 ``(out, in)``, ``scale`` float32 ``(out,)``.

    Build it from a trained layer with :meth:`from_linear`. ``use_kernel=None`` picks PyTorch's
    int8 kernel when available (CPU, float32, at most ``KERNEL_MAX_ROWS`` rows); ``False`` always dequantizes first.
    """

    def __init__(self, q: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                 use_kernel: bool | None = None) -> None:
        super().__init__()
        if q.dtype != torch.int8 or q.dim() != 2 or scale.shape != (q.shape[0],):
            raise ValueError("Int8Linear needs int8 weights (out, in) and one scale per output row (out,).")
        self.register_buffer("q", q.contiguous())
        self.register_buffer("scale", scale.float().contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.in_features, self.out_features = q.shape[1], q.shape[0]
        self.use_kernel = int8_kernel_available() if use_kernel is None else bool(use_kernel)
        if self.use_kernel:  # the scales in the kernel's activation dtype, converted once (not on every call)
            self.register_buffer("kernel_scale", self.scale.to(kernel_activation_dtype()), persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, use_kernel: bool | None = None) -> "Int8Linear":
        """Quantize ``linear.weight`` per output row with absmax (int8)."""
        quantized = absmax_quantize(linear.weight.detach(), 8, "channel")
        return cls(quantized.q, quantized.scale.reshape(-1), linear.bias, use_kernel)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight ``(out, in)`` these integers stand for."""
        return self.q.float() * self.scale[:, None]

    def rows(self, idx: torch.Tensor) -> torch.Tensor:
        """Dequantized rows ``idx`` of the weight: ``(..., in)`` (an embedding lookup)."""
        return self.q[idx].float() * self.scale[idx].unsqueeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., in)`` float → ``(..., out)``."""
        if _kernel_takes(self, x):
            scale = self.kernel_scale
            return _kernel_output(torch._weight_int8pack_mm(x.reshape(-1, self.in_features).to(scale.dtype), self.q, scale),
                                  x, self)
        return F.linear(x, self.dequantized_weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, kernel={self.use_kernel}"


class Int4Linear(nn.Module):
    """``y = x Wᵀ + b`` with ``W ≈ q · scale + minimum`` per group of ``group_size`` inputs (GGUF's Q4_1 grid).

    ``packed``: uint8 ``(out, in / 2)`` (two 4-bit values ``0…15`` per byte, see ``pack_int4``); ``scale``
    and ``minimum``: float16 ``(out, in / group_size)``, as GGUF stores them, so a weight costs
    ``4 + 32 / group_size`` bits. The grid runs from each group's minimum to its maximum
    (:func:`~slm_course.quantize.basic.minmax_quantize`): no level is lost to rounding a zero point.
    With the kernel a repacked copy for PyTorch's int4 matmul is kept too (not saved: rebuilt from ``packed``).
    """

    def __init__(self, packed: torch.Tensor, scale: torch.Tensor, minimum: torch.Tensor, group_size: int,
                 bias: torch.Tensor | None = None, use_kernel: bool | None = None) -> None:
        super().__init__()
        out_features, in_features = packed.shape[0], packed.shape[1] * 2
        groups = (out_features, in_features // group_size)
        if packed.dtype != torch.uint8 or scale.shape != groups or minimum.shape != groups:
            raise ValueError("Int4Linear needs uint8 packed weights (out, in/2), scales and minima (out, in/group_size).")
        self.register_buffer("packed", packed.contiguous())
        self.register_buffer("scale", scale.to(torch.float16).contiguous())
        self.register_buffer("minimum", minimum.to(torch.float16).contiguous())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self.in_features, self.out_features, self.group_size = in_features, out_features, group_size
        self.use_kernel = int4_kernel_available() if use_kernel is None else bool(use_kernel)
        # The kernel's CPU layout needs in_features divisible by the group and by 32, and group >= 32.
        self.use_kernel = self.use_kernel and group_size in (32, 64, 128, 256) and in_features % 32 == 0
        if self.use_kernel:
            q = unpack_int4(self.packed).to(torch.int32)                     # (out, in) in [0, 15]
            self.register_buffer("kernel_weight", torch._convert_weight_to_int4pack_for_cpu(q, 1), persistent=False)
            # The kernel computes W = (q - 8) · scale + offset, so the offset is minimum + 8 · scale.
            scale32 = self.scale.float()
            offset = self.minimum.float() + 8 * scale32                      # (out, groups)
            sz = torch.stack([scale32.t(), offset.t()], dim=-1).contiguous()  # (groups, out, 2)
            sz = sz.to(kernel_activation_dtype())                            # the kernel wants x's dtype
            self.register_buffer("kernel_scales", sz, persistent=False)

    @classmethod
    def from_linear(cls, linear: nn.Linear, group_size: int = 32, use_kernel: bool | None = None) -> "Int4Linear":
        """Quantize ``linear.weight`` group-wise on a min/max int4 grid (scale and minimum kept as float16)."""
        quantized = minmax_quantize(linear.weight.detach(), 4, "group", group_size, fp16_scales=True)
        groups = quantized.scale.shape[1]
        return cls(pack_int4(quantized.q), quantized.scale.reshape(-1, groups),
                   quantized.minimum.reshape(-1, groups), group_size, linear.bias, use_kernel)

    def dequantized_weight(self) -> torch.Tensor:
        """The float32 weight ``(out, in)``."""
        return self.rows(slice(None))

    def rows(self, idx) -> torch.Tensor:
        """Dequantized rows ``idx`` of the weight ``(..., in)``: unpack, scale, add the minimum."""
        packed = self.packed[idx]
        lead = packed.shape[:-1]
        q = unpack_int4(packed.reshape(-1, packed.shape[-1])).float()          # (n, in)
        q = q.reshape(-1, self.in_features // self.group_size, self.group_size)  # (n, groups, group)
        minimum = self.minimum[idx].reshape(q.shape[0], -1, 1).float()
        scale = self.scale[idx].reshape(q.shape[0], -1, 1).float()
        return (q * scale + minimum).reshape(*lead, self.in_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` ``(..., in)`` float → ``(..., out)``."""
        if _kernel_takes(self, x):
            x2 = x.reshape(-1, self.in_features).to(self.kernel_scales.dtype)
            return _kernel_output(torch._weight_int4pack_mm_for_cpu(x2, self.kernel_weight, self.group_size,
                                                                    self.kernel_scales), x, self)
        return F.linear(x, self.dequantized_weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"group_size={self.group_size}, kernel={self.use_kernel}")


class QuantizedEmbedding(nn.Module):
    """An embedding lookup that reads rows of a quantized (tied) output layer: one matrix, stored once."""

    def __init__(self, head: Int8Linear | Int4Linear) -> None:
        super().__init__()
        self.head = [head]  # a plain list: the head is registered once, by the model's lm_head
        self.num_embeddings, self.embedding_dim = head.out_features, head.in_features

    @property
    def weight(self) -> torch.Tensor:
        """The dequantized matrix ``(num_embeddings, embedding_dim)`` float32, built on each access (for code
        that reads ``tok_emb.weight``, e.g. to learn the model's dtype and device; lookups never build it)."""
        return self.head[0].dequantized_weight()

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx`` (B, T) ids → ``(B, T, embedding_dim)`` float32."""
        return self.head[0].rows(idx)


def quantize_model(model: nn.Module, bits: int = 8, *, group_size: int = 32, targets: Iterable[str] | None = None,
                   skip: Iterable[str] = (), use_kernel: bool | None = None) -> list[str]:
    """Replace the selected ``nn.Linear`` layers of ``model`` in place by ``Int8Linear`` (``bits=8``) or
    ``Int4Linear`` (``bits=4``, group-wise). Returns the names replaced.

    When the output layer is tied to the token embedding (``model.lm_head.weight is model.tok_emb.weight``)
    and is selected, the embedding becomes a :class:`QuantizedEmbedding` reading the same integers,
    so the tie survives and the matrix is stored once.
    """
    if bits not in (4, 8):
        raise ValueError(f"quantize_model stores int8 or int4 weights: bits must be 8 or 4, got {bits!r}.")
    head, emb = getattr(model, "lm_head", None), getattr(model, "tok_emb", None)
    tied = isinstance(head, nn.Linear) and isinstance(emb, nn.Embedding) and head.weight is emb.weight

    def make(name: str, linear: nn.Linear) -> nn.Module:
        if bits == 8:
            return Int8Linear.from_linear(linear, use_kernel)
        return Int4Linear.from_linear(linear, group_size, use_kernel)

    names = replace_linears(model, make, targets, skip=skip)
    if tied and "lm_head" in names:
        model.tok_emb = QuantizedEmbedding(model.lm_head)
    return names


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and saved buffer of ``model``, each distinct tensor once (what is saved)."""
    seen, total = set(), 0
    tensors = list(model.parameters()) + [b for n, b in model.named_buffers() if _persistent(model, n)]
    for t in tensors:
        if t.data_ptr() in seen:
            continue
        seen.add(t.data_ptr())
        total += t.numel() * t.element_size()
    return total


def memory_bytes_in_use(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer, including kernel copies that are not saved."""
    seen, total = set(), 0
    for t in list(model.parameters()) + list(model.buffers()):
        if t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.numel() * t.element_size()
    return total


def _persistent(model: nn.Module, name: str) -> bool:
    parent, _, leaf = name.rpartition(".")
    module = model.get_submodule(parent) if parent else model
    return leaf not in module._non_persistent_buffers_set
