"""Rules a check enforces while it runs the learner's function: inputs left alone, shortcuts refused.

- :func:`call` runs the function on deep copies of a case's inputs and afterwards compares those
  copies with the pristine ones it keeps (tensors exactly, NaN equal to NaN). An input edited in
  place raises :class:`InputChanged`, which the check reports as an incorrect case with a sentence
  naming the argument. A tensor that comes back with ``requires_grad`` switched on, or with a
  ``.grad`` it did not have, counts as edited too (the caller's tensor would now track gradients).
- :func:`forbid` wraps a case's ``run`` so that stated "do not use X" rules hold. Mechanism, in two
  parts: (1) while the learner's function runs, each forbidden function is replaced on its owner
  (``torch.softmax`` on ``torch``, ``Tensor.softmax`` on ``torch.Tensor`` …) by one that raises
  :class:`ForbiddenCall`, then restored, so any spelling that looks the name up at call time is
  caught (``torch.softmax``, ``F.softmax``, ``x.softmax``, ``nn.Softmax()``, ``getattr``);
  (2) before the call, the global names the function's code reads (:func:`global_names`) are
  resolved in its globals, and one bound to a forbidden function itself
  (``from torch import softmax``) is refused too, as is one held in a closure or a default.
- :func:`count_calls` wraps a case's ``run`` so that a stated "call X exactly n times" holds
  ("``backward()`` once per micro-batch"): the function is replaced on its owner, as by ``forbid``,
  by one that counts and then calls the original; a different count raises :class:`CallCount`.

Using them in a chapter module::

    Case("f(x)", call(x), expected)                                    # inputs left alone
    Case("f(xs)", call_for_new(xs), expected)                          # … and a new list returned
    Case("f(x)", forbid(call(x), "torch.softmax", advice="…"), expected)  # a shortcut refused
    Case("f(w, batches)", count_calls(call(w, batches), "torch.Tensor.backward", times=3,
                                      what="`backward()` once per micro-batch"), expected)

Both errors travel through the grader like any error (by class name and message), and
:class:`~slm_course.exercises.core.Problem` turns them into an "incorrect" with that message.
Everything a rule uses is taken when the case is built, before any learner code runs.
"""
from __future__ import annotations

import copy
import dis
import importlib
import inspect
import math
from types import CodeType
from typing import Any, Callable, Iterator

RULE_ERRORS = ("InputChanged", "ForbiddenCall", "CallCount")  # matched by name: the grader replays errors by name
_MISSING = object()


class InputChanged(Exception):
    """The learner's function edited one of its inputs in place."""


class ForbiddenCall(Exception):
    """The learner's function used a function the exercise forbids."""


class CallCount(Exception):
    """The learner's function called a function more or fewer times than the exercise asks."""


def _same_input_checker() -> Callable[[Any, Any], bool]:
    """``same(a, b)``: are two inputs equal, tensors exactly (NaN equal to NaN)? References taken now."""
    import torch

    tensor, equal, isnan, isinstance_, len_, type_ = torch.Tensor, torch.equal, torch.isnan, isinstance, len, type

    def same(a: Any, b: Any) -> bool:
        if isinstance_(a, tensor):
            if not isinstance_(b, tensor) or a.shape != b.shape or a.dtype != b.dtype:
                return False
            if a.requires_grad != b.requires_grad or (a.grad is None) != (b.grad is None):
                return False  # the caller's tensor would now track gradients, or hold a .grad
            if a.is_floating_point():
                return bool(((a == b) | (isnan(a) & isnan(b))).all())
            return equal(a, b)
        if type_(a) is not type_(b):
            return False
        if isinstance_(a, (list, tuple)):
            return len_(a) == len_(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance_(a, dict):
            return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
        if isinstance_(a, float) and math.isnan(a):
            return isinstance_(b, float) and math.isnan(b)
        try:
            return bool(a == b)
        except Exception:  # noqa: BLE001 - an input we cannot compare is taken as unchanged
            return True

    return same


def _argument_name(obj: Any, index: int | str, signature: Callable) -> str:
    if isinstance(index, str):
        return index
    try:
        params = [p for p in signature(obj).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        return params[index].name
    except (TypeError, ValueError, IndexError):
        return f"argument {index + 1}"


def _copy_advice(value: Any, given: Any = None) -> str:
    if type(value).__name__ == "Tensor":
        if type(given).__name__ == "Tensor" and (value.requires_grad != given.requires_grad
                                                 or (value.grad is None) != (given.grad is None)):
            return ("it now requires grad or holds a `.grad`: take a copy first, "
                    "`w = w.detach().clone().requires_grad_()`")
        return "`.clone()` it, or use out-of-place operations (`x = x - m`, not `x -= m` or `x.sub_(m)`)"
    if isinstance(value, dict):
        return "build a new dict (`dict(d)`) instead of adding to or changing the given one"
    return "work on a copy (`list(ids)`, `ids[:]`) or build a new result"


def call(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """A ``Case.run`` that calls the learner's function with fresh copies of ``args``/``kwargs``,
    then checks that the function left those copies as it got them (see :class:`InputChanged`).

    ``copy.deepcopy`` and the comparison are taken when the case is built, so a grader that builds
    its cases before any learner code runs keeps the real ones even if the notebook patches them.
    """
    return _caller(args, kwargs, fresh=False)


def call_for_new(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """:func:`call`, and the result must be a new object: returning one of the inputs itself (the given
    list, say) raises :class:`InputChanged` ("return a new list")."""
    return _caller(args, kwargs, fresh=True)


def _caller(args: tuple, kwargs: dict, fresh: bool) -> Callable[[Any], Any]:
    deepcopy, same, signature = copy.deepcopy, _same_input_checker(), inspect.signature

    def run(obj: Any) -> Any:
        given_args, given_kwargs = deepcopy(args), deepcopy(kwargs)
        result = obj(*given_args, **given_kwargs)
        changed = [(i, a, g) for i, (a, g) in enumerate(zip(args, given_args)) if not same(a, g)]
        changed += [(k, v, given_kwargs[k]) for k, v in kwargs.items() if not same(v, given_kwargs[k])]
        if changed:
            index, value, given = changed[0]
            name = _argument_name(obj, index, signature)
            raise InputChanged(f"your function changed its input `{name}` in place; the caller still needs it "
                               f"as it was: {_copy_advice(value, given)}")
        if fresh:
            returned = [i for i, g in enumerate(given_args) if g is result]
            returned += [k for k, g in given_kwargs.items() if g is result]
            if returned:
                name = _argument_name(obj, returned[0], signature)
                raise InputChanged(f"your function returned its input `{name}` itself; this exercise asks for a "
                                   f"new {type(result).__name__}, so that the caller's stays as it was")
        return result

    return run


# --------------------------------------------------------------------------- reading code

def code_objects(obj: Any) -> Iterator[CodeType]:
    """The code of a function (or of a class's methods), with every nested code object."""
    stack: list[CodeType] = []
    if inspect.isclass(obj):
        for value in vars(obj).values():
            value = getattr(value, "__func__", value)
            if isinstance(value, property):
                stack += [f.__code__ for f in (value.fget, value.fset, value.fdel) if f is not None]
            elif hasattr(value, "__code__"):
                stack.append(value.__code__)
    elif hasattr(obj, "__code__"):
        stack.append(obj.__code__)
    while stack:
        code = stack.pop()
        yield code
        stack += [c for c in code.co_consts if isinstance(c, CodeType)]


def global_names(obj: Any) -> list[str]:
    """The global names the code of ``obj`` reads (``LOAD_GLOBAL``/``LOAD_NAME``), in first-use order."""
    names: dict[str, None] = {}
    for code in code_objects(obj):
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME") and isinstance(instruction.argval, str):
                names.setdefault(instruction.argval, None)
    return list(names)


def globals_of(obj: Any) -> dict[str, Any]:
    """The module namespace the code of ``obj`` resolves its global names in."""
    if hasattr(obj, "__globals__"):
        return obj.__globals__
    for value in vars(obj).values() if inspect.isclass(obj) else ():
        value = getattr(value, "__func__", value)
        if hasattr(value, "__globals__"):
            return value.__globals__
    module = importlib.import_module(getattr(obj, "__module__", "builtins") or "builtins")
    return vars(module)


# --------------------------------------------------------------------------- forbidden shortcuts

def _resolve(dotted: str) -> tuple[Any, str, Any]:
    """``"torch.nn.functional.softmax"`` -> (the module/class holding it, ``"softmax"``, the function)."""
    parts = dotted.split(".")
    for cut in range(len(parts) - 1, 0, -1):
        try:
            owner = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for part in parts[cut:-1]:
            owner = getattr(owner, part)
        return owner, parts[-1], getattr(owner, parts[-1])
    raise ValueError(f"cannot find {dotted!r}: expected a dotted name such as 'torch.softmax'")


def forbid(run: Callable[[Any], Any], *names: str, advice: str = "") -> Callable[[Any], Any]:
    """``run`` with the functions ``names`` (dotted, e.g. ``"torch.softmax"``) refused while it runs.

    See the module docstring for how. ``advice`` ends the message ("write it from exp and sum").
    """
    targets = [(name, *_resolve(name)) for name in names]
    originals = {id(original): name for name, _, _, original in targets}
    read_names, globals_, setattr_, delattr_, vars_, get = global_names, globals_of, setattr, delattr, vars, dict.get
    tail = f" {advice}" if advice else ""

    def refusal(name: str) -> ForbiddenCall:
        return ForbiddenCall(f"your function uses `{name}`, which this exercise asks you not to use.{tail}")

    def guarded(obj: Any) -> Any:
        namespace = globals_(obj)
        seen = [get(namespace, n, _MISSING) for n in read_names(obj)]
        seen += [cell.cell_contents for cell in (getattr(obj, "__closure__", None) or ())
                 if cell.cell_contents is not None]
        seen += list(getattr(obj, "__defaults__", None) or ())
        for value in seen:
            if id(value) in originals and value is not _MISSING:
                raise refusal(originals[id(value)])
        saved = []
        try:
            for name, owner, attribute, _ in targets:
                saved.append((owner, attribute, vars_(owner).get(attribute, _MISSING)))

                def refused(*_args: Any, _name: str = name, **_kwargs: Any) -> Any:
                    raise refusal(_name)

                setattr_(owner, attribute, refused)
            return run(obj)
        finally:
            for owner, attribute, before in reversed(saved):
                if before is _MISSING:
                    delattr_(owner, attribute)
                else:
                    setattr_(owner, attribute, before)

    return guarded


def count_calls(run: Callable[[Any], Any], name: str, *, times: int, what: str = "") -> Callable[[Any], Any]:
    """``run`` with the function ``name`` (dotted, e.g. ``"torch.Tensor.backward"``) counted while it runs.

    The case fails with :class:`CallCount` unless it was called exactly ``times`` times; ``what`` says
    the rule in words for the message ("`backward()` once per micro-batch"). The function still works.
    """
    owner, attribute, original = _resolve(name)
    setattr_, vars_ = setattr, vars
    rule = what or f"`{name}` {times} time{'s' if times != 1 else ''}"

    def counted(obj: Any) -> Any:
        count = [0]

        def counting(*args: Any, **kwargs: Any) -> Any:
            count[0] += 1
            return original(*args, **kwargs)

        before = vars_(owner).get(attribute, _MISSING)
        setattr_(owner, attribute, counting)
        try:
            result = run(obj)
        finally:
            if before is _MISSING:
                delattr(owner, attribute)
            else:
                setattr_(owner, attribute, before)
        if count[0] != times:
            raise CallCount(f"this exercise asks for {rule}: {times} call{'s' if times != 1 else ''} here, "
                            f"but your function made {count[0]}")
        return result

    return counted
