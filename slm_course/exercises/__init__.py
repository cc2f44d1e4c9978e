"""Graded exercises: ``from slm_course.exercises.ch01 import q1`` then ``q1.check(my_function)``.

See :mod:`slm_course.exercises.core` for how checks answer and :mod:`slm_course.exercises.build`
for how ``exercises/`` is written from ``solutions/``.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from slm_course.exercises.core import (
    CORRECT,
    INCORRECT,
    NOT_ATTEMPTED,
    Case,
    CheckResult,
    Problem,
    call,
    compare_values,
    describe,
    forbid,
    problems_of,
    random_tensor,
    show,
)

__all__ = [
    "CORRECT", "INCORRECT", "NOT_ATTEMPTED", "Case", "CheckResult", "Problem", "call",
    "compare_values", "describe", "forbid", "problems_of", "random_tensor", "show", "load_chapter",
]


def load_chapter(chapter: str | int) -> ModuleType:
    """The exercise module of a chapter (``load_chapter("01")`` -> ``slm_course.exercises.ch01``)."""
    number = f"{int(chapter):02d}"
    try:
        return importlib.import_module(f"slm_course.exercises.ch{number}")
    except ModuleNotFoundError as error:
        if error.name == f"slm_course.exercises.ch{number}":
            raise ValueError(f"Chapter {number} has no exercises (no module slm_course.exercises.ch{number}).") from None
        raise
