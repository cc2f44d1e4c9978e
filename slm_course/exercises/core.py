"""The exercise machinery: problems whose ``check`` answers back, with hints and solutions.

Every chapter's exercise module (``slm_course.exercises.ch01`` …) defines problems ``q1``, ``q2`` …
The learner writes a function or class in a tagged notebook cell and calls ``q1.check(their_obj)``:

- an untouched stub (it raises ``NotImplementedError``) is *not attempted*;
- when the learner's code raises, they see their own traceback (our frames removed);
- a wrong answer names the input, says what differs first (by position in words for nested
  results, see :mod:`slm_course.exercises.compare`), then shows the expected and actual values;
- an input edited in place, or a forbidden shortcut, fails the case with a sentence saying so
  (:mod:`slm_course.exercises.rules`);
- ``check`` (not the grader) warns when the answer reads a name that only a cell the grader does not
  run defines (:mod:`slm_course.exercises.scope`);
- ``check`` returns a :class:`CheckResult` the grader reads (status, cases passed of total, points).

Expected values are computed by :meth:`Problem.prepare` from the package's own implementation,
so a grader can take them before any learner code runs.
"""
from __future__ import annotations

import functools
import os
import traceback
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from slm_course.exercises.compare import _plain, compare_values, describe, float_reason  # noqa: F401
from slm_course.exercises.rules import RULE_ERRORS, call, call_for_new, count_calls, forbid  # noqa: F401 - re-exported for chapters

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
    ``parts`` names the positions of a nested result for the default comparison, one entry per
    level: ``("window", ("input", "target"), "position")`` -> "window 0, target, position 1"
    (see :mod:`slm_course.exercises.compare`). It is folded into ``compare`` when the case is made,
    so it survives every copy of the case (the grader's too).
    """

    label: str
    run: Callable[[Any], Any]
    expected: Any
    compare: Callable[[Any, Any], str | None] | None = None
    parts: Sequence[Any] | None = None

    def __post_init__(self) -> None:
        if self.parts is not None and self.compare is None:
            self.compare = functools.partial(compare_values, parts=tuple(self.parts))


def random_tensor(*shape: int, seed: int):
    """A standard-normal float32 tensor of ``shape``, the same for a given ``seed`` on every machine
    (its own generator: the global random state is left alone). Case inputs use it."""
    import torch

    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def show(value: Any) -> str:
    """A short input written whole for a case label: ``show(torch.tensor([0., 100.]))`` gives
    ``tensor([0.0, 100.0])``; lists and strings as Python writes them, floats rounded."""
    try:
        import torch

        if isinstance(value, torch.Tensor):
            return f"tensor({_plain(value.tolist(), [400])})"
    except ImportError:  # pragma: no cover
        pass
    return _plain(value, [400])


# --------------------------------------------------------------------------- messages

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
                prepared.append(replace(case, expected=expected))
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
            warning = self._scope_warning(obj)
            if warning:
                result.message = f"{result.message}\n{warning}"
        if not quiet:
            print(result.message)
        return result

    def _scope_warning(self, obj: Any) -> str | None:
        """The warning about names from outside the graded cells (see :mod:`slm_course.exercises.scope`)."""
        if obj is None:
            return None
        from slm_course.exercises import load_chapter, problems_of
        from slm_course.exercises.scope import scope_warning

        try:
            targets = [p.target for p in problems_of(load_chapter(self.chapter))]
        except Exception:  # noqa: BLE001 - a toy problem without a chapter module
            targets = [self.target]
        return scope_warning(obj, self.chapter, self.target, targets)

    def hint(self, level: int = 1) -> ShownText | None:
        """Show hint ``level``: 1 names the idea, 2 the one key step; ``solution()`` shows the code.

        Asking past the last level says so and shows the last hint (it never silently clamps).
        """
        if assessment_mode():
            print(f"{self.name}: hints are switched off during assessment (SLM_COURSE_ASSESSMENT is set).")
            return None
        if not self.hints:
            print(f"{self.name} has no hints.")
            return None
        count = len(self.hints)
        if isinstance(level, bool) or not isinstance(level, int) or level < 1:
            raise ValueError(f"hint level must be a whole number from 1 to {count}, got {level!r}")
        note = ""
        if level > count:
            note = (f"{self.name} has {count} hint level{'s' if count > 1 else ''}, not {level}: "
                    f"here is the last one; `{self.name}.solution()` shows the code.\n")
            level = count
        more = (f" (try hint({level + 1}) for more)" if level < count
                else f" (the last hint; `{self.name}.solution()` shows the code)")
        text = f"{note}Hint {level}/{count} for {self.name}{more}: {self.hints[level - 1]}"
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
                    if type(error).__name__ in RULE_ERRORS:  # an input edited in place, a forbidden call
                        first_failure = (f"`{case.label}`: {error}", f"On `{case.label}`: {error}.")
                    else:
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
                    f"On `{case.label}`: {reason}.\n  expected: {describe(case.expected)}\n"
                    f"  got:      {describe(actual)}",
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
