"""Warn, in the notebook, when an answer needs a name the grader will not have.

The grader (:mod:`slm_course.grading`) runs a fresh copy of the chapter's notebook with only the
learner's *exercise cells* put into it, after the course's own setup cell. A helper, constant or
import that lives in any other cell exists in the learner's kernel but not there, so the answer
that passes ``check`` gets 0 from the grader. :func:`outside_names` finds those names first:

- the global names the function's code reads (:func:`slm_course.exercises.rules.global_names`);
- minus builtins, the names the course's setup cells define (read from ``exercises/NN_*.ipynb``),
  the names defined at the top level of any cell that defines one of the chapter's exercise
  targets (IPython keeps every executed cell's source in :mod:`linecache`), and functions or
  classes whose code was written in such a cell.

It looks only at functions defined in a notebook cell (module ``__main__`` with cell source in
``linecache``); anywhere else (tests, scripts) it stays silent.
"""
from __future__ import annotations

import ast
import builtins
import functools
import inspect
import linecache
import os
from typing import Any, Iterable

from slm_course.exercises.rules import code_objects, global_names, globals_of

_CELL_STATEMENTS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def defined_names(source: str) -> set[str]:
    """Names a cell's source binds at its top level (imports, assignments, defs, classes, loops)."""
    source = "\n".join(line for line in source.splitlines() if not line.lstrip().startswith(("%", "!")))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    stack: list[ast.AST] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
            continue
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        stack.extend(ast.iter_child_nodes(node))
    return names


@functools.lru_cache(maxsize=32)
def setup_names(chapter: str) -> frozenset[str] | None:
    """Names the course's setup cells of ``chapter`` define, or ``None`` when its notebook is not found."""
    try:
        import nbformat

        from slm_course.paths import repo_root

        found = sorted((repo_root() / "exercises").glob(f"{chapter}_*.ipynb"))
        if not found:
            return None
        nb = nbformat.read(found[0], as_version=4)
    except Exception:  # noqa: BLE001 - no checkout, unreadable notebook: no warning rather than a crash
        return None
    names: set[str] = set()
    for cell in nb.cells:
        if cell.cell_type == "code" and (cell.get("metadata", {}).get("slm_course") or {}).get("setup"):
            names |= defined_names(cell.source)
    return frozenset(names)


def _cell_file(obj: Any) -> str | None:
    for code in code_objects(obj):
        return code.co_filename
    return None


def _cell_source(filename: str) -> str | None:
    lines = linecache.getlines(filename)
    return "".join(lines) if lines else None


def _exercise_cells(folder: str, targets: Iterable[str]) -> dict[str, set[str]]:
    """Executed cells (file name -> top-level names) in ``folder`` that define an exercise target."""
    targets = set(targets)
    cells = {}
    for filename in list(linecache.cache):
        if os.path.dirname(filename) != folder:
            continue
        source = _cell_source(filename)
        names = defined_names(source) if source else set()
        if names & targets:
            cells[filename] = names
    return cells


def outside_names(obj: Any, chapter: str, targets: Iterable[str]) -> list[str]:
    """Global names ``obj`` reads that come from outside the cells the grader runs (see the module)."""
    if getattr(obj, "__module__", None) != "__main__":
        return []
    own_file = _cell_file(obj)
    own_source = _cell_source(own_file) if own_file else None
    setup = setup_names(chapter)
    if own_source is None or setup is None:
        return []
    targets = list(targets)
    cells = _exercise_cells(os.path.dirname(own_file), targets)
    cells.setdefault(own_file, defined_names(own_source))
    allowed = set(setup) | set(targets) | set().union(*cells.values())
    namespace = globals_of(obj)
    names = global_names(obj)
    if inspect.isclass(obj):
        names += [b.__name__ for b in obj.__bases__ if getattr(b, "__module__", None) == "__main__"]
    outside = []
    for name in names:
        if name in allowed or name not in namespace:
            continue  # a builtin, or a name not defined at all (the learner sees that NameError)
        value = namespace[name]
        if (inspect.isfunction(value) or inspect.isclass(value)) and _cell_file(value) in cells:
            continue  # written in an exercise cell
        if name in vars(builtins) and value is vars(builtins)[name]:
            continue
        outside.append(name)
    return outside


def scope_warning(obj: Any, chapter: str, target: str, targets: Iterable[str]) -> str | None:
    """The warning ``check`` prints when ``obj`` relies on names from outside the graded cells."""
    try:
        names = outside_names(obj, chapter, targets)
    except Exception:  # noqa: BLE001 - the warning is a courtesy; never let it break a check
        return None
    if not names:
        return None
    listed = ", ".join(f"`{n}`" for n in names)
    return (f"⚠ Your `{target}` uses {listed}, defined outside the graded cells (this exercise cell, the other "
            "exercise cells and the setup cell). The grader runs only those cells, so there "
            f"{'it does' if len(names) == 1 else 'they do'} not exist and this exercise would get 0: "
            "move what it needs into the exercise cell.")
