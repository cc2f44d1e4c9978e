"""A notebook as the course site shows it: read as stored, with what only a running kernel shows replaced.

* Live widgets: a static page cannot run them, and rendering their state would load the widget
  manager from a CDN. A progress bar (tqdm's box of label, bar and counts) is written out as the text
  its final state shows; any other widget becomes a short note that it is live in JupyterLab and that
  the static snapshot the chapter draws after it is what the page shows.
* Scaffolding: a cell tagged ``remove-cell`` is left out; a cell tagged ``remove-input`` or whose source
  is hidden in JupyterLab (``jupyter.source_hidden``) shows only its output. No other cell metadata
  reaches the page (nbval's tags would otherwise show as badges above the code).
* Links in Markdown cells are pointed at the site's pages (``site_links``).
"""
from __future__ import annotations

import html
import re
from typing import Callable

import nbformat

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
LIVE_NOTE = ("<p class=\"course-widget\"><strong>Interactive widget: live in JupyterLab</strong> "
             "(<code>make lab</code>). On this page, the static snapshot of it drawn below shows what it draws.</p>")
_TAGS = re.compile(r"<[^>]+>")


def _progress_text(model: dict, state: dict) -> str | None:
    """tqdm's notebook bar (an HBox of HTML, FloatProgress, HTML) as the line its final state reads."""
    children = [state.get(c.removeprefix("IPY_MODEL_"), {}) for c in model.get("state", {}).get("children", [])]
    names = [c.get("model_name") for c in children]
    if len(children) != 3 or names[1] not in ("FloatProgressModel", "IntProgressModel") or names[0] != "HTMLModel":
        return None
    left, bar, right = (c.get("state", {}) for c in children)
    value, top = bar.get("value") or 0, bar.get("max") or 0
    filled = round(10 * value / top) if top else 10
    def text(s): return html.unescape(_TAGS.sub("", s.get("value", ""))).replace("\u2007", " ").strip()
    return f"{text(left)}|{'█' * filled}{' ' * (10 - filled)}| {text(right)}".strip()


def _static_output(output, state: dict) -> None:
    data = output.get("data", {})
    view = data.pop(WIDGET_VIEW, None)
    if view is None:
        return
    model = state.get(view.get("model_id", ""), {})
    line = _progress_text(model, state)
    data.clear()
    if line is not None:
        data["text/plain"] = line
    else:
        data["text/html"] = LIVE_NOTE


def static_notebook(notebook, rewrite_markdown: Callable[[str], str]):
    """The notebook ``notebook`` (nbformat v4, changed in place and returned) as the site renders it."""
    state = notebook.metadata.pop("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    cells = []
    for cell in notebook.cells:
        tags = set(cell.metadata.get("tags", []))
        if "remove-cell" in tags:
            continue
        hide_input = "remove-input" in tags or cell.metadata.get("jupyter", {}).get("source_hidden", False)
        cell.metadata = nbformat.NotebookNode({"transient": {"remove_source": True}} if hide_input else {})
        if cell.cell_type == "markdown":
            cell.source = rewrite_markdown(cell.source)
        for output in cell.get("outputs", []):
            _static_output(output, state)
        cells.append(cell)
    notebook.cells = cells
    return notebook
