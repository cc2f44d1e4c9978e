"""Every chapter in a real browser: one JupyterLab (`make lab`) serves them all to Debian's headless
Chromium, with every request to another host blocked and recorded.

- Every chapter notebook opens and shows its stored outputs: no error output, its figures drawn. The
  cells themselves are not re-run here — nbval already runs every one of them — so a rendered view is
  what this test adds.
- The sampling explorer (chapter 5) and the quantization explorer (chapter 10) are run live: their
  cells execute in the page's kernel, the widget renders, and moving a control redraws its picture
  (temperature, top-k and top-p; bits). Chapter 2's attention explorer has its own test
  (`test_browser.py`).

Screenshots are kept as test artifacts in ``build/screenshots/lab/``. The server, its kernels and the
browser stop at the end of the module, also when a test fails.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
import pytest

from browser_support import make_lab, offline_chromium, require_browser, run_cells
from slm_course.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = repo_root()
CHAPTERS = sorted(f"notebooks/{p.name}" for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "build" / "screenshots" / "lab"
DIGEST = """async (img) => {
    const bytes = new Uint8Array(await (await fetch(img.src)).arrayBuffer());
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
    return Array.from(digest, b => b.toString(16).padStart(2, "0")).join("");
}"""
# The live widgets: notebook, the class the cell builds, and the controls to move (label, key presses).
LIVE = {
    "notebooks/05_evaluation_generation.ipynb": ("SamplingExplorer", [("temperature", "ArrowRight", 8), ("top-k", "ArrowRight", 5), ("top-p", "ArrowLeft", 20)]),
    "notebooks/10_deployment.ipynb": ("QuantizationExplorer", [("bits", "ArrowLeft", 3)]),
}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    sync_api = require_browser()
    scratch = tmp_path_factory.mktemp("lab")
    with make_lab(ROOT, scratch / "jupyter") as lab, offline_chromium(sync_api, scratch / "chromium") as (context, guard):
        yield sync_api, lab, context, guard
    assert guard.blocked == [], f"requests to other hosts: {guard.blocked[:5]}"


def _open(sync_api, lab, context, notebook: str):
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(lab.url(f"lab/tree/{lab.served_path(notebook)}"))
    cells = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook .jp-Cell")
    count = len(nbformat.read(ROOT / notebook, as_version=4).cells)
    sync_api.expect(cells).to_have_count(count, timeout=90_000)
    return page, cells


@pytest.mark.parametrize("notebook", CHAPTERS)
def test_chapter_opens_with_its_stored_outputs(browser, notebook):
    sync_api, lab, context, guard = browser
    page, cells = _open(sync_api, lab, context, notebook)
    try:
        errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Traceback")
        assert errors.count() == 0, f"{notebook} shows an error output"
        images = page.locator(".jp-RenderedImage img")
        stored = sum(1 for c in nbformat.read(ROOT / notebook, as_version=4).cells
                     for o in c.get("outputs", []) if "image/png" in o.get("data", {}))
        assert stored >= 2, f"{notebook} stores {stored} figures: every chapter shows its map and diagrams"
        page.wait_for_timeout(500)
        assert images.count() >= min(stored, 2)
        sync_api.expect(page.locator(".jp-Cell").first).to_contain_text("Chapter")
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"{Path(notebook).stem}.png"), full_page=False)
    finally:
        page.close()


def _cells_through(notebook: str, builds: str) -> list[int]:
    cells = nbformat.read(ROOT / notebook, as_version=4).cells
    code = [i for i, c in enumerate(cells) if c.cell_type == "code"]
    found = [i for i in code if re.search(rf"\b{builds}\(", cells[i].source)]
    if not found:
        pytest.fail(f"{notebook} no longer builds a {builds}; update this test")
    return [i for i in code if i <= found[0]]


def _slider(output, label: str):
    return output.locator(".widget-slider", has=output.page.locator("label", has_text=re.compile(rf"^\s*{re.escape(label)}")))


@pytest.mark.parametrize("notebook", sorted(LIVE))
def test_live_explorer_responds_to_its_controls(browser, notebook):
    if not (ROOT / notebook).exists():
        pytest.skip(f"{notebook} is not written yet")
    sync_api, lab, context, guard = browser
    expect = sync_api.expect
    builds, moves = LIVE[notebook]
    run = _cells_through(notebook, builds)
    page, cells = _open(sync_api, lab, context, notebook)
    try:
        expect(page.locator(".jp-StatusBar-Widget")).to_contain_text(re.compile(r"Python[^|\n]*\| Idle"), timeout=90_000)
        widget_cell = run_cells(expect, page, cells, run, timeout_ms=400_000)
        output = widget_cell.locator(".jp-OutputArea")
        expect(output.locator(".jupyter-widgets").first).to_be_visible()
        expect(output).not_to_contain_text("Error displaying widget")
        image = output.locator("img.widget-image").first
        expect(image).to_be_visible()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
        message = output.locator(".widget-html").first
        seen = {image.evaluate(DIGEST)}
        texts = {message.inner_text() if message.count() else ""}
        SHOTS.mkdir(parents=True, exist_ok=True)
        for label, key, presses in moves:
            slider = _slider(output, label)
            expect(slider).to_have_count(1)
            before_src = image.get_attribute("src")
            slider.locator(".noUi-handle").first.focus()
            for _ in range(presses):
                page.keyboard.press(key)
            page.wait_for_function("([img, src]) => img.src !== src && img.complete && img.naturalWidth > 0",
                                   arg=[image.element_handle(), before_src], timeout=120_000)
            # Each key press redraws; wait until the picture has settled on the last one before the screenshot.
            settled = image.get_attribute("src")
            for _ in range(20):
                page.wait_for_timeout(750)
                if image.get_attribute("src") == settled:
                    break
                settled = image.get_attribute("src")
            digest = image.evaluate(DIGEST)
            assert digest not in seen, f"moving {label} did not change the picture"
            seen.add(digest)
            texts.add(message.inner_text() if message.count() else "")
            output.screenshot(path=str(SHOTS / f"{Path(notebook).stem}-{label.split()[0]}.png"))
        assert len(texts) > 1, "the explorer's readout never changed"
    finally:
        page.close()
