"""build-exercises, the staleness check and `slm-course start`, on a toy checkout in tmp_path."""
import json
import subprocess
import sys

import nbformat
import pytest

from slm_course.exercises.build import (
    BEGIN,
    END,
    STUB,
    build_exercises,
    stale_files,
    start,
    strip_solution,
)
from slm_course.paths import repo_root

SOLVED = f"""def double(x):
    \"\"\"Twice x.\"\"\"
    {BEGIN}
    y = x + x
    return y
    {END}
"""


def make_checkout(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[project]\nname='toy'\n")
    (tmp_path / "solutions").mkdir()
    (tmp_path / "exercises").mkdir()
    nb = nbformat.v4.new_notebook()
    setup = nbformat.v4.new_code_cell("import math")
    setup.metadata["slm_course"] = {"setup": True}
    exercise = nbformat.v4.new_code_cell(SOLVED)
    exercise.metadata["slm_course"] = {"exercise": "q1"}
    exercise.outputs = [nbformat.v4.new_output("stream", name="stdout", text="solved output\n")]
    exercise.execution_count = 3
    nb.cells = [nbformat.v4.new_markdown_cell("# Toy"), setup, exercise, nbformat.v4.new_code_cell("q1.check(double)")]
    nbformat.write(nb, tmp_path / "solutions" / "99_toy.ipynb")
    return tmp_path


def test_strip_solution_keeps_signature_and_indent():
    stripped = strip_solution(SOLVED)
    assert stripped.splitlines() == ["def double(x):", '    """Twice x."""', "    " + STUB]


@pytest.mark.parametrize("bad", [f"{BEGIN}\nx", f"x\n{END}", f"{BEGIN}\n{BEGIN}\n{END}"])
def test_unbalanced_markers_are_errors(bad):
    with pytest.raises(ValueError):
        strip_solution(bad)


def test_build_writes_stub_notebook_and_solution_data(tmp_path):
    root = make_checkout(tmp_path)
    assert stale_files(root)
    changed = build_exercises(root)
    assert len(changed) == 3 and stale_files(root) == []
    exercise_nb = nbformat.read(root / "exercises" / "99_toy.ipynb", as_version=4)
    solved_nb = nbformat.read(root / "solutions" / "99_toy.ipynb", as_version=4)
    assert exercise_nb.metadata["slm_course"]["chapter"] == "99"
    assert exercise_nb.metadata["slm_course"]["kind"] == "exercises"
    assert solved_nb.metadata["slm_course"]["kind"] == "solutions"
    cell = exercise_nb.cells[2]
    assert STUB in cell.source and "x + x" not in cell.source
    assert cell.outputs == [] and cell.execution_count is None
    assert [c.id for c in exercise_nb.cells] == [c.id for c in solved_nb.cells]
    assert solved_nb.cells[2].outputs  # the solutions keep their outputs
    data = json.loads((root / "slm_course" / "exercises" / "data" / "ch99.json").read_text())
    assert "y = x + x" in data["solutions"]["q1"]["source"] and BEGIN not in data["solutions"]["q1"]["source"]
    # the stub really is "not attempted" material
    namespace = {}
    exec(cell.source, namespace)
    with pytest.raises(NotImplementedError):
        namespace["double"](1)


def test_editing_a_solution_makes_exercises_stale(tmp_path):
    root = make_checkout(tmp_path)
    build_exercises(root)
    path = root / "solutions" / "99_toy.ipynb"
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].source = "# Toy, revised"
    nbformat.write(nb, path)
    assert root / "exercises" / "99_toy.ipynb" in stale_files(root)
    (root / "exercises" / "42_orphan.ipynb").write_text("{}")
    build_exercises(root)
    assert stale_files(root) == [root / "exercises" / "42_orphan.ipynb"]


def test_start_copies_once_and_keeps_learner_work(tmp_path, capsys):
    root = make_checkout(tmp_path)
    build_exercises(root)
    target = start("99", open_lab=False, root=root)
    assert target == root / "work" / "99_toy.ipynb"
    target.write_text("learner work")
    start("99", open_lab=False, root=root)
    assert target.read_text() == "learner work" and "already exists" in capsys.readouterr().out
    start("99", force=True, open_lab=False, root=root)
    assert (root / "work" / "99_toy.ipynb.bak").read_text() == "learner work"
    assert target.read_text() == (root / "exercises" / "99_toy.ipynb").read_text()
    with pytest.raises(ValueError, match="no exercise notebook for chapter '07'"):
        start("7", open_lab=False, root=root)


def test_repository_exercises_are_not_stale():
    stale = stale_files(repo_root())
    assert stale == [], f"run `slm-course build-exercises`: stale {[str(p) for p in stale]}"


def test_every_exercise_notebook_has_a_check_module():
    from slm_course.exercises import load_chapter, problems_of

    for path in sorted((repo_root() / "solutions").glob("[0-9][0-9]_*.ipynb")):
        module = load_chapter(path.name[:2])
        nb = nbformat.read(path, as_version=4)
        tagged = {(c.metadata.get("slm_course") or {}).get("exercise") for c in nb.cells} - {None}
        names = {p.name for p in problems_of(module)}
        assert tagged == names, f"{path.name}: cells tagged {sorted(tagged)} but checks for {sorted(names)}"
        assert len(names) >= 3


def test_cli_check_reports_stale(tmp_path):
    out = subprocess.run([sys.executable, "-m", "slm_course.cli", "build-exercises", "--check"],
                         capture_output=True, text=True, cwd=repo_root())
    assert out.returncode == 0, out.stdout + out.stderr


@pytest.mark.parametrize("bad", ["../evil", "1a", "", "100", "*"])
def test_start_takes_only_a_chapter_number(tmp_path, bad):
    root = make_checkout(tmp_path)
    build_exercises(root)
    with pytest.raises(ValueError, match="Expected a chapter number"):
        start(bad, open_lab=False, root=root)
    assert not (root / "work").exists()
