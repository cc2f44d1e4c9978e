"""Walking a model's modules to swap layers (chapters 7 and 10).

LoRA (chapter 7) wraps chosen ``nn.Linear`` layers in ``LoRALinear``; quantization (chapter 10)
replaces them with ``Int8Linear``/``Int4Linear``. Both use :func:`replace_linears`: one walk,
one rule for which layers match, one place that keeps a tied output layer tied. Generation (chapter 5)
reads input-major copies of the linear weights for fast one-token matrix products (:func:`input_major_weights`;
:func:`store_input_major_` re-lays a model's own weights, for code that wants it permanently).
"""
from __future__ import annotations

import contextlib
import weakref
from typing import Callable, Iterable, Iterator

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


def _moves(weight: torch.Tensor) -> bool:
    """Whether ``weight`` is a CPU float32 matrix stored output-major (what an input-major layout speeds up)."""
    return weight.device.type == "cpu" and weight.dtype == torch.float32 and not weight.t().is_contiguous()


def store_input_major_(model: nn.Module) -> int:
    """Store every CPU float32 ``nn.Linear`` weight of ``model`` input-major, in place; return how many moved.

    An ``nn.Linear`` keeps its weight ``(out, in)`` row by row. For one row of input (decoding a token)
    PyTorch's CPU matrix multiply reads the transposed layout, ``(in, out)`` row by row, faster: the layout
    GPT-2's ``Conv1D`` stores. Measured on the course machine: 1.2-1.7x on GPT-2's and SmolLM2's matrices
    (``benchmarks/generation.py`` and ``benchmarks/smollm2.py`` time the whole decode). Only the memory
    layout changes: the weight's shape ``(out, in)``, its values, the ``Parameter`` object (so an optimizer
    holding it is unaffected) and a tie to an embedding stay as they were; ``weight.is_contiguous()`` becomes
    False, so code that saves weights calls ``.contiguous()`` (the course's savers do). Calling it again
    moves nothing. :func:`slm_course.generate.generate` does not call it: it decodes on private input-major copies
    (:func:`input_major_weights`) and leaves the model's own layout as it was.
    """
    moved = 0
    for module in model.modules():
        if not isinstance(module, nn.Linear):
            continue
        weight = module.weight
        if not _moves(weight):
            continue
        with torch.no_grad():
            weight.data = weight.data.t().contiguous().t()
        moved += 1
    return moved


# linear layer -> ((its weight's id, data pointer and version when copied), the input-major copy); dropped with the layer
_INPUT_MAJOR: "weakref.WeakKeyDictionary[nn.Module, tuple[tuple[int, int, int], torch.Tensor]]" = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def input_major_weights(model: nn.Module) -> Iterator[int]:
    """Inside the ``with`` block, every CPU float32 ``nn.Linear`` weight of ``model`` stored output-major reads an
    input-major copy (the layout :func:`store_input_major_` explains: same values and shape, faster one-row
    products); the block gets how many were swapped. On leaving, also through an exception, each ``Parameter``
    gets its own tensor back: storage, strides and values as they were, so ``state_dict()`` and everything else
    see the model unchanged. :func:`slm_course.generate.generate` decodes inside this block.

    The copies are kept (one per layer, while the layer lives) so that later calls cost nothing: this holds a
    second copy of the model's float32 linear weights in memory (SmolLM2-135M: about 540 MB). A copy is remade
    when its weight changed since (another tensor assigned, or updated in place, e.g. by an optimizer step).
    """
    swapped: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        with torch.no_grad():
            for module in model.modules():
                weight = getattr(module, "weight", None) if isinstance(module, nn.Linear) else None
                if weight is None or not _moves(weight) or any(weight is done for done, _ in swapped):
                    continue
                key = (id(weight), weight.data_ptr(), weight._version)
                cached = _INPUT_MAJOR.get(module)
                if cached is None or cached[0] != key:
                    cached = (key, weight.detach().t().contiguous().t())
                    _INPUT_MAJOR[module] = cached
                swapped.append((weight, weight.data))
                weight.data = cached[1]
        yield len(swapped)
    finally:
        with torch.no_grad():
            for weight, original in reversed(swapped):
                weight.data = original
