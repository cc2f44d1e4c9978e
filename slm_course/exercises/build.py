"""``slm-course build-exercises`` and ``slm-course start``: one solved source, learner copies from it.

``solutions/NN_name.ipynb`` is the single source. In each exercise cell (cell metadata
``{"slm_course": {"exercise": "qN"}}``) the code between ``### BEGIN SOLUTION`` and
``### END SOLUTION`` is the solution. ``build_exercises`` writes ``exercises/NN_name.ipynb`` with
those regions replaced by a ``raise NotImplementedError`` stub and all outputs cleared, stamps the
chapter in both notebooks' metadata, and writes the solution sources to
``slm_course/exercises/data/chNN.json`` (what ``qN.solution()`` shows).
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

import slm_course
from slm_course.paths import PACKAGE_DIR, atomic_write_text, repo_root


BEGIN = "### BEGIN SOLUTION"
END = "### END SOLUTION"
STUB = 'raise NotImplementedError("Replace this line with your code.")'
DATA_DIR = PACKAGE_DIR / "exercises" / "data"
_NAME = re.compile(r"^(\d\d)_[A-Za-z0-9_]+\.ipynb$")


def chapter_of(path: Path) -> str:
    """The two-digit chapter number in a notebook's file name (``01_data_preparation.ipynb`` -> ``"01"``)."""
    match = _NAME.match(path.name)
    if not match:
        raise ValueError(f"{path.name}: expected a notebook named like 01_topic.ipynb (two digits, then a name).")
    return match.group(1)


def exercise_tag(cell) -> str | None:
    """The exercise name (``"q1"``) a cell is tagged with, or ``None``."""
    return (cell.get("metadata", {}).get("slm_course") or {}).get("exercise")


def strip_solution(source: str, where: str = "cell") -> str:
    """Replace each solution region of ``source`` by a stub raising ``NotImplementedError``."""
    out: list[str] = []
    inside = False
    for line in source.splitlines():
        stripped = line.strip()
        if stripped == BEGIN:
            if inside:
                raise ValueError(f"{where}: a second {BEGIN} before {END}.")
            inside = True
            indent = line[: len(line) - len(line.lstrip())]
            out.append(indent + STUB)
        elif stripped == END:
            if not inside:
                raise ValueError(f"{where}: {END} without {BEGIN}.")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise ValueError(f"{where}: {BEGIN} is never closed by {END}.")
    return "\n".join(out)


def solution_region(source: str) -> str:
    """The cell's source with the solution markers removed (what ``solution()`` shows)."""
    return "\n".join(line for line in source.splitlines() if line.strip() not in (BEGIN, END))


def _stamp(nb, chapter: str, kind: str) -> None:
    nb.metadata["slm_course"] = {"chapter": chapter, "kind": kind, "course_version": slm_course.__version__}


def render(solution_path: Path) -> tuple[str, str, str]:
    """Text of (the stamped solutions notebook, the exercises notebook, the solutions JSON)."""
    chapter = chapter_of(solution_path)
    nb = nbformat.read(solution_path, as_version=4)
    _stamp(nb, chapter, "solutions")
    exercises = nbformat.from_dict(json.loads(json.dumps(nb)))
    _stamp(exercises, chapter, "exercises")
    solutions: dict[str, dict] = {}
    for cell in exercises.cells:
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        name = exercise_tag(cell)
        if name is None:
            continue
        if cell.cell_type != "code" or BEGIN not in cell.source:
            raise ValueError(f"{solution_path.name}: exercise cell {name} must be a code cell with a {BEGIN} region.")
        if name in solutions:
            raise ValueError(f"{solution_path.name}: two cells are tagged as exercise {name}.")
        solutions[name] = {"source": solution_region(cell.source)}
        cell.source = strip_solution(cell.source, f"{solution_path.name} {name}")
    data = {"chapter": chapter, "notebook": solution_path.name, "solutions": solutions}
    return (
        nbformat.writes(nb) + "\n",
        nbformat.writes(exercises) + "\n",
        json.dumps(data, indent=1, sort_keys=True, ensure_ascii=False) + "\n",
    )


def _targets(root: Path) -> dict[Path, str]:
    """Every file build-exercises writes, with its intended text."""
    targets: dict[Path, str] = {}
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.ipynb")):
        solved, exercise, data = render(path)
        targets[path] = solved
        targets[root / "exercises" / path.name] = exercise
        targets[root / DATA_DIR.relative_to(PACKAGE_DIR.parent) / f"ch{chapter_of(path)}.json"] = data
    return targets


def build_exercises(root: Path | None = None) -> list[Path]:
    """Write ``exercises/`` and the solution data from ``solutions/``; return the files that changed."""
    root = root or repo_root()
    changed = []
    for path, text in _targets(root).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            atomic_write_text(path, text)
            changed.append(path)
    return changed


def stale_files(root: Path | None = None) -> list[Path]:
    """Files that ``build-exercises`` would change (empty when ``exercises/`` is up to date)."""
    root = root or repo_root()
    stale = [p for p, text in _targets(root).items() if not p.exists() or p.read_text(encoding="utf-8") != text]
    known = {p.name for p in (root / "solutions").glob("[0-9][0-9]_*.ipynb")}
    stale += [p for p in (root / "exercises").glob("*.ipynb") if p.name not in known]
    return stale


def load_solution_source(chapter: str, name: str) -> str:
    """The solution code of exercise ``name`` of ``chapter``, from the generated package data."""
    path = DATA_DIR / f"ch{chapter}.json"
    if not path.is_file():
        raise FileNotFoundError(f"No solution data for chapter {chapter} ({path}). Run `slm-course build-exercises`.")
    solutions = json.loads(path.read_text(encoding="utf-8"))["solutions"]
    if name not in solutions:
        raise KeyError(f"Chapter {chapter} has no exercise {name!r}; it has {', '.join(sorted(solutions))}.")
    return solutions[name]["source"]


def start(chapter: str, *, force: bool = False, open_lab: bool = True, root: Path | None = None) -> Path:
    """Copy ``exercises/NN_*.ipynb`` into the git-ignored ``work/`` folder and (optionally) open it.

    An existing copy is kept (the learner's work) unless ``force``, which first saves it as ``.bak``.
    """
    root = root or repo_root()
    if not re.fullmatch(r"\d{1,2}", str(chapter).strip()):
        raise ValueError(f"Expected a chapter number such as 01 or 3, got {chapter!r}.")
    chapter = f"{int(chapter):02d}"
    found = sorted((root / "exercises").glob(f"{chapter}_*.ipynb"))
    if not found:
        available = ", ".join(sorted(p.name[:2] for p in (root / "exercises").glob("[0-9][0-9]_*.ipynb"))) or "none"
        raise ValueError(f"There is no exercise notebook for chapter {chapter!r}; chapters with exercises: {available}.")
    source = found[0]
    target = root / "work" / source.name
    if target.exists():
        if not force:
            print(f"{target.relative_to(root)} already exists: opening your copy. "
                  f"(Pass --force to start over; your copy will be saved as {target.name}.bak.)")
        else:
            shutil.copy2(target, target.with_name(target.name + ".bak"))
            shutil.copyfile(source, target)
            print(f"Started over: {target.relative_to(root)} (your previous copy is in {target.name}.bak).")
    else:
        target.parent.mkdir(exist_ok=True)
        shutil.copyfile(source, target)
        print(f"Copied {source.relative_to(root)} to {target.relative_to(root)}.")
    if open_lab:
        cmd = [sys.executable, "-m", "jupyter", "lab", str(target)]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            cmd.append("--allow-root")
        subprocess.run(cmd, cwd=root, check=False)
    return target
