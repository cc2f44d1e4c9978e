"""Helpers for the exercise-check tests (``tests/exercises/``): the solved and stub objects.

Exercise cells hold one function or class and import what they need; cells tagged
``{"slm_course": {"setup": true}}`` (imports, small fixtures) run first.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import nbformat

from slm_course.exercises.build import exercise_tag, strip_solution
from slm_course.exercises.core import CORRECT, INCORRECT, NOT_ATTEMPTED, Problem
from slm_course.paths import repo_root


def _notebook(chapter: str) -> Path:
    found = sorted((repo_root() / "solutions").glob(f"{chapter}_*.ipynb"))
    if not found:
        raise FileNotFoundError(f"No solutions notebook for chapter {chapter}.")
    return found[0]


def notebook_objects(chapter: str, *, stub: bool = False) -> dict[str, Any]:
    """Execute the setup and exercise cells of chapter's solutions notebook; return their namespace.

    With ``stub=True`` the solution regions are first replaced by the learner's stub.
    """
    nb = nbformat.read(_notebook(chapter), as_version=4)
    namespace: dict[str, Any] = {"__name__": f"exercise_cells_{chapter}"}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("slm_course") or {}
        if cell.cell_type != "code" or not (meta.get("setup") or exercise_tag(cell)):
            continue
        source = strip_solution(cell.source) if stub and exercise_tag(cell) else cell.source
        source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
        exec(compile(source, f"<{chapter} cell {cell.get('id', '?')}>", "exec"), namespace)
    return namespace


def assert_check_behaviour(problem: Problem, solved: Any, stub: Any, wrong: list[Any]) -> None:
    """The contract every check honours: stub -> not attempted, wrong -> incorrect, solution -> correct."""
    assert len(wrong) >= 2, f"{problem.name}: test at least two known-wrong answers"
    result = problem.check(stub, quiet=True)
    assert result.status == NOT_ATTEMPTED, f"{problem.name} on the stub: {result.message}"
    for index, answer in enumerate(wrong):
        result = problem.check(answer, quiet=True)
        assert result.status == INCORRECT, f"{problem.name} on wrong answer {index}: {result.message}"
        assert result.points < problem.points
    result = problem.check(solved, quiet=True)
    assert result.status == CORRECT, f"{problem.name} on the solution: {result.message}"
    assert result.points == problem.points
