"""LoRA, written by the course (chapter 7): a low-rank update beside a frozen weight.

A LoRA layer keeps the pretrained ``nn.Linear`` weight ``W`` (out, in) frozen and learns two small
matrices, ``A`` (r, in) and ``B`` (out, r), so the layer computes

    y = x Wᵀ + b + (α / r) · x Aᵀ Bᵀ

**Scaling convention: α / r** (the LoRA paper's and ``peft``'s default). ``alpha`` is not the
multiplier itself: with ``r=8, alpha=16`` the update is scaled by 2. Some courses and libraries
multiply by ``alpha`` alone (so their ``alpha=16`` is eight times our ``alpha=16`` at ``r=8``); to
reproduce one of them here, pass ``alpha = their_alpha * r``. Dividing by ``r`` keeps the size of the
update roughly the same when you change the rank, so a learning rate tuned at one rank carries over.

``B`` starts at zero, so a freshly wrapped model computes exactly what the original did; ``A``
starts random (Kaiming-uniform, as ``peft``). Training changes only ``A`` and ``B``: the original
weights stay bit-identical, and the adapter (``lora_state_dict``) is a few hundred KB that can be
saved, shared and loaded on its own, or merged into ``W`` (``W + (α/r)·B A``) for zero overhead.

:func:`apply_lora` uses :func:`slm_course.model.surgery.replace_linears`, the same walk chapter 10
uses for its quantized layers.
"""
from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Iterable

import torch
from torch import nn

from slm_course.model.surgery import replace_linears

# The attention projections and MLP matrices of the course's SLM (Llama-style and GPT-2-style names).
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj")
MLP_TARGETS = ("gate", "up", "down", "fc", "mlp.proj")


class LoRALinear(nn.Module):
    """``base(x) + (alpha / r) · (x Aᵀ) Bᵀ`` with ``base`` frozen.

    ``base``: the ``nn.Linear`` (out_features, in_features) to adapt, kept as a submodule (its weight
    is not copied). ``lora_A``: (r, in_features), Kaiming-uniform; ``lora_B``: (out_features, r), zeros.
    Input ``(..., in_features)`` → output ``(..., out_features)``.
    """

    def __init__(self, base: nn.Linear, r: int = 8, alpha: float = 16) -> None:
        super().__init__()
        if not isinstance(base, nn.Linear):
            raise TypeError(f"LoRALinear wraps an nn.Linear, got {type(base).__name__}.")
        if isinstance(r, bool) or not isinstance(r, int) or r < 1:
            raise ValueError(f"the LoRA rank r must be a positive int, got {r!r}.")
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or alpha <= 0:
            raise ValueError(f"alpha must be a positive number, got {alpha!r}.")
        self.base = base
        for p in self.base.parameters():
            p.requires_grad_(False)
        self.r, self.alpha = r, float(alpha)
        self.scaling = self.alpha / r  # the α / r convention (module docstring)
        w = base.weight
        self.lora_A = nn.Parameter(torch.empty(r, base.in_features, dtype=w.dtype, device=w.device))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, r, dtype=w.dtype, device=w.device))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # the same init as nn.Linear and peft

    @property
    def in_features(self) -> int:
        return self.base.in_features

    @property
    def out_features(self) -> int:
        return self.base.out_features

    def delta_weight(self) -> torch.Tensor:
        """The update ``(α / r) · B A`` (out_features, in_features) that merging adds to the base weight."""
        return self.scaling * (self.lora_B @ self.lora_A)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(..., in_features)`` → ``(..., out_features)``; the low-rank path never forms ``B A``."""
        return self.base(x) + self.scaling * ((x @ self.lora_A.t()) @ self.lora_B.t())

    def merged(self) -> nn.Linear:
        """A plain ``nn.Linear`` whose weight is ``W + (α / r) · B A`` (a new tensor; ``base`` is untouched)."""
        out = nn.Linear(self.in_features, self.out_features, bias=self.base.bias is not None,
                        device=self.base.weight.device, dtype=self.base.weight.dtype)
        with torch.no_grad():
            out.weight.copy_(self.base.weight + self.delta_weight())
            if self.base.bias is not None:
                out.bias.copy_(self.base.bias)
        return out

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha:g}, scaling={self.scaling:g}"


def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """The model's ``LoRALinear`` modules by dotted name, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def apply_lora(model: nn.Module, targets: Iterable[str] | None = ATTENTION_TARGETS, r: int = 8,
               alpha: float = 16, *, skip: Iterable[str] = ("lm_head",), seed: int | None = 0) -> list[str]:
    """Wrap the linear layers ``targets`` selects in ``LoRALinear`` (in place) and freeze everything else.

    ``targets`` follow :func:`slm_course.model.surgery.matches` (``"q_proj"`` selects every block's
    query projection). The output layer is skipped by default (it is tied to the embeddings in
    SmolLM2). With ``seed`` the ``A`` matrices are initialised from that seed, so runs repeat.
    Returns the names wrapped. Afterwards only the ``lora_A``/``lora_B`` parameters have
    ``requires_grad=True``; unfreeze a new head yourself (``head.requires_grad_(True)``).
    """
    if lora_layers(model):
        raise ValueError("this model already has LoRA layers; merge_lora(model) first or start from a fresh model.")
    for p in model.parameters():
        p.requires_grad_(False)
    generator_state = torch.random.get_rng_state() if seed is not None else None
    if seed is not None:
        torch.manual_seed(seed)
    try:
        names = replace_linears(model, lambda name, linear: LoRALinear(linear, r, alpha), targets, skip=skip)
    finally:
        if generator_state is not None:
            torch.random.set_rng_state(generator_state)
    return names


def merge_lora(model: nn.Module) -> list[str]:
    """Replace every ``LoRALinear`` by a plain ``nn.Linear`` with weight ``W + (α/r)·B A`` (in place).

    The merged model computes the same outputs (up to float rounding) with no extra cost per token.
    Returns the names merged. The merged layers keep the base layer's ``requires_grad`` (frozen).
    """
    names = list(lora_layers(model))
    if not names:
        raise ValueError("this model has no LoRA layers to merge; apply_lora(model, targets) adds them.")
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        merged = getattr(parent, child).merged()
        merged.requires_grad_(False)
        setattr(parent, child, merged)
    return names


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the adapter: ``{"<layer>.lora_A": (r, in), "<layer>.lora_B": (out, r)}`` (detached copies)."""
    state = {}
    for name, layer in lora_layers(model).items():
        state[f"{name}.lora_A"] = layer.lora_A.detach().clone().contiguous()
        state[f"{name}.lora_B"] = layer.lora_B.detach().clone().contiguous()
    if not state:
        raise ValueError("this model has no LoRA layers; apply_lora(model, targets) adds them.")
    return state


def save_adapter(model: nn.Module, path: str | os.PathLike) -> Path:
    """Write the adapter to ``path`` (safetensors) atomically, with rank and α in its metadata.

    Returns the path. The file holds only ``A`` and ``B`` (a few hundred KB for SmolLM2-135M at r=8 on
    the attention projections), not the model.
    """
    from safetensors.torch import save_file

    path = Path(path)
    layers = lora_layers(model)
    state = lora_state_dict(model)
    first = next(iter(layers.values()))
    metadata = {"format": "slm-course-lora", "r": str(first.r), "alpha": repr(first.alpha),
                "layers": ",".join(layers)}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file(state, tmp, metadata=metadata)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_adapter(model: nn.Module, path: str | os.PathLike) -> list[str]:
    """Load an adapter saved by :func:`save_adapter` into ``model`` (in place); returns the layers loaded.

    A model without LoRA layers gets them first (the file's rank, α and layer names); one that has
    them must match the file's layers and shapes, or a ``ValueError`` lists what differs.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"no adapter file at {path}; save one with save_adapter(model, path).")
    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata() or {}
    if metadata.get("format") != "slm-course-lora":
        raise ValueError(f"{path} is not an adapter written by save_adapter (no slm-course-lora metadata).")
    state = load_file(str(path))
    names = metadata["layers"].split(",")
    if not lora_layers(model):
        apply_lora(model, targets=names, r=int(metadata["r"]), alpha=float(metadata["alpha"]), skip=())
    layers = lora_layers(model)
    if sorted(layers) != sorted(names):
        raise ValueError(f"the adapter is for layers {names}, the model's LoRA layers are {list(layers)}.")
    problems = []
    for name, layer in layers.items():
        for part in ("lora_A", "lora_B"):
            saved, param = state[f"{name}.{part}"], getattr(layer, part)
            if saved.shape != param.shape:
                problems.append(f"{name}.{part}: file {tuple(saved.shape)}, model {tuple(param.shape)}")
    if problems:
        raise ValueError("the adapter's shapes do not match the model: " + "; ".join(problems))
    with torch.no_grad():
        for name, layer in layers.items():
            layer.lora_A.copy_(state[f"{name}.lora_A"])
            layer.lora_B.copy_(state[f"{name}.lora_B"])
    return list(layers)


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (a tied matrix counted once)."""
    params = {id(p): p for p in model.parameters()}.values()
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)
