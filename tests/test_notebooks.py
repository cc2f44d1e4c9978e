"""House rules every stored notebook keeps (nbval then checks that the outputs reproduce).

Output that varies (timings, training logs, widgets) is marked with the cell TAG ``nbval-ignore-output``
(cell metadata, invisible to a learner), never with a ``# NBVAL_IGNORE_OUTPUT`` comment. Such a cell is
followed by a sentence (markdown) and then a code cell that asserts its result, and no code cell made
only of asserts appears without a sentence before it saying what it confirms.
"""
import nbformat
import pytest

from slm_course.paths import repo_root

ROOT = repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


IGNORE_TAG = "nbval-ignore-output"
COMMENT_MARKERS = ("# NBVAL_IGNORE_OUTPUT", "# NBVAL_SKIP", "# NBVAL_CHECK_OUTPUT", "# NBVAL_RAISES_EXCEPTION")


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def ignored(cell) -> bool:
    return IGNORE_TAG in cell.get("metadata", {}).get("tags", [])


def only_asserts(cell) -> bool:
    """A code cell whose statements are all ``assert`` (comments and continuation lines aside)."""
    lines = [line for line in cell.source.splitlines() if line.strip() and not line.strip().startswith("#")]
    return bool(lines) and all(line.startswith("assert") or line[:1] in " )]}" for line in lines)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_cell_reports_device_and_versions(path):
    assert "environment_report()" in code_cells(path)[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_nbval_markers_are_tags_not_comments(path):
    for index, cell in enumerate(nbformat.read(path, as_version=4).cells):
        for marker in COMMENT_MARKERS:
            assert marker not in cell.source, (
                f"{path.name} cell {index}: a learner reads {marker!r}; tag the cell instead "
                f'(metadata "tags": ["{IGNORE_TAG}"]) and remove the comment:\n{cell.source[:200]}')


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_ignored_outputs_are_followed_by_a_sentence_and_an_assertion(path):
    cells = nbformat.read(path, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type != "code" or not ignored(cell):
            continue
        following = [j for j in range(index + 1, len(cells)) if cells[j].cell_type == "code"]
        assert following, f"{path.name} cell {index}: an ignored-output cell needs an assertion cell after it"
        check = following[0]
        assert "assert" in cells[check].source, (
            f"{path.name}: the code cell after ignored cell {index} must assert its result:\n{cell.source[:200]}")
        before = cells[check - 1]
        assert before.cell_type == "markdown" and before.source.strip(), (
            f"{path.name} cell {check}: say in a sentence (a markdown cell) what this assertion confirms")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_bare_assert_cell_without_a_sentence(path):
    cells = nbformat.read(path, as_version=4).cells
    for index, cell in enumerate(cells):
        if cell.cell_type == "code" and only_asserts(cell):
            assert index > 0 and cells[index - 1].cell_type == "markdown", (
                f"{path.name} cell {index} holds only asserts: put a sentence before it saying what it confirms "
                f"and why it matters:\n{cell.source[:200]}")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_stored_outputs_are_complete_and_clean(path):
    nb = nbformat.read(path, as_version=4)
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"
    counts = [c.execution_count for c in nb.cells if c.cell_type == "code"]
    assert all(isinstance(n, int) for n in counts), f"{path.name}: run `make execute` to store outputs"
    assert counts == sorted(counts), f"{path.name}: cells were executed out of order"
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            assert output.output_type != "error", f"{path.name}: a stored output is an error"
            if output.output_type == "stream" and output.name == "stderr" and not ignored(cell):
                text = output.text
                assert "Warning" not in text and "it/s" not in text, f"{path.name}: stray warning or progress bar:\n{text[:300]}"
            if output.output_type in ("display_data", "execute_result"):
                assert "image/svg+xml" not in output.data, f"{path.name}: plots are PNG (nbval skips PNG)"


def test_the_rules_catch_what_they_forbid():
    """The helpers above flag a comment marker, an untagged check and a bare assert cell."""
    tagged = nbformat.v4.new_code_cell("train()", metadata={"tags": [IGNORE_TAG]})
    assert ignored(tagged) and not ignored(nbformat.v4.new_code_cell("# NBVAL_IGNORE_OUTPUT\ntrain()"))
    assert only_asserts(nbformat.v4.new_code_cell("# why\nassert x > 0\nassert (y <\n    1)"))
    assert not only_asserts(nbformat.v4.new_code_cell("x = 1\nassert x"))
