"""House rules every stored notebook keeps (nbval then checks that the outputs reproduce)."""
import nbformat
import pytest

from slm_course.paths import repo_root

ROOT = repo_root()
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "solutions").glob("*.ipynb"))


def code_cells(path):
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_first_cell_reports_device_and_versions(path):
    assert "environment_report()" in code_cells(path)[0].source


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_ignored_outputs_are_followed_by_an_assertion(path):
    cells = code_cells(path)
    for index, cell in enumerate(cells):
        if cell.source.lstrip().startswith("# NBVAL_IGNORE_OUTPUT"):
            assert index + 1 < len(cells) and "assert" in cells[index + 1].source, (
                f"{path.name}: the cell after ignored cell {index} must assert its result:\n{cell.source[:200]}"
            )


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
            ignored = cell.source.lstrip().startswith("# NBVAL_IGNORE_OUTPUT")
            if output.output_type == "stream" and output.name == "stderr" and not ignored:
                text = output.text
                assert "Warning" not in text and "it/s" not in text, f"{path.name}: stray warning or progress bar:\n{text[:300]}"
            if output.output_type in ("display_data", "execute_result"):
                assert "image/svg+xml" not in output.data, f"{path.name}: plots are PNG (nbval skips PNG)"
