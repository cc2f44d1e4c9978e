"""Comparing a learner's answer with the expected one, and saying in words what differs.

Used by every check (:func:`compare_values` is the default ``Case.compare``). Types are exact where
a statement names one: a tuple needs a tuple (a list is wrong), a list a list, an ``int`` an
``int`` (not a float, not a bool), a ``bool`` a bool, a ``str`` a str. An expected ``float``
accepts an ``int`` of the same value (``0`` for ``0.0``: Python's own numeric tower, and a learner
returning ``0`` when nothing is counted has the right number). NumPy scalars count as the Python
type they stand for (the grader turns them into Python numbers anyway).

Nested results are described by position in words: a case may name the parts of each level,
``parts=("window", ("input", "target"), "position")`` gives "window 0, target, position 1". A
string names numbered items ("window 0"); a tuple names the items by position ("target").

Tolerances: a Python float is right within :data:`FLOAT_RTOL` of the expected value (or
:data:`FLOAT_ATOL` of it near 0): loose enough for an answer computed in float32 tensors and returned
with ``float()`` (float32 holds about 7 significant digits), tight enough that a formula off by a
factor, a term or a rounding shows. Tensors are compared with :data:`TENSOR_RTOL`/:data:`TENSOR_ATOL`.
A message about two close numbers prints as many digits as it takes to show that they differ.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

Parts = Sequence[Any] | None

FLOAT_RTOL = 1e-5  # relative: float32's rounding over a few dozen operations stays well inside it
FLOAT_ATOL = 1e-12  # absolute floor, for expected values that are exactly 0
TENSOR_RTOL = 1e-4
TENSOR_ATOL = 1e-5


def _number(value: float, digits: int = 4) -> str:
    """A float for messages: NaN as NaN, infinities as inf/-inf, else ``digits`` significant digits."""
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float):
        text = f"{value:.{digits}g}"
        return text if any(c in text for c in ".en") else text + ".0"
    return repr(value)


def _pair(expected: float, actual: float) -> tuple[str, str]:
    """Both numbers rounded, with as many digits as it takes to show that they differ."""
    for digits in range(4, 17):
        e, a = _number(float(expected), digits), _number(float(actual), digits)
        if e != a:
            return e, a
    return _number(float(expected), 17), _number(float(actual), 17)


def _plain(value: Any, budget: list[int]) -> str:
    """``repr``-like text of plain data with floats rounded (and NaN written NaN)."""
    budget[0] -= 1
    if budget[0] < 0:
        return "…"
    if isinstance(value, float):
        return _number(value)
    if isinstance(value, list):
        return "[" + ", ".join(_plain(v, budget) for v in value) + "]"
    if isinstance(value, tuple) and type(value) is tuple:
        inner = ", ".join(_plain(v, budget) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if type(value) is dict:
        return "{" + ", ".join(f"{k!r}: {_plain(v, budget)}" for k, v in value.items()) + "}"
    return repr(value)


def describe(value: Any, limit: int = 160) -> str:
    """A short description of a value for messages: tensors by shape and dtype (and their values when
    there are at most 12), the rest as Python writes it, floats rounded, NaN written NaN."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            text = f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
            if value.numel() <= 12:
                text += f": {_plain(value.detach().cpu().flatten().tolist(), [100])}"
            return text
    except ImportError:  # pragma: no cover
        pass
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return f"array of shape {value.shape}, dtype {value.dtype}"
    except ImportError:  # pragma: no cover
        pass
    text = _plain(value, [400])
    return text if len(text) <= limit else text[: limit - 5] + " …"


def _type_name(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _kind(value: Any) -> str | None:
    """``"bool"``, ``"int"`` or ``"float"`` for Python and NumPy scalars, else ``None``."""
    try:
        import numpy as np

        numpy_kinds = ((np.bool_, "bool"), (np.integer, "int"), (np.floating, "float"))
    except ImportError:  # pragma: no cover
        numpy_kinds = ()
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    for cls, name in numpy_kinds:
        if isinstance(value, cls):
            return name
    return None


def _name_of(parts: Parts, depth: int, index: Any) -> str:
    spec = parts[depth] if parts is not None and depth < len(parts) else None
    if isinstance(index, str) or not isinstance(index, int):
        return f"key {index!r}"
    if isinstance(spec, str):
        return f"{spec} {index}"
    if isinstance(spec, (tuple, list)) and index < len(spec):
        return str(spec[index])
    return f"item {index}"


_PLACE = "\x00"  # separates a place ("window 0, target") from what is wrong there, until the top


def _at(name: str, reason: str) -> str:
    """``name`` prepended to the place of ``reason`` (places join with commas, then a colon)."""
    return f"{name}, {reason}" if _PLACE in reason else f"{name}{_PLACE}{reason}"


def _tensor_reason(expected: Any, actual: Any, rtol: float | None, atol: float | None) -> str | None:
    import torch

    if not isinstance(actual, torch.Tensor):
        return f"expected a tensor, got {_type_name(actual)}"
    if tuple(actual.shape) != tuple(expected.shape):
        return f"expected shape {tuple(expected.shape)}, got shape {tuple(actual.shape)}"
    if actual.dtype != expected.dtype:
        return f"expected dtype {expected.dtype}, got dtype {actual.dtype}"
    a, e = actual.detach().cpu(), expected.detach().cpu()
    if e.dtype.is_floating_point or e.is_complex():
        close = torch.isclose(a, e, rtol=TENSOR_RTOL if rtol is None else rtol,
                              atol=TENSOR_ATOL if atol is None else atol, equal_nan=True)
    else:
        close = a == e
    if bool(close.all()):
        return None
    wrong = (~close).nonzero()[0].tolist()
    where = f"[{', '.join(map(str, wrong))}]"
    got, want = a[tuple(wrong)].item(), e[tuple(wrong)].item()
    if isinstance(got, float):
        want_text, got_text = _pair(want, got)
    else:
        want_text, got_text = repr(want), repr(got)
    text = (f"the shape {tuple(e.shape)} and dtype are right, but {int((~close).sum())} of {e.numel()} values "
            f"differ, first at index {where}: expected {want_text}, got {got_text}")
    if e.dtype.is_floating_point:
        nans = int((a.isnan() & ~e.isnan()).sum())
        if nans:
            text += f"; your result has NaN at {nans} position{'s' if nans > 1 else ''}"
    return text


def close_floats(expected: float, actual: float, rtol: float | None = None, atol: float | None = None) -> bool:
    """Are two Python numbers equal within the float tolerance (infinities equal themselves)?"""
    if math.isinf(expected) or math.isinf(actual):
        return expected == actual
    return math.isclose(actual, expected, rel_tol=FLOAT_RTOL if rtol is None else rtol,
                        abs_tol=FLOAT_ATOL if atol is None else atol)


def float_reason(expected: float, actual: Any) -> str | None:
    """``None`` when ``actual`` is a Python number (or NumPy scalar) close to ``expected``, else why not.

    The default comparison of a float; a custom ``Case.compare`` can call it for its float parts."""
    return compare_values(float(expected), actual)


def _reason(expected: Any, actual: Any, rtol: float | None, atol: float | None, parts: Parts,
            depth: int) -> str | None:
    if actual is None and expected is not None:
        return "got None; did you forget a `return`?" if depth == 0 else "got None"
    try:
        import torch

        if isinstance(expected, torch.Tensor):
            return _tensor_reason(expected, actual, rtol, atol)
        if isinstance(expected, torch.dtype):
            return None if actual == expected else f"expected {expected}, got {describe(actual)}"
    except ImportError:  # pragma: no cover
        pass
    try:
        import numpy as np

        if isinstance(expected, np.ndarray):
            if not isinstance(actual, np.ndarray):
                return f"expected a NumPy array, got {_type_name(actual)}"
            if actual.shape != expected.shape:
                return f"expected shape {expected.shape}, got shape {actual.shape}"
            if not np.allclose(actual, expected, rtol=TENSOR_RTOL if rtol is None else rtol,
                               atol=TENSOR_ATOL if atol is None else atol, equal_nan=True):
                return f"the shape {expected.shape} is right, but the values differ"
            return None
    except ImportError:  # pragma: no cover
        pass
    if expected is None:
        return None if actual is None else f"expected None, got {describe(actual)}"
    want, got = _kind(expected), _kind(actual)
    if want == "bool":
        if got != "bool":
            return f"expected {bool(expected)!r} (a bool), got {_type_name(actual)} {describe(actual)}"
        return None if bool(actual) == bool(expected) else f"expected {bool(expected)!r}, got {bool(actual)!r}"
    if want == "int":
        if got != "int":
            return f"expected {int(expected)!r} (an int), got {_type_name(actual)} {describe(actual)}"
        return None if int(actual) == int(expected) else f"expected {int(expected)!r}, got {int(actual)!r}"
    if want == "float":
        if got not in ("int", "float"):
            return f"expected {_number(float(expected))} (a float), got {_type_name(actual)} {describe(actual)}"
        e, a = float(expected), float(actual)
        if math.isnan(e) and math.isnan(a):
            return None
        if math.isnan(a) or not close_floats(e, a, rtol, atol):
            want_text, got_text = _pair(e, a)
            return f"expected {want_text}, got {got_text}"
        return None
    if isinstance(expected, str):
        if not isinstance(actual, str):
            return f"expected a str, got {_type_name(actual)}"
        return None if actual == expected else f"expected {describe(expected)}, got {describe(actual)}"
    if isinstance(expected, (list, tuple)):
        wanted = tuple if isinstance(expected, tuple) else list
        if not isinstance(actual, wanted):
            return (f"expected a {wanted.__name__}, got a {_type_name(actual)}"
                    + (f" (return a {wanted.__name__}, e.g. `{wanted.__name__}(...)`)"
                       if isinstance(actual, (list, tuple)) else ""))
        if len(actual) != len(expected):
            return f"expected {len(expected)} items, got {len(actual)}"
        for index, (e, a) in enumerate(zip(expected, actual)):
            reason = _reason(e, a, rtol, atol, parts, depth + 1)
            if reason:
                return _at(_name_of(parts, depth, index), reason)
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"expected a dict, got {_type_name(actual)}"
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing or extra:
            found = []
            if missing:
                found.append(f"missing keys {describe(missing[:5])}")
            if extra:
                found.append(f"unexpected keys {describe(extra[:5])}")
            return "; ".join(found)
        for key in expected:
            reason = _reason(expected[key], actual[key], rtol, atol, parts, depth + 1)
            if reason:
                return _at(f"at key {key!r}", reason)
        return None
    if actual != expected:
        return f"expected {describe(expected)}, got {describe(actual)}"
    return None


def compare_values(expected: Any, actual: Any, *, rtol: float | None = None, atol: float | None = None,
                   parts: Parts = None) -> str | None:
    """``None`` when ``actual`` matches ``expected``, else a sentence saying what differs.

    Tensors and arrays: same type, shape, dtype, values within ``rtol``/``atol`` (NaN equals NaN);
    when only values differ the sentence says so first, then where. Floats: close (an int of
    the same value is accepted). Ints, bools, strings: exact type and value. Lists, tuples, dicts:
    the container type exactly, then item by item, positions named by ``parts`` (see the module).
    ``rtol``/``atol`` default to the module's float and tensor tolerances; given, they apply to both.
    """
    reason = _reason(expected, actual, rtol, atol, parts, 0)
    return None if reason is None else reason.replace(_PLACE, ": ")
