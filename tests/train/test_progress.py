"""progress_bar: a live bar that a stored notebook shows finished (not frozen at 0 %), plain tqdm elsewhere."""
import json
import os

import pytest

from slm_course.train.progress import progress_bar


def test_outside_a_notebook_it_is_plain_tqdm_and_counts():
    with progress_bar(3, desc="demo", enabled=True) as bar:
        for _ in range(3):
            bar.update(1)
    assert bar.n == 3 and bar.total == 3
    with progress_bar(3, desc="off", enabled=False) as off:
        off.update(3)
    assert off.disable


def test_a_stored_notebook_keeps_the_finished_bar():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = ("from slm_course.train.progress import progress_bar\n"
              "with progress_bar(4, desc='demo', unit='run') as bar:\n"
              "    for _ in range(4):\n"
              "        bar.update(1)\n")
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    env_path = os.environ.get("PYTHONPATH", "")
    nbclient.NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": os.getcwd()}}).execute(env={**os.environ, "PYTHONPATH": env_path})
    stored = json.dumps(notebook.cells[0].outputs)
    assert "4/4" in stored and "100%" in stored
    assert "0/4" not in stored
