"""Walking a model's modules to swap layers (chapters 7 and 10).

LoRA (chapter 7) wraps chosen ``nn.Linear`` layers in ``LoRALinear``; quantization (chapter 10)
replaces them with ``Int8Linear``/``Int4Linear``. Both use :func:`replace_linears`: one walk,
one rule for which layers match, one place that keeps a tied output layer tied. Generation (chapter 5)
stores the linear weights input-major for fast one-token matrix products (:func:`store_input_major_`).
"""
from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn


def matches(name: str, targets: Iterable[str] | None) -> bool:
    """True when the dotted module ``name`` is selected by ``targets``.

    A target matches a whole name component or a dotted suffix: ``"q_proj"`` selects
    ``blocks.0.attn.q_proj``; ``"attn.q_proj"`` too; ``"proj"`` does not select ``q_proj``.
    ``targets=None`` selects every linear layer.
    """
    if targets is None:
        return True
    parts = name.split(".")
    for target in targets:
        wanted = target.split(".")
        if parts[-len(wanted):] == wanted:
            return True
    return False


def find_linears(model: nn.Module, targets: Iterable[str] | None = None, *, skip: Iterable[str] = ()) -> list[str]:
    """Names of the ``nn.Linear`` modules of ``model`` that ``targets`` selects, in model order."""
    targets = list(targets) if targets is not None else None
    skip = list(skip)
    return [
        name for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and matches(name, targets) and not (skip and matches(name, skip))
    ]


def replace_linears(
    model: nn.Module,
    make: Callable[[str, nn.Linear], nn.Module],
    targets: Iterable[str] | None = None,
    *,
    skip: Iterable[str] = (),
) -> list[str]:
    """Replace every selected ``nn.Linear`` of ``model`` (in place) by ``make(name, linear)``.

    Returns the names replaced. Raises ``ValueError`` when ``targets`` selects nothing, naming the
    linear layers there are, so a typo in a target list never trains or quantizes nothing silently.
    """
    names = find_linears(model, targets, skip=skip)
    if not names:
        available = sorted({n.split(".")[-1] for n in find_linears(model)})
        raise ValueError(
            f"no linear layer matches the targets {list(targets) if targets is not None else None}; "
            f"this model's linear layers are named {', '.join(available)}."
        )
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, make(name, getattr(parent, child)))
    return names


def store_input_major_(model: nn.Module) -> int:
    """Store every CPU float32 ``nn.Linear`` weight of ``model`` input-major, in place; return how many moved.

    An ``nn.Linear`` keeps its weight ``(out, in)`` row by row. For one row of input (decoding a token)
    PyTorch's CPU matrix multiply reads the transposed layout, ``(in, out)`` row by row, faster: the layout
    GPT-2's ``Conv1D`` stores. Measured on the course machine: 1.2-1.7x on GPT-2's and SmolLM2's matrices
    (``benchmarks/generation.py`` and ``benchmarks/smollm2.py`` time the whole decode). Only the memory
    layout changes: the weight's shape ``(out, in)``, its values, the ``Parameter`` object (so an optimizer
    holding it is unaffected) and a tie to an embedding stay as they were; ``weight.is_contiguous()`` becomes
    False, so code that saves weights calls ``.contiguous()`` (the course's savers do). Calling it again
    moves nothing. :func:`slm_course.generate.generate` calls it before decoding.
    """
    moved = 0
    for module in model.modules():
        if not isinstance(module, nn.Linear):
            continue
        weight = module.weight
        if weight.device.type != "cpu" or weight.dtype != torch.float32 or weight.t().is_contiguous():
            continue
        with torch.no_grad():
            weight.data = weight.data.t().contiguous().t()
        moved += 1
    return moved
