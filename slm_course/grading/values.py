"""What a learner's function returned, carried out of the sandbox as plain data.

The kernel (inside the sandbox) only *runs* the learner's functions on each case's input; the
grader compares the results with expected values it computed itself. :func:`encode` turns a
result into a tree of plain Python values plus a list of tensors that ``torch.save`` can write
and ``torch.load(weights_only=True)`` can read back without running any code; :func:`decode`
rebuilds it on the grader's side. Anything else (a learner's own class, a generator, …) arrives
as :class:`Unsupported` and fails its case with a sentence saying why.
"""
from __future__ import annotations

import io
from typing import Any, Callable

MAX_DEPTH = 32
MAX_ITEMS = 200_000  # containers' items, all together
_KIND = "__slm_kind__"


class Unsupported:
    """Stands for a returned value the grader cannot compare (its type name is kept for messages)."""

    def __init__(self, type_name: str, why: str = "") -> None:
        self.type_name = type_name
        self.why = why

    def __repr__(self) -> str:
        extra = f" ({self.why})" if self.why else ""
        return f"<a {self.type_name} the grader cannot compare{extra}>"

    def __eq__(self, other: object) -> bool:
        return False

    __hash__ = object.__hash__


def make_encoder() -> Callable[..., Any]:
    """An :func:`encode` that holds its own references to everything it uses, taken now.

    The grader's first cell in the kernel calls this before any learner code runs, so a notebook
    that later rebinds ``torch.Tensor``, ``isinstance`` or ``sorted`` does not change how results
    are written down. (Methods the learner's own values carry are theirs anyway.)
    """
    import builtins

    import torch

    isinstance, type, sorted, repr, len, int, float = (  # noqa: A001 - shadowed on purpose
        builtins.isinstance, builtins.type, builtins.sorted, builtins.repr, builtins.len, builtins.int, builtins.float)
    bool, str, list, tuple, dict, set, frozenset, Exception = (  # noqa: A001
        builtins.bool, builtins.str, builtins.list, builtins.tuple, builtins.dict, builtins.set, builtins.frozenset,
        builtins.Exception)
    tensor_type, dtype_type, size_type, strided = torch.Tensor, torch.dtype, torch.Size, torch.strided
    as_subclass, detach, to, clone, to_dense = (torch.Tensor.as_subclass, torch.Tensor.detach, torch.Tensor.to,
                                                torch.Tensor.clone, torch.Tensor.to_dense)
    from_numpy, append, items_of = torch.from_numpy, list.append, dict.items
    try:
        import numpy as np

        ndarray, generic, contiguous = np.ndarray, np.generic, np.ascontiguousarray
    except ImportError:  # pragma: no cover
        ndarray = generic = contiguous = None
    plain_types = (bool, int, float, str)
    sequences = (list, tuple, set, frozenset)

    def encode(value: Any, tensors: list, budget: list | None = None, depth: int = 0) -> Any:
        """``value`` as a tree of None/bool/int/float/str/list/dict; tensors go into ``tensors``."""
        budget = budget if budget is not None else [MAX_ITEMS]
        budget[0] -= 1
        if budget[0] < 0 or depth > MAX_DEPTH:
            return {_KIND: "unsupported", "type": type(value).__name__, "why": "too large or too deeply nested"}
        if value is None or type(value) in plain_types:
            return value
        if isinstance(value, tensor_type):
            try:
                plain = clone(to(detach(as_subclass(value, tensor_type)), "cpu"))
                if plain.layout != strided:
                    plain = to_dense(plain)
            except Exception:  # noqa: BLE001 - a learner's odd tensor: report it, do not crash
                return {_KIND: "unsupported", "type": type(value).__name__, "why": "an unusual tensor"}
            append(tensors, plain)
            return {_KIND: "tensor", "index": len(tensors) - 1}
        if isinstance(value, dtype_type):
            return {_KIND: "dtype", "name": str(value).removeprefix("torch.")}
        if isinstance(value, size_type):
            return {_KIND: "size", "items": [int(v) for v in value]}
        if ndarray is not None:
            if isinstance(value, ndarray) and value.dtype.kind in "biufc":
                append(tensors, clone(from_numpy(contiguous(value))))
                return {_KIND: "ndarray", "index": len(tensors) - 1}
            if isinstance(value, generic) and value.dtype.kind in "biuf":
                return value.item()
        if type(value) in sequences:
            ordered = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
            items = [encode(v, tensors, budget, depth + 1) for v in ordered]
            return items if type(value) is list else {_KIND: type(value).__name__, "items": items}
        if type(value) is dict or (isinstance(value, dict) and type(value).__module__ == "collections"):
            pairs = [[encode(k, tensors, budget, depth + 1), encode(v, tensors, budget, depth + 1)]
                     for k, v in items_of(value)]
            return {_KIND: "dict", "items": pairs}
        if isinstance(value, plain_types):  # subclasses (a learner's int with a rigged __eq__)
            return {_KIND: "unsupported", "type": type(value).__name__, "why": "a subclass of a built-in type"}
        return {_KIND: "unsupported", "type": type(value).__name__}

    return encode


def encode(value: Any, tensors: list, budget: list[int] | None = None, depth: int = 0) -> Any:
    """``value`` as a tree of None/bool/int/float/str/list/dict; tensors go into ``tensors``."""
    return make_encoder()(value, tensors, budget, depth)


def decode(tree: Any, tensors: list) -> Any:
    """The value :func:`encode` described (tensors and arrays rebuilt from ``tensors``)."""
    if isinstance(tree, list):
        return [decode(v, tensors) for v in tree]
    if not isinstance(tree, dict):
        return tree
    kind = tree.get(_KIND)
    if kind == "tensor":
        return tensors[tree["index"]]
    if kind == "ndarray":
        return tensors[tree["index"]].numpy()
    if kind == "dtype":
        import torch

        return getattr(torch, tree["name"], Unsupported(f"dtype {tree['name']}"))
    if kind == "size":
        import torch

        return torch.Size(tree["items"])
    if kind in ("tuple", "set", "frozenset"):
        items = [decode(v, tensors) for v in tree["items"]]
        if kind == "tuple":
            return tuple(items)
        try:
            return set(items) if kind == "set" else frozenset(items)
        except TypeError:
            return Unsupported(kind, "unhashable items")
    if kind == "dict":
        result = {}
        for key, value in tree["items"]:
            key = decode(key, tensors)
            try:
                result[key] = decode(value, tensors)
            except TypeError:
                return Unsupported("dict", "unhashable keys")
        return result
    if kind == "unsupported":
        return Unsupported(str(tree.get("type", "object")), str(tree.get("why", "")))
    return Unsupported("dict", "unexpected structure")


def dumps(payload: dict) -> bytes:
    """``payload`` (plain values and tensors) as bytes, via ``torch.save``."""
    import torch

    buffer = io.BytesIO()
    torch.save(payload, buffer)
    return buffer.getvalue()


def loads(data: bytes) -> dict:
    """Read bytes written by :func:`dumps`; ``weights_only=True`` so no code runs while loading."""
    import torch

    return torch.load(io.BytesIO(data), weights_only=True, map_location="cpu")
