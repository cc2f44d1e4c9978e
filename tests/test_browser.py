"""End to end in a real browser: `make lab` serves chapter 2 and its attention explorer works offline.

Debian's headless Chromium opens ``notebooks/02_attention.ipynb`` in JupyterLab with every request
to a host other than this machine blocked and recorded, runs the cells that build and show the
attention explorer, checks that the widget is drawn (controls and heatmap image), changes the head
and the highlighted token from the page and checks that the picture changes. Nothing may have been
asked of the internet (no JavaScript from a CDN), and the repository is left as it was.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import nbformat
import pytest

from browser_support import make_lab, offline_chromium, require_browser, run_cells
from slm_course.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = "notebooks/02_attention.ipynb"
SHOTS = repo_root() / "build" / "screenshots" / "lab"  # test artifacts (git-ignored)
# What JupyterLab could leave in the served folders; none of it may appear.
JUPYTER_LEFTOVERS = {".ipynb_checkpoints", ".virtual_documents", ".jupyter", ".ipython", "workspaces"}
SKIPPED_FOLDERS = {".git", ".venv", ".cache", "node_modules"}

# The image's bytes, as the browser holds them: a digest to compare, the PNG signature, its size.
IMAGE_FACTS = """async (img) => {
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return {src: img.src, length: bytes.length, width: img.naturalWidth, height: img.naturalHeight,
            png: Array.from(bytes.slice(0, 4)).join(","),
            digest: Array.from(digest, b => b.toString(16).padStart(2, "0")).join("")};
}"""
PNG_SIGNATURE = "137,80,78,71"
# A <select>'s option texts and the selected one.
# ipywidgets writes the labels' spaces as no-break spaces; they come back as plain spaces.
OPTIONS = """select => {
    const text = option => option.text.replace(/\\s+/g, " ").trim();
    return [Array.from(select.options, text), text(select.options[select.selectedIndex])];
}"""


def cells_to_run(notebook: nbformat.NotebookNode) -> list[int]:
    """Indices of the code cells that show the explorer: the notebook's opening code cells
    (environment report, imports), then the code cells of the section (from its `#`/`##` heading)
    up to the first cell that builds an ``AttentionExplorer``."""
    cells = notebook.cells
    code = [i for i, cell in enumerate(cells) if cell.cell_type == "code"]
    opening = []
    for i in code:
        if opening and i != opening[-1] + 1:
            break
        opening.append(i)
    builds = [i for i in code if re.search(r"\bAttentionExplorer\(", cells[i].source)]
    if not builds:
        pytest.fail(f"{NOTEBOOK} no longer builds an AttentionExplorer; update this test")
    headings = [i for i, cell in enumerate(cells[: builds[0]])
                if cell.cell_type == "markdown" and re.search(r"^#{1,2} ", cell.source, re.MULTILINE)]
    section = headings[-1] if headings else 0
    return sorted(set(opening) | {i for i in code if section < i <= builds[0]})


def jupyter_leftovers(root: Path) -> dict[str, int]:
    """Every file under notebooks/ and every JupyterLab artefact elsewhere in the clone (git-ignored
    ones included, the venv and caches excepted), with modification times in ns.

    Not the whole of `git status`: other work may change other files while the test runs."""
    found = {}
    for folder, subfolders, files in os.walk(root):
        here = Path(folder).relative_to(root)
        if here == Path("."):
            subfolders[:] = [name for name in subfolders if name not in SKIPPED_FOLDERS]
        inside = here.parts[:1] == ("notebooks",) or any(part in JUPYTER_LEFTOVERS for part in here.parts)
        for name in files + subfolders:
            path = Path(folder) / name
            if inside or name in JUPYTER_LEFTOVERS:
                found[str(path.relative_to(root))] = path.lstat().st_mtime_ns
    return found


@pytest.fixture()
def no_new_work_folder():
    """`make lab` creates the git-ignored work/ for learners' copies; remove it again if it was not there and stayed empty."""
    work = repo_root() / "work"
    existed = work.exists()
    yield
    if not existed and work.is_dir() and not any(work.iterdir()):
        work.rmdir()


def test_attention_explorer_renders_in_jupyterlab_offline(tmp_path, no_new_work_folder):
    sync_api = require_browser()
    expect = sync_api.expect
    root = repo_root()
    notebook_path = root / NOTEBOOK
    if not notebook_path.exists():
        pytest.skip(f"{NOTEBOOK} is not written yet")
    notebook_bytes = notebook_path.read_bytes()
    notebook = nbformat.reads(notebook_bytes.decode("utf-8"), as_version=4)
    run = cells_to_run(notebook)
    git_before = jupyter_leftovers(root)

    with make_lab(root, tmp_path / "jupyter") as lab, offline_chromium(sync_api, tmp_path / "chromium") as (context, guard):
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(30_000)
        started = time.monotonic()
        page.goto(lab.url(f"lab/tree/{lab.served_path(NOTEBOOK)}"))
        cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
        expect(cells).to_have_count(len(notebook.cells), timeout=60_000)
        # the kernel named in the notebook has started (the status bar says "Python 3 (…) | Idle")
        expect(page.locator(".jp-StatusBar-Widget")).to_contain_text(re.compile(r"Python[^|\n]*\| Idle"), timeout=60_000)

        explorer_cell = run_cells(expect, page, cells, run, timeout_ms=120_000)
        ran_s = time.monotonic() - started

        # The widget is drawn by the widget manager served from the venv: controls and a PNG heatmap.
        output = explorer_cell.locator(".jp-OutputArea")
        expect(output.locator(".jupyter-widgets.widget-vbox").first).to_be_visible()
        expect(output).not_to_contain_text("Error displaying widget")
        text_box = output.locator(".widget-text input")
        expect(text_box).to_have_value(re.compile(r"\S"))
        head = output.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile(r"^\s*head\s*$"))).locator("select")
        token = output.locator(".widget-dropdown", has=page.locator("label", has_text=re.compile(r"^\s*token\s*$"))).locator("select")
        expect(head).to_have_count(1)
        expect(token).to_have_count(1)
        image = output.locator("img.widget-image")
        expect(image).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        first = image.evaluate(IMAGE_FACTS)
        assert first["png"] == PNG_SIGNATURE and first["width"] > 200 and first["height"] > 200, first
        SHOTS.mkdir(parents=True, exist_ok=True)
        output.screenshot(path=SHOTS / "02_attention-head0.png")

        # Another head from the page's own dropdown: the kernel redraws and the picture changes.
        head_labels, chosen = head.evaluate(OPTIONS)
        assert re.fullmatch(r"head \d+", chosen), (chosen, head_labels)
        other = next(label for label in head_labels if re.fullmatch(r"head \d+", label) and label != chosen)
        head.select_option(index=head_labels.index(other))
        page.wait_for_function("([img, src]) => img.src !== src && img.complete && img.naturalWidth > 0",
                               arg=[image.element_handle(), first["src"]])
        second = image.evaluate(IMAGE_FACTS)
        assert second["png"] == PNG_SIGNATURE
        assert second["digest"] != first["digest"], "choosing another head did not change the heatmap"

        # Highlight a token ("4: e"): its row is outlined and a message names what it attends to most.
        message = output.locator(".widget-html")
        message_before = message.first.inner_text() if message.count() else ""
        token_labels, _ = token.evaluate(OPTIONS)
        fifth = next((i for i, label in enumerate(token_labels) if re.match(r"4\s*:", label)), None)
        assert fifth is not None, token_labels
        token.select_option(index=fifth)
        page.wait_for_function("([img, src]) => img.src !== src && img.complete && img.naturalWidth > 0",
                               arg=[image.element_handle(), second["src"]])
        expect(message.first).not_to_have_text(message_before)
        third = image.evaluate(IMAGE_FACTS)
        assert third["digest"] not in {first["digest"], second["digest"]}
        output.screenshot(path=SHOTS / "02_attention-token.png")
        page.screenshot(path=SHOTS / "02_attention-lab.png")

        # Offline: nothing asked of any host but this machine, and the Lab's own files all loaded.
        assert guard.blocked == [], f"requests to other hosts (a CDN?): {guard.blocked}"
        assert any("/lab/extensions/@jupyter-widgets/jupyterlab-manager/" in url for url in guard.served), \
            "the widget manager did not come from the local server"
        assert not [url for url in guard.failed if "/static/" in url or "/extensions/" in url], guard.failed
        widget_errors = [text for text in guard.console_errors if re.search(r"widget|cdn", text, re.I)]
        assert widget_errors == [], widget_errors
        # and the guard does see such requests: a script from another host is blocked and recorded
        probe = "http://remote-host.invalid/probe.js"
        page.evaluate("url => fetch(url).then(() => 'loaded', () => 'blocked')", probe)
        assert guard.blocked == [probe]

    assert ran_s < 150, f"opening the notebook and running the explorer's cells took {ran_s:.0f} s"
    assert notebook_path.read_bytes() == notebook_bytes, f"{NOTEBOOK} was modified by the browser session"
    assert jupyter_leftovers(root) == git_before, "JupyterLab left files in the repository"
