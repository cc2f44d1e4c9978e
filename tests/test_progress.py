"""``progress_bar``: text in a terminal; in a notebook a widget whose stored text is the finished bar."""
from __future__ import annotations

import nbformat
import pytest
from nbclient import NotebookClient

from slm_course.progress import progress_bar


def test_outside_a_notebook_it_is_tqdm_text(capsys):
    with progress_bar(total=3, desc="steps") as bar:
        for _ in range(3):
            bar.update(1)
    assert "steps: 100%" in capsys.readouterr().err
    assert list(progress_bar(range(4), disable=True)) == [0, 1, 2, 3]


@pytest.mark.slow
def test_in_a_notebook_the_stored_output_is_the_finished_bar(tmp_path):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell("from slm_course.progress import progress_bar\n"
                                  "for i in progress_bar(range(40), desc='train'):\n    pass"),
        nbformat.v4.new_code_cell("with progress_bar(total=5, desc='manual') as bar:\n"
                                  "    for _ in range(5):\n        bar.update(1)"),
    ]
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    texts = ["".join(o["data"]["text/plain"]) for cell in notebook.cells for o in cell.outputs if "data" in o]
    assert len(texts) == 2
    assert texts[0].startswith("train: 100%") and "40/40" in texts[0]
    assert texts[1].startswith("manual: 100%") and "5/5" in texts[1]
    assert all("widget-view" in "".join(o["data"]) for cell in notebook.cells for o in cell.outputs if "data" in o)
