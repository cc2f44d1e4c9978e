"""The exercise machinery: problems whose ``check`` answers back, with hints and solutions.

Every chapter's exercise module (``slm_course.exercises.ch01`` …) defines problems ``q1``, ``q2`` …
The learner writes a function or class in a tagged notebook cell and calls ``q1.check(their_obj)``:

- an untouched stub (it raises ``NotImplementedError``) is *not attempted*;
- when the learner's code raises, they see their own traceback (our frames removed);
- a wrong answer names the input, the expected value and the actual one (shape and dtype for tensors);
- ``check`` returns a :class:`CheckResult` the grader reads (status, cases passed of total, points).

Expected values are computed by :meth:`Problem.prepare` from the package's own implementation,
so a grader can take them before any learner code runs.
"""
from __future__ import annotations

import copy
import math
import os
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

_NOTHING = object()  # check() called without an argument

NOT_ATTEMPTED = "not-attempted"
INCORRECT = "incorrect"
CORRECT = "correct"

_THIS_DIR = str(Path(__file__).resolve().parent)


def assessment_mode() -> bool:
    """True when ``SLM_COURSE_ASSESSMENT`` is set to a true value: hints and solutions refuse."""
    return os.environ.get("SLM_COURSE_ASSESSMENT", "").strip().lower() not in ("", "0", "false", "no")


@dataclass
class CheckResult:
    """What a check found. ``status`` is one of ``not-attempted``, ``incorrect``, ``correct``."""

    problem: str
    status: str
    passed: int
    total: int
    message: str
    points: float = 0.0
    max_points: float = 0.0
    reason: str = ""  # one line: why points were lost ("" when correct)

    @property
    def correct(self) -> bool:
        return self.status == CORRECT

    def __str__(self) -> str:
        return self.message

    def _ipython_display_(self) -> None:
        # ``check`` has already shown the message; a check on a cell's last line shows it once.
        return None

    def to_dict(self) -> dict:
        """The result as plain data (what the grader writes to JSON)."""
        return {
            "problem": self.problem,
            "status": self.status,
            "passed": self.passed,
            "total": self.total,
            "points": round(self.points, 4),
            "max_points": self.max_points,
            "reason": self.reason,
        }


class ShownText(str):
    """Text already printed by ``hint``/``solution``: a cell ending in ``q1.hint(1)`` shows it once."""

    def _ipython_display_(self) -> None:
        return None


@dataclass
class Case:
    """One test case: ``run(obj)`` gives the learner's answer, compared with ``expected``.

    ``label`` shows the input the way the learner would write the call, e.g. ``"causal_mask(3)"``.
    ``expected`` may be a zero-argument callable; :meth:`Problem.prepare` evaluates it once.
    ``compare(expected, actual)`` returns ``None`` when they agree, else a sentence saying how not.
    """

    label: str
    run: Callable[[Any], Any]
    expected: Any
    compare: Callable[[Any, Any], str | None] | None = None


def call(*args: Any, **kwargs: Any) -> Callable[[Any], Any]:
    """A ``Case.run`` that calls the learner's function with fresh copies of ``args``/``kwargs``.

    ``copy.deepcopy`` is taken when the case is built, so a grader that builds its cases before any
    learner code runs keeps the real one even if the notebook later patches the ``copy`` module.
    """
    deepcopy = copy.deepcopy

    def run(obj: Any) -> Any:
        return obj(*deepcopy(args), **deepcopy(kwargs))

    return run


def random_tensor(*shape: int, seed: int):
    """A standard-normal float32 tensor of ``shape``, the same for a given ``seed`` on every machine
    (its own generator: the global random state is left alone). Case inputs use it."""
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- comparing values

def describe(value: Any, limit: int = 160) -> str:
    """A short description of a value for messages: tensors by shape and dtype, the rest by repr."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            text = f"tensor of shape {tuple(value.shape)}, dtype {value.dtype}"
            if value.numel() <= 12:
                text += f": {[round(v, 4) if isinstance(v, float) else v for v in value.flatten().tolist()]}"
            return text
    except ImportError:  # pragma: no cover
        pass
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return f"array of shape {value.shape}, dtype {value.dtype}"
    except ImportError:  # pragma: no cover
        pass
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 5] + " …"


def compare_values(expected: Any, actual: Any, *, rtol: float = 1e-4, atol: float = 1e-5) -> str | None:
    """``None`` when ``actual`` matches ``expected``, else a sentence saying what differs.

    Tensors and arrays: same type, shape, dtype, values within ``rtol``/``atol``. Floats: close.
    Lists, tuples and dicts: compared item by item. Everything else: ``==``.
    """
    if actual is None and expected is not None:
        return "got None; did you forget a `return`?"
    try:
        import torch

        if isinstance(expected, torch.Tensor):
            if not isinstance(actual, torch.Tensor):
                return f"expected a tensor, got {type(actual).__name__}"
            if tuple(actual.shape) != tuple(expected.shape):
                return f"expected shape {tuple(expected.shape)}, got shape {tuple(actual.shape)}"
            if actual.dtype != expected.dtype:
                return f"expected dtype {expected.dtype}, got dtype {actual.dtype}"
            a, e = actual.detach().cpu(), expected.detach().cpu()
            if e.dtype.is_floating_point or e.is_complex():
                if not torch.allclose(a, e, rtol=rtol, atol=atol, equal_nan=True):
                    diff = (a.double() - e.double()).abs().nan_to_num(float("inf")).max().item()
                    return f"values differ (largest difference {diff:.3g})"
            elif not torch.equal(a, e):
                wrong = (a != e).sum().item()
                return f"{wrong} of {e.numel()} values differ"
            return None
    except ImportError:  # pragma: no cover
        pass
    try:
        import numpy as np

        if isinstance(expected, np.ndarray):
            if not isinstance(actual, np.ndarray):
                return f"expected a NumPy array, got {type(actual).__name__}"
            if actual.shape != expected.shape:
                return f"expected shape {expected.shape}, got shape {actual.shape}"
            if not np.allclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True):
                return "values differ"
            return None
    except ImportError:  # pragma: no cover
        pass
    if isinstance(expected, bool) or expected is None:
        return None if actual == expected and type(actual) is type(expected) else f"expected {expected!r}, got {describe(actual)}"
    if isinstance(expected, float):
        if not isinstance(actual, (int, float)) or isinstance(actual, bool):
            return f"expected a number, got {type(actual).__name__}"
        if not math.isclose(float(actual), expected, rel_tol=rtol, abs_tol=atol):
            return f"expected {expected:.6g}, got {float(actual):.6g}"
        return None
    if isinstance(expected, (list, tuple)):
        if not isinstance(actual, (list, tuple)):
            return f"expected a {type(expected).__name__}, got {type(actual).__name__}"
        if len(actual) != len(expected):
            return f"expected {len(expected)} items, got {len(actual)}"
        for index, (e, a) in enumerate(zip(expected, actual)):
            reason = compare_values(e, a, rtol=rtol, atol=atol)
            if reason:
                return f"item {index}: {reason}"
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"expected a dict, got {type(actual).__name__}"
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected]
        if missing or extra:
            parts = []
            if missing:
                parts.append(f"missing keys {describe(missing[:5])}")
            if extra:
                parts.append(f"unexpected keys {describe(extra[:5])}")
            return "; ".join(parts)
        for key in expected:
            reason = compare_values(expected[key], actual[key], rtol=rtol, atol=atol)
            if reason:
                return f"at key {key!r}: {reason}"
        return None
    if actual != expected:
        return f"expected {describe(expected)}, got {describe(actual)}"
    return None


def _learner_traceback(error: BaseException) -> str:
    """The traceback of ``error`` without the frames of this package's checking code."""
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(_THIS_DIR)]
    lines = traceback.format_list(frames) + traceback.format_exception_only(type(error), error)
    return "Traceback (most recent call last):\n" + "".join(lines).rstrip()


# --------------------------------------------------------------------------- problems

@dataclass
class Problem:
    """One graded exercise.

    ``target`` is the name of the notebook object the check takes (``q1.check(build_vocab)``);
    the grader looks it up by that name. ``cases`` is a zero-argument function returning the list
    of :class:`Case` (so expected values are computed from the package when first needed).
    """

    name: str
    chapter: str
    target: str
    title: str
    cases: Callable[[], Sequence[Case]]
    hints: Sequence[str] = ()
    points: float = 1.0
    _prepared: list[Case] | None = field(default=None, init=False, repr=False)

    def prepare(self) -> list[Case]:
        """Build the cases and compute their expected values now (the grader calls this first)."""
        if self._prepared is None:
            prepared = []
            for case in self.cases():
                expected = case.expected() if callable(case.expected) else case.expected
                prepared.append(Case(case.label, case.run, expected, case.compare))
            self._prepared = prepared
        return self._prepared

    # The learner-facing API -------------------------------------------------------------------
    def check(self, obj: Any = _NOTHING, *, quiet: bool = False) -> CheckResult:
        """Check the learner's object; show the verdict (unless ``quiet``) and return it."""
        if obj is _NOTHING:
            raise TypeError(f"check needs your `{self.target}` itself: call `{self.name}.check({self.target})`.")
        if obj is not None and not callable(obj):
            total = len(self.prepare())
            result = self._result(
                INCORRECT, 0, total,
                f"✗ {self.name} incorrect: check takes your `{self.target}` itself, not its result "
                f"(a {type(obj).__name__}): call `{self.name}.check({self.target})`.",
                f"`{self.target}` is a {type(obj).__name__}, not a function or class",
            )
        else:
            result = self._evaluate(obj)
        if not quiet:
            print(result.message)
        return result

    def hint(self, level: int = 1) -> ShownText | None:
        """Show hint ``level`` (1 is a nudge; higher levels say more)."""
        if assessment_mode():
            print(f"{self.name}: hints are switched off during assessment (SLM_COURSE_ASSESSMENT is set).")
            return None
        if not self.hints:
            print(f"{self.name} has no hints.")
            return None
        if not isinstance(level, int) or level < 1:
            raise ValueError(f"hint level must be a whole number from 1 to {len(self.hints)}, got {level!r}")
        level = min(level, len(self.hints))
        more = f" (try hint({level + 1}) for more)" if level < len(self.hints) else ""
        text = f"Hint {level}/{len(self.hints)} for {self.name}{more}: {self.hints[level - 1]}"
        print(text)
        return ShownText(text)

    def solution(self) -> ShownText | None:
        """Show the solution code, taken from ``solutions/`` by ``slm-course build-exercises``."""
        if assessment_mode():
            print(f"{self.name}: solutions are switched off during assessment (SLM_COURSE_ASSESSMENT is set).")
            return None
        from slm_course.exercises.build import load_solution_source

        source = load_solution_source(self.chapter, self.name)
        print(f"Solution to {self.name} ({self.title}):\n\n{source}")
        return ShownText(source)

    # The grader-facing API --------------------------------------------------------------------
    def grade(self, namespace: dict) -> CheckResult:
        """Check the object named ``target`` in ``namespace`` without printing."""
        return self._evaluate(namespace.get(self.target), quiet_missing=True)

    def _result(self, status: str, passed: int, total: int, message: str, reason: str = "") -> CheckResult:
        points = self.points * passed / total if total else 0.0
        if status == NOT_ATTEMPTED:
            points = 0.0
        return CheckResult(self.name, status, passed, total, message, points, self.points, reason)

    def _evaluate(self, obj: Any, quiet_missing: bool = False) -> CheckResult:
        cases = self.prepare()
        total = len(cases)
        if obj is None:
            reason = f"`{self.target}` is not defined"
            return self._result(
                NOT_ATTEMPTED, 0, total,
                f"{self.name}: not attempted. Define `{self.target}` in the exercise cell, run it, then check again.",
                reason,
            )
        passed, not_implemented, first_failure = 0, 0, None
        for case in cases:
            try:
                actual = case.run(obj)
            except NotImplementedError:
                not_implemented += 1
                continue
            except Exception as error:  # the learner's code raised: show their traceback
                if first_failure is None:
                    first_failure = (
                        f"`{case.label}` raised {type(error).__name__}",
                        f"Your code raised an error on `{case.label}`:\n{_learner_traceback(error)}",
                    )
                continue
            compare = case.compare or compare_values
            reason = compare(case.expected, actual)
            if reason is None:
                passed += 1
            elif first_failure is None:
                first_failure = (
                    f"`{case.label}`: {reason}",
                    f"Expected `{case.label}` to give {describe(case.expected)}, "
                    f"but got {describe(actual)} instead ({reason}).",
                )
        if not_implemented == total:
            return self._result(
                NOT_ATTEMPTED, 0, total,
                f"{self.name}: not attempted. Replace the `raise NotImplementedError` in `{self.target}` "
                "with your code, run the cell, then check again.",
                "not attempted",
            )
        if passed == total:
            return self._result(CORRECT, passed, total, f"✓ {self.name} correct: {self.title} ({passed}/{total} cases).")
        if first_failure is None:  # some cases raised NotImplementedError, the rest passed
            first_failure = ("part of the code is still a stub", "Part of your code still raises NotImplementedError.")
        short, long = first_failure
        return self._result(
            INCORRECT, passed, total,
            f"✗ {self.name} incorrect ({passed}/{total} cases passed). {long}",
            short,
        )


def problems_of(module: Any) -> list[Problem]:
    """The problems a chapter module defines, in order (q1, q2, …)."""
    found = [v for k, v in vars(module).items() if isinstance(v, Problem) and k.startswith("q")]
    return sorted(found, key=lambda p: int(p.name[1:]))
