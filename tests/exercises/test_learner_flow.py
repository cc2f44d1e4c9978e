"""A learner's copy answers back: "not attempted" on the stub, "correct" once q1 is written.

Runs the exercise notebook in a real kernel, in a temporary folder, up to q1's check cell.
"""
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from slm_course.exercises import load_chapter
from slm_course.exercises.build import exercise_tag, load_solution_source
from slm_course.paths import repo_root

EXERCISES = sorted((repo_root() / "exercises").glob("[0-9][0-9]_*.ipynb"))


def run_until_first_check(path, tmp_path, replace_q1_with=None) -> str:
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if exercise_tag(c) == "q1")
    check = next(i for i in range(index + 1, len(nb.cells)) if "q1.check(" in nb.cells[i].source)
    if replace_q1_with is not None:
        nb.cells[index].source = replace_q1_with
    nb.cells = nb.cells[: check + 1]
    NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=False,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    return "".join(o.get("text", "") for o in nb.cells[check].outputs if o.output_type == "stream")


@pytest.mark.slow
@pytest.mark.parametrize("path", EXERCISES, ids=lambda p: p.name)
def test_q1_not_attempted_then_correct(path, tmp_path):
    learner_copy = tmp_path / path.name  # what `slm-course start` makes
    shutil.copyfile(path, learner_copy)
    before = run_until_first_check(learner_copy, tmp_path)
    assert "q1: not attempted" in before
    chapter = path.name[:2]
    after = run_until_first_check(learner_copy, tmp_path, load_solution_source(chapter, "q1"))
    assert "✓ q1 correct" in after, after
    assert load_chapter(chapter).q1.target in load_solution_source(chapter, "q1")


@pytest.mark.slow
def test_check_warns_in_a_real_kernel_about_a_helper_from_another_cell(tmp_path):
    path = next(p for p in EXERCISES if p.name.startswith("00_"))
    nb = nbformat.read(path, as_version=4)
    index = next(i for i, c in enumerate(nb.cells) if exercise_tag(c) == "q1")
    nb.cells.insert(index, nbformat.v4.new_code_cell("def lower_words(text):\n    return text.lower().split()"))
    learner_copy = tmp_path / path.name
    nbformat.write(nb, learner_copy)
    uses_helper = ("def count_words(text):\n    counts = {}\n    for word in lower_words(text):\n"
                   "        counts[word] = counts.get(word, 0) + 1\n    return counts")
    out = run_until_first_check(learner_copy, tmp_path, uses_helper)
    assert "✓ q1 correct" in out and "⚠ Your `count_words` uses `lower_words`" in out, out
    inside = "def lower_words(text):\n    return text.lower().split()\n\n" + uses_helper
    out = run_until_first_check(learner_copy, tmp_path, inside)
    assert "✓ q1 correct" in out and "⚠" not in out, out
