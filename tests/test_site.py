"""`make site` builds the course site offline, and every chapter page renders in a real browser with its
figures, asking no host but this machine for anything.

The site is built into a temporary folder (the same script `make site` runs), served over loopback by
Python's own HTTP server, and each chapter page is opened in Debian's headless Chromium with every
non-loopback request blocked and recorded. Screenshots of the pages are kept as test artifacts in
``build/screenshots/site/``.
"""
from __future__ import annotations

import functools
import http.server
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from browser_support import offline_chromium, require_browser
from slm_course.paths import repo_root

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ROOT = repo_root()
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "build" / "screenshots" / "site"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "build_site.py"), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_site_has_every_chapter_exercise_and_guide(site):
    for chapter in CHAPTERS:
        assert (site / "chapters" / chapter / "index.html").exists(), chapter
    for exercise in sorted(p.stem for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):
        assert (site / "exercises" / exercise / "index.html").exists(), exercise
    assert (site / "instructors" / "index.html").exists() and (site / "grading" / "index.html").exists()
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "images/map.png" in home and all(f"chapters/{c}" in home for c in CHAPTERS)


def test_every_chapter_page_renders_with_its_figures_and_asks_no_other_host(served, tmp_path):
    sync_api = require_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with offline_chromium(sync_api, tmp_path / "profile") as (context, guard):
        page = context.new_page()
        page.goto(served + "/", wait_until="load")
        assert page.locator("img[src*='map.png']").count() == 1
        for chapter in CHAPTERS:
            page.goto(f"{served}/chapters/{chapter}/", wait_until="load")
            page.wait_for_timeout(300)
            title = page.locator("h1").first.inner_text()
            assert title.startswith("Chapter"), (chapter, title)
            figures = page.locator(".jp-RenderedImage img, img[src^='data:image/png']")
            assert figures.count() >= 2, f"{chapter}: {figures.count()} figures rendered"
            widths = figures.evaluate_all("imgs => imgs.map(i => i.naturalWidth)")
            assert min(widths) > 0, f"{chapter}: an image did not decode"
            assert page.locator("a.md-footer__link--next, a.md-footer__link--prev").count() >= 1  # chapter navigation
            page.screenshot(path=str(SHOTS / f"{chapter}.png"))
    assert guard.blocked == [], f"pages asked other hosts: {guard.blocked[:5]}"
    # Requests cut short by leaving a page (ERR_ABORTED) are not failures of the site.
    assert not [f for f in guard.failed if f.startswith("http") and "ERR_ABORTED" not in f], guard.failed[:5]
