"""Putting the learner's exercise cells into the pristine exercise notebook, as nbgrader does.

Only code cells tagged ``{"slm_course": {"exercise": "qN"}}`` are taken from the submission; every
other cell (setup, the ``qN.check(...)`` cells, prose) comes from the course's own
``exercises/NN_*.ipynb``. So learner code runs only where the learner was meant to write it.
Each kept cell is marked ``metadata.slm_grade = {kind, problem}`` for the runner.
"""
from __future__ import annotations

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
                if len(candidates) > 1:
                    notes.append(f"{len(candidates)} cells tagged {name}: graded the one with the course's cell id or the first")
            kept["metadata"]["slm_grade"] = {"kind": "exercise", "problem": name}
        cells.append(kept)
    notebook = {"nbformat": 4, "nbformat_minor": 5, "metadata": pristine.get("metadata", {}), "cells": cells}
    return notebook, notes
