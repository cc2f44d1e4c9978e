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


def int8_product(x: torch.Tensor, q: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``x Wᵀ`` for ``W = q · scale`` written as a multiply and a sum: ``x`` ``(rows, in)`` float32, ``q``
    ``(out, in)`` int8, ``scale`` ``(out,)`` float32 → ``(rows, out)`` float32.

    What :class:`Int8Linear` computes inside ``torch.compile`` where :func:`compiled_int8_uses_loop` says so.
    Eager, it would build a float copy of the weight; compiled, Inductor turns it into one loop per output row
    that reads the int8 weights straight from memory, widens them in registers and accumulates in float32, and
    the activations stay float32 (no bfloat16 rounding)."""
    return (x.unsqueeze(-2) * q).sum(-1) * scale


def compiled_int8_uses_loop() -> bool:
    """Whether compiled decoding multiplies int8 layers with :func:`int8_product` (Inductor's own loop) rather than
    PyTorch's int8 kernel inside the compiled graph. Decided once, from ``torch.backends.cpu.get_cpu_capability()``:
    the loop only with AVX-512 code.

    Why: Inductor's loop loads the int8 weights as many at a time as its float lanes (8 with AVX2, 16 with
    AVX-512) through ``at::vec::Vectorized<int8_t>::loadu(ptr, count)``. PyTorch's AVX-512 vector code has a fast
    path for a 16-byte load; its AVX2 code has none for any count: every 8 weights go through a small buffer
    (filled, copied into, loaded back), so the loop runs several times slower than the kernel there (course
    machine, AVX2, one thread, 576 → 1536 layer, one row: loop 1.6-2.2 ms, kernel 0.1-0.2 ms; SmolLM2's
    compiled int8 decoding 5 tok/s against 28 eager). The same holds for int32 loads, so reading the weights
    four to an int32 does not help. With AVX-512 code the loop streams weights faster than the kernel (14
    against 10 GB/s on a 576 → 3072 layer, 21 against 10 on SmolLM2's output layer). Where the kernel is kept,
    compiled int8 layers round activations to bfloat16 as eager ones do, and the rest of the step still compiles.
    """
    return _CPU_CAPABILITY == "AVX512"


_CPU_CAPABILITY = torch.backends.cpu.get_cpu_capability()  # read once: "AVX2", "AVX512", "DEFAULT", ...


def _int8_rows(layer: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """``rows`` ``(n, in)`` float32 through ``layer``'s int8 matrix (``q``, float32 ``scale``, ``kernel_scale``):
    :func:`int8_product` inside ``torch.compile`` where :func:`compiled_int8_uses_loop`, else PyTorch's kernel on
    bfloat16 activations (also inside a compiled graph)."""
    if torch.compiler.is_compiling() and compiled_int8_uses_loop():  # Inductor's own loop (see int8_product)
        return int8_product(rows, layer.q, layer.scale)
    return torch._weight_int8pack_mm(rows.to(layer.kernel_scale.dtype), layer.q, layer.kernel_scale)


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
            return _kernel_output(_int8_rows(self, x.reshape(-1, self.in_features)), x, self)
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
        # The kernel's CPU layout needs in_features divisible by the group and by 32, group >= 32, and whole
        # blocks of 16 output rows (a vocabulary of 101 tokens, say, dequantizes instead).
        self.use_kernel = (self.use_kernel and group_size in (32, 64, 128, 256) and in_features % 32 == 0
                           and out_features % 16 == 0)
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
                                                                    self.kernel_scales.contiguous()), x, self)
        return F.linear(x, self.dequantized_weight().to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"group_size={self.group_size}, kernel={self.use_kernel}")


class FusedKernelCall(nn.Module):
    """Quantized layers that read the same input, multiplied in one kernel call (``q/k/v``, ``gate/up``).

    The query, key and value projections of an attention layer all read the same normalised input, and so do
    a SwiGLU's gate and up layers. Stacking their integer rows gives one ``(sum of out, in)`` matrix, and one
    kernel call then does the work of three (or two). For one decoded token each call's fixed cost, converting
    the input and starting the threads, is a large share of a small layer's time; this saves a third of the
    kernel calls. The layers' own integers become views of the stacked matrix, so nothing is stored twice, and
    each layer still works alone. Every output is bit for bit the layer's own (each output row's sum is
    computed the same way; tested). ``forward(x)`` returns one output per layer, in order. Built by
    :func:`fuse_kernel_calls`; the model's attention and feed-forward call it when it is there.
    """

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        kinds = {type(layer) for layer in layers}
        if len(layers) < 2 or len(kinds) != 1 or not kinds <= {Int8Linear, Int4Linear} \
                or len({layer.in_features for layer in layers}) != 1 or not all(layer.use_kernel for layer in layers) \
                or len({getattr(layer, "group_size", None) for layer in layers}) != 1:
            raise ValueError("FusedKernelCall stacks two or more Int8Linear (or Int4Linear, one group size) layers "
                             "that use the kernel and read the same number of inputs.")
        self.layers = list(layers)  # a plain list: each layer stays registered where it is
        self.widths = [layer.out_features for layer in layers]
        self.in_features = layers[0].in_features
        self.group_size = getattr(layers[0], "group_size", None)
        if isinstance(layers[0], Int8Linear):
            stacked, scales = torch.cat([layer.q for layer in layers]), torch.cat([layer.kernel_scale for layer in layers])
            for layer, part, scale in zip(layers, stacked.split(self.widths), scales.split(self.widths)):
                layer.q, layer.kernel_scale = part, scale  # views of the stacked rows: stored once
            self.register_buffer("q", stacked, persistent=False)
            self.register_buffer("kernel_scale", scales, persistent=False)
        else:  # the int4 kernel's packing keeps output rows apart, so stacking packed rows = packing stacked rows
            stacked = torch.cat([layer.kernel_weight for layer in layers])
            for layer, part in zip(layers, stacked.split(self.widths)):
                layer.kernel_weight = part
            self.register_buffer("kernel_weight", stacked, persistent=False)
            scales = torch.cat([layer.kernel_scales for layer in layers], dim=1)  # (groups, sum of out, 2)
            for layer, part in zip(layers, scales.split(self.widths, dim=1)):
                layer.kernel_scales = part  # a strided view: a layer called alone makes it contiguous first
            self.register_buffer("kernel_scales", scales, persistent=False)

    @property
    def scale(self) -> torch.Tensor:
        """The layers' float32 scales, stacked like their rows; built on each access (only compiled decoding reads it,
        inside its graph), so the layers' saved scales stay their own tensors."""
        return torch.cat([layer.scale for layer in self.layers])

    @property
    def use_kernel(self) -> bool:
        """The stacked call runs only while every layer would use its kernel (turn one off: all go alone)."""
        return all(layer.use_kernel for layer in self.layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not _kernel_takes(self, x):
            return tuple(layer(x) for layer in self.layers)
        if hasattr(self, "q"):
            y = _int8_rows(self, x.reshape(-1, self.in_features))
        else:
            y = torch._weight_int4pack_mm_for_cpu(x.reshape(-1, self.in_features).to(self.kernel_scales.dtype),
                                                  self.kernel_weight, self.group_size, self.kernel_scales)
        y = y.float().reshape(*x.shape[:-1], -1)
        return tuple(part if layer.bias is None else part + layer.bias
                     for part, layer in zip(y.split(self.widths, dim=-1), self.layers))

    def extra_repr(self) -> str:
        return f"{type(self.layers[0]).__name__} x {len(self.layers)}, in_features={self.in_features}, out={self.widths}"


def fuse_kernel_calls(model: nn.Module) -> int:
    """Give each attention layer whose ``q_proj``/``k_proj``/``v_proj`` are kernel-backed quantized layers a
    :class:`FusedKernelCall` (``attn.fused_qkv``), and each SwiGLU likewise for ``gate``/``up``
    (``mlp.fused_gate_up``). Returns how many were made. :func:`quantize_model` calls it (``fuse=True``)."""
    made = 0
    for module in list(model.modules()):
        for attribute, names in (("fused_qkv", ("q_proj", "k_proj", "v_proj")), ("fused_gate_up", ("gate", "up"))):
            if attribute not in module.__dict__ and attribute not in module._modules:
                continue  # not an attention layer / SwiGLU (they declare the attribute)
            layers = [getattr(module, name, None) for name in names]
            if all(isinstance(layer, (Int8Linear, Int4Linear)) and layer.use_kernel for layer in layers) \
                    and len({type(layer) for layer in layers}) == 1:
                setattr(module, attribute, FusedKernelCall(layers))
                made += 1
    return made


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
                   skip: Iterable[str] = (), use_kernel: bool | None = None, fuse: bool = True) -> list[str]:
    """Replace the selected ``nn.Linear`` layers of ``model`` in place by ``Int8Linear`` (``bits=8``) or
    ``Int4Linear`` (``bits=4``, group-wise). Returns the names replaced.

    When the output layer is tied to the token embedding (``model.lm_head.weight is model.tok_emb.weight``)
    and is selected, the embedding becomes a :class:`QuantizedEmbedding` reading the same integers,
    so the tie survives and the matrix is stored once. ``fuse``: also stack q/k/v and gate/up into one
    kernel call each (:func:`fuse_kernel_calls`; the same numbers, fewer calls).
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
    if fuse:
        fuse_kernel_calls(model)
    return names


def weight_bytes(model: nn.Module) -> int:
    """Bytes of every parameter and saved buffer of ``model``, each distinct tensor once (what is saved)."""
    tensors = list(model.parameters()) + [b for n, b in model.named_buffers() if _persistent(model, n)]
    return _distinct_bytes(tensors)


def memory_bytes_in_use(model: nn.Module) -> int:
    """Bytes of every distinct parameter and buffer, including kernel copies that are not saved."""
    return _distinct_bytes(list(model.parameters()) + list(model.buffers()))


def _distinct_bytes(tensors: list[torch.Tensor]) -> int:
    """Bytes of ``tensors``, no memory counted twice: a tensor tied to another, or a layer's view into a stacked
    matrix (:class:`FusedKernelCall`) beside the matrix itself, counts only the memory it adds. (Each tensor is
    taken as covering the contiguous span from its first element, as every tensor here does.)"""
    spans: dict[int, list[tuple[int, int]]] = {}  # storage -> byte spans
    for t in tensors:
        start = t.storage_offset() * t.element_size()
        spans.setdefault(t.untyped_storage().data_ptr(), []).append((start, start + t.numel() * t.element_size()))
    total = 0
    for ranges in spans.values():  # the length of the union of each storage's spans
        end = -1
        for lo, hi in sorted(ranges):
            if hi > end:
                total += hi - max(lo, end)
                end = hi
    return total


def _persistent(model: nn.Module, name: str) -> bool:
    parent, _, leaf = name.rpartition(".")
    module = model.get_submodule(parent) if parent else model
    return leaf not in module._non_persistent_buffers_set
