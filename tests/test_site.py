"""How the course site's build treats links and notebooks, on synthetic inputs (no build, no browser).

``docs/site_links.py`` points every link into the repository at the site's page for that file, turns
backticked paths of pages into links, and makes links to repository files with no page plain code;
``docs/site_notebooks.py`` replaces live widgets, hides inputs and drops cell metadata. The built
site itself is checked in Chromium by ``tests/test_site_browser.py``.
"""
from __future__ import annotations

import sys

import nbformat
import pytest

from slm_course.paths import repo_root

ROOT = repo_root()
sys.path.insert(0, str(ROOT / "docs"))
from build_site import site_files  # noqa: E402
from site_links import resolve, rewrite  # noqa: E402
from site_notebooks import LIVE_NOTE, WIDGET_STATE, WIDGET_VIEW, static_notebook  # noqa: E402

FILES = {"README.md": "index.md", "docs/guide.md": "guide.md", "docs/images/map.png": "images/map.png",
         "notebooks/01_intro.ipynb": "chapters/01_intro.ipynb", "exercises/01_intro.ipynb": "exercises/01_intro.ipynb"}
IN_REPO = {"benchmarks/speed.py", "benchmarks/README.md", "tests/test_x.py", "solutions"}


def _rewrite(text: str, source: str = "README.md") -> str:
    return rewrite(text, source, FILES[source], FILES, IN_REPO.__contains__)


def test_resolve_follows_the_repository_layout():
    assert resolve("notebooks/01_intro.ipynb#top", "README.md") == "notebooks/01_intro.ipynb"
    assert resolve("../exercises/01_intro.ipynb", "notebooks/01_intro.ipynb") == "exercises/01_intro.ipynb"
    assert resolve("images/map.png", "docs/guide.md") == "docs/images/map.png"
    assert resolve("/docs/guide.md", "notebooks/01_intro.ipynb") == "docs/guide.md"
    for outside in ("https://example.org/a.md", "mailto:a@b.c", "#anchor", "../../up.md"):
        assert resolve(outside, "docs/guide.md") is None, outside


@pytest.mark.parametrize("written, expected", [
    ("[`01_intro`](notebooks/01_intro.ipynb)", "[`01_intro`](chapters/01_intro.ipynb)"),
    ("[the guide](docs/guide.md#grading)", "[the guide](guide.md#grading)"),
    ("![map](docs/images/map.png)", "![map](images/map.png)"),
    ('<img src="docs/images/map.png" width="50%">', '<img src="images/map.png" width="50%">'),
    ("open `notebooks/01_intro.ipynb` first", "open [`notebooks/01_intro.ipynb`](chapters/01_intro.ipynb) first"),
    ("[`benchmarks/speed.py`](benchmarks/speed.py)", "`benchmarks/speed.py`"),
    ("[its notes](benchmarks/README.md)", "its notes (`benchmarks/README.md`)"),
    ("see `tests/test_x.py` and `requirements.txt`", "see `tests/test_x.py` and `requirements.txt`"),
    ("[the folder](solutions/)", "the folder (`solutions`)"),
    ("[a typo](notebooks/99_gone.ipynb)", "[a typo](notebooks/99_gone.ipynb)"),  # names nothing: left for the test to catch
    ("[elsewhere](https://example.org/x.md) and [up](#top)", "[elsewhere](https://example.org/x.md) and [up](#top)"),
])
def test_front_page_links_point_at_site_pages_or_read_as_code(written, expected):
    assert _rewrite(written) == expected


def test_notebook_links_are_final_html_addresses_relative_to_the_page():
    text = "[exercises](../exercises/01_intro.ipynb), `exercises/01_intro.ipynb`, [home](../README.md#the-map)"
    assert _rewrite(text, "notebooks/01_intro.ipynb") == (
        "[exercises](../exercises/01_intro.html), [`exercises/01_intro.ipynb`](../exercises/01_intro.html), "
        "[home](../index.html#the-map)")


def test_code_is_left_as_written():
    text = "```bash\ncat notebooks/01_intro.ipynb  # [x](docs/guide.md)\n```\nand `[x](docs/guide.md)` inline"
    assert _rewrite(text) == text


def test_site_files_cover_the_repository_pages():
    files = site_files()
    assert files["README.md"] == "index.md"
    for notebook in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"):
        assert files[f"notebooks/{notebook.name}"] == f"chapters/{notebook.name}"
    assert all(f"docs/{guide.name}" in files for guide in (ROOT / "docs").glob("*.md"))


def _widget_notebook():
    code = nbformat.v4.new_code_cell
    state = {
        "bar": {"model_name": "HBoxModel", "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_p", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "training:\u2007100%"}},
        "p": {"model_name": "FloatProgressModel", "state": {"value": 30.0, "max": 30.0}},
        "r": {"model_name": "HTMLModel", "state": {"value": "\u200730/30\u2007[00:01&lt;00:00]"}},
        "ui": {"model_name": "VBoxModel", "state": {"children": []}},
    }
    def view(model): return nbformat.v4.new_output("display_data", data={
        WIDGET_VIEW: {"model_id": model, "version_major": 2, "version_minor": 0}, "text/plain": "VBox(children=(…"})
    cells = [code("explore()", outputs=[view("ui")]), code("train()", outputs=[view("bar")]),
             code("assert ok", metadata={"tags": ["remove-input", "nbval-ignore-output"]}),
             code("assert fine", metadata={"jupyter": {"source_hidden": True}}),
             code("secret()", metadata={"tags": ["remove-cell"]}),
             nbformat.v4.new_markdown_cell("See [chapter 1](01_intro.ipynb).")]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["widgets"] = {WIDGET_STATE: {"state": state, "version_major": 2, "version_minor": 0}}
    return notebook


def test_a_static_notebook_has_no_live_widgets_hidden_inputs_or_tags():
    notebook = static_notebook(_widget_notebook(), lambda text: _rewrite(text, "notebooks/01_intro.ipynb"))
    explorer, bar, guard, hidden, markdown = notebook.cells
    assert explorer.outputs[0].data == {"text/html": LIVE_NOTE} and "live in JupyterLab" in LIVE_NOTE
    assert bar.outputs[0].data == {"text/plain": "training: 100%|██████████| 30/30 [00:01<00:00]"}
    assert guard.metadata == {"transient": {"remove_source": True}} == hidden.metadata
    assert all("tags" not in cell.metadata for cell in notebook.cells)
    assert markdown.source == "See [chapter 1](01_intro.html)."
    assert "widgets" not in notebook.metadata
    nbformat.validate(notebook)
