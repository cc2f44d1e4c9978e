"""Putting the learner's exercise cells into the pristine exercise notebook, as nbgrader does.

Only code cells tagged ``{"slm_course": {"exercise": "qN"}}`` are taken from the submission; every
other cell (setup, the ``qN.check(...)`` cells, prose) comes from the course's own
``exercises/NN_*.ipynb``. So learner code runs only where the learner was meant to write it.
Each kept cell is marked ``metadata.slm_grade = {kind, problem}`` for the runner.

:func:`suspicious` reads each learner cell's source (never runs it) for reaching into the grader's
or the checks' internals (``q1.cases``, ``gc``, frames, ``sys.modules``, ``globals()``, …) so the
row can tell the instructor to read that cell; it never changes a score by itself.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from slm_course.exercises.build import exercise_tag
from slm_course.paths import repo_root

MAX_CELL_CHARS = 200_000


def pristine_notebook(chapter: str, root: Path | None = None) -> dict:
    """The course's exercise notebook for ``chapter`` as a dict."""
    root = root or repo_root()
    found = sorted((root / "exercises").glob(f"{chapter}_*.ipynb"))
    if not found:
        raise ValueError(f"Chapter {chapter} has no exercise notebook in {root / 'exercises'}.")
    return json.loads(found[0].read_text(encoding="utf-8"))


# Modules and attributes an exercise has no business touching: the grader's and the checks'
# internals, and the tools that reach objects without being handed them.
_MODULES = {"gc", "inspect", "builtins", "ctypes", "importlib", "slm_course.exercises", "slm_course.grading",
            "IPython", "ipykernel", "torch.serialization"}
_ATTRIBUTES = {"modules", "cases", "prepare", "_prepared", "_evaluate", "grade", "_getframe", "currentframe",
               "f_back", "f_globals", "f_locals", "f_code", "gi_frame", "tb_frame", "__closure__", "__globals__",
               "__code__", "__builtins__", "__subclasses__", "get_objects", "get_referrers", "user_ns", "serialization"}
_CALLED_OK = {"modules"}  # attributes that are harmless when called: nn.Module.modules()
_CALLS = {"globals", "vars", "locals", "get_ipython", "exec", "eval", "compile", "__import__"}
_NAMES = {"__builtins__", "__builtin__", "_getframe"}


def _module_touched(name: str) -> bool:
    return any(name == m or name.startswith(m + ".") for m in _MODULES) or name.startswith("slm_course.grading")


def suspicious(source: str) -> list[str]:
    """What in ``source`` reaches into grading or check internals, as short code snippets (static, by AST)."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError):
        return []
    found: list[str] = []
    # `sys.modules` is read, never called; `model.modules()` (PyTorch's walk over layers) is called.
    called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [f"import {a.name}" for a in node.names if _module_touched(a.name)]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = {a.name for a in node.names}
            if _module_touched(node.module) or (node.module == "slm_course" and names & {"exercises", "grading"}):
                found.append(f"from {node.module} import {', '.join(sorted(names))}")
        elif isinstance(node, ast.Attribute) and node.attr in _ATTRIBUTES:
            if not (node.attr in _CALLED_OK and id(node) in called):
                found.append(_snippet(node))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS:
            first = node.args[0] if node.args else None
            if node.func.id == "__import__" and isinstance(first, ast.Constant) and isinstance(first.value, str):
                if _module_touched(first.value):  # __import__("socket") is not the grader's business
                    found.append(f"__import__({first.value!r})")
            else:
                found.append(f"{node.func.id}()")
        elif isinstance(node, ast.Name) and node.id in _NAMES:
            found.append(node.id)
    return list(dict.fromkeys(found))


def _snippet(node: ast.AST) -> str:
    try:
        text = ast.unparse(node)
    except Exception:  # noqa: BLE001
        text = getattr(node, "attr", "?")
    return text if len(text) <= 40 else text[:37] + "..."


def suspicious_note(problem: str, source: str) -> list[str]:
    """The row note for a cell that reaches into grading internals (empty when nothing is found)."""
    found = suspicious(source)
    if not found:
        return []
    shown = ", ".join(f"`{f}`" for f in found[:6]) + (f" and {len(found) - 6} more" if len(found) > 6 else "")
    return [f"suspicious: exercise {problem} touches {shown}; review by hand"]


def _source(cell: dict) -> str:
    source = cell.get("source", "")
    return "".join(s for s in source if isinstance(s, str)) if isinstance(source, list) else str(source)


def transplant(pristine: dict, submission: dict) -> tuple[dict, list[str]]:
    """The notebook to run (pristine cells, the learner's exercise cells) and notes on what was done."""
    notes: list[str] = []
    learner: dict[str, list[dict]] = {}
    for cell in submission.get("cells", []):
        if isinstance(cell, dict) and cell.get("cell_type") == "code" and isinstance(cell.get("metadata"), dict):
            name = exercise_tag(cell) if isinstance(cell["metadata"].get("slm_course"), dict) else None
            if isinstance(name, str):
                learner.setdefault(name, []).append(cell)
    cells = []
    for cell in pristine["cells"]:
        if cell.get("cell_type") != "code":
            continue
        name = exercise_tag(cell)
        kept = {"cell_type": "code", "id": cell.get("id"), "source": _source(cell), "outputs": [],
                "execution_count": None, "metadata": {"slm_grade": {"kind": "course", "problem": ""}}}
        if name:
            candidates = learner.get(name, [])
            chosen = next((c for c in candidates if c.get("id") == cell.get("id")), candidates[0] if candidates else None)
            if chosen is None:
                notes.append(f"no cell tagged {name}: the course's stub was used")
            else:
                source = _source(chosen)
                if len(source) > MAX_CELL_CHARS:
                    notes.append(f"{name}: the cell is longer than {MAX_CELL_CHARS} characters; the stub was used")
                else:
                    kept["source"] = source
                    notes += suspicious_note(name, source)
                if len(candidates) > 1:
                    notes.append(f"{len(candidates)} cells tagged {name}: graded the one with the course's cell id or the first")
            kept["metadata"]["slm_grade"] = {"kind": "exercise", "problem": name}
        cells.append(kept)
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": pristine.get("metadata", {}), "cells": cells}
    return notebook, notes


def stub_exercises(run_notebook: dict, pristine: dict, names: set[str]) -> dict:
    """``run_notebook`` with the cells of the exercises ``names`` replaced by the course's stub cells."""
    stubs = {exercise_tag(c): _source(c) for c in pristine["cells"]
             if c.get("cell_type") == "code" and exercise_tag(c)}
    cells = []
    for cell in run_notebook["cells"]:
        problem = cell.get("metadata", {}).get("slm_grade", {}).get("problem")
        cells.append({**cell, "source": stubs[problem]} if problem in names and problem in stubs else cell)
    return {**run_notebook, "cells": cells}
