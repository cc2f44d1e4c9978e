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
from typing import Any

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


def encode(value: Any, tensors: list, budget: list[int] | None = None, depth: int = 0) -> Any:
    """``value`` as a tree of None/bool/int/float/str/list/dict; tensors go into ``tensors``."""
    import torch

    budget = budget if budget is not None else [MAX_ITEMS]
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH:
        return {_KIND: "unsupported", "type": type(value).__name__, "why": "too large or too deeply nested"}
    if value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.Tensor):
        try:
            plain = value.as_subclass(torch.Tensor).detach().to("cpu").clone()
            if plain.layout != torch.strided:
                plain = plain.to_dense()
        except Exception:  # noqa: BLE001 - a learner's odd tensor: report it, do not crash
            return {_KIND: "unsupported", "type": type(value).__name__, "why": "an unusual tensor"}
        tensors.append(plain)
        return {_KIND: "tensor", "index": len(tensors) - 1}
    if isinstance(value, torch.dtype):
        return {_KIND: "dtype", "name": str(value).removeprefix("torch.")}
    if isinstance(value, torch.Size):
        return {_KIND: "size", "items": [int(v) for v in value]}
    try:
        import numpy as np

        if isinstance(value, np.ndarray) and value.dtype.kind in "biufc":
            tensors.append(torch.from_numpy(np.ascontiguousarray(value)).clone())
            return {_KIND: "ndarray", "index": len(tensors) - 1}
        if isinstance(value, np.generic) and value.dtype.kind in "biuf":
            return value.item()
    except ImportError:  # pragma: no cover
        pass
    if type(value) in (list, tuple, set, frozenset):
        ordered = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        items = [encode(v, tensors, budget, depth + 1) for v in ordered]
        return items if type(value) is list else {_KIND: type(value).__name__, "items": items}
    if type(value) is dict or (isinstance(value, dict) and type(value).__module__ == "collections"):
        pairs = [[encode(k, tensors, budget, depth + 1), encode(v, tensors, budget, depth + 1)] for k, v in value.items()]
        return {_KIND: "dict", "items": pairs}
    if isinstance(value, (bool, int, float, str)):  # subclasses (a learner's int with a rigged __eq__)
        return {_KIND: "unsupported", "type": type(value).__name__, "why": "a subclass of a built-in type"}
    return {_KIND: "unsupported", "type": type(value).__name__}


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
