"""Quantization-aware training with a straight-through estimator (chapter 10).

Post-training quantization rounds weights the model never saw rounded. Quantization-aware training
(QAT) finetunes with the rounding in the forward pass: each selected linear layer multiplies by
``fake_quantize(W)`` — quantized and dequantized again — so the loss feels the rounding error. Rounding
has zero gradient almost everywhere, so the backward pass pretends it was the identity: the
**straight-through estimator** ``W + (fake_quantize(W) - W).detach()`` has the value of the rounded
weights and the gradient of ``W``. After training, :func:`convert_qat` stores the weights as int4/int8.
"""
from __future__ import annotations

from typing import Iterable

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.model.surgery import replace_linears
from slm_course.quantize.basic import dequantize, minmax_quantize, quantize
from slm_course.quantize.layers import quantize_model


def fake_quantize(w: torch.Tensor, bits: int = 4, group_size: int = 32, symmetric: bool = False) -> torch.Tensor:
    """``w`` quantized group-wise and dequantized again (float32, same shape); no gradient flows.
    Asymmetric (the default) uses the min/max grid ``Int4Linear`` stores, so what QAT trains is what
    ``convert_qat`` keeps; ``symmetric=True`` uses absmax."""
    with torch.no_grad():
        if symmetric:
            return dequantize(quantize(w.detach(), bits, symmetric=True, granularity="group", group_size=group_size))
        return dequantize(minmax_quantize(w.detach(), bits, "group", group_size, fp16_scales=True))


def straight_through(w: torch.Tensor, w_quantized: torch.Tensor) -> torch.Tensor:
    """The value of ``w_quantized`` with the gradient of ``w``: ``w + (w_quantized - w).detach()``."""
    return w + (w_quantized - w).detach()


class FakeQuantLinear(nn.Module):
    """A linear layer whose forward uses its weight rounded to ``bits`` (group-wise, min/max grid),
    with the straight-through gradient. ``linear`` keeps the trainable float weight."""

    def __init__(self, linear: nn.Linear, bits: int = 4, group_size: int = 32) -> None:
        super().__init__()
        self.linear, self.bits, self.group_size = linear, bits, group_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.linear.weight
        w_q = straight_through(w, fake_quantize(w, self.bits, self.group_size))
        return F.linear(x, w_q, self.linear.bias)


class FakeQuantEmbedding(nn.Module):
    """The tied embedding of a QAT model: looks its rows up in the fake-quantized matrix, as the
    converted model's ``QuantizedEmbedding`` will."""

    def __init__(self, embedding: nn.Embedding, bits: int = 4, group_size: int = 32) -> None:
        super().__init__()
        self.embedding, self.bits, self.group_size = embedding, bits, group_size

    @property
    def weight(self) -> torch.Tensor:
        return self.embedding.weight

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        w = self.embedding.weight
        return F.embedding(idx, straight_through(w, fake_quantize(w, self.bits, self.group_size)))


def prepare_qat(model: nn.Module, bits: int = 4, group_size: int = 32,
                targets: Iterable[str] | None = None) -> list[str]:
    """Wrap the selected linear layers of ``model`` in :class:`FakeQuantLinear` (in place); a tied
    embedding is wrapped too, so both uses of the one matrix see it rounded. Returns the names."""
    head, emb = getattr(model, "lm_head", None), getattr(model, "tok_emb", None)
    tied = isinstance(head, nn.Linear) and isinstance(emb, nn.Embedding) and head.weight is emb.weight
    names = replace_linears(model, lambda name, lin: FakeQuantLinear(lin, bits, group_size), targets)
    if tied and "lm_head" in names:
        model.tok_emb = FakeQuantEmbedding(emb, bits, group_size)
    return names


def convert_qat(model: nn.Module, use_kernel: bool | None = None) -> list[str]:
    """Turn a QAT model back into plain layers, then store the trained weights quantized
    (``Int4Linear``/``Int8Linear`` via ``quantize_model``). Returns the names quantized."""
    wrapped = [(n, m) for n, m in model.named_modules() if isinstance(m, FakeQuantLinear)]
    if not wrapped:
        raise ValueError("convert_qat found no FakeQuantLinear: call prepare_qat(model) and train first.")
    bits, group_size = wrapped[0][1].bits, wrapped[0][1].group_size
    for name, module in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, module.linear)
    if isinstance(getattr(model, "tok_emb", None), FakeQuantEmbedding):
        model.tok_emb = model.tok_emb.embedding
    return quantize_model(model, bits, group_size=group_size, targets=[n for n, _ in wrapped], use_kernel=use_kernel)
