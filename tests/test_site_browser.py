"""The course site as a learner opens it: ``site/index.html`` from disk, in Debian's headless Chromium.

The site is built once per test session into a temporary folder, by the script ``make site`` runs.
Starting from the home page, the walk opens every page it can reach through links, follows every
link, and fails on

* a link to a file the site does not have (a 404 from a server, "file not found" from disk), to a
  folder (from disk, a directory listing), to a file outside the site, or to an anchor no element of
  the target page carries; a page of the site that no link reaches;
* a live widget's ``repr`` (``VBox(children=(…``) or a cell-tag badge (``nbval-ignore-output``);
* a content column under 900 px on a notebook page (at a 1400 px wide window); a figure drawn outside
  the column, or shrunk below 75 % of its own width when the column had room for more (a figure is
  shrunk only as far as the column's width, so widget snapshots keep readable labels); code, text output or a table that scrolls sideways by more than 8 px (wrapped instead);
* a request to another host, or a file the page asked for and did not get.

Search is run from disk and over HTTP (the site's search index, lunr in the page): "KV cache" finds
chapter 5 and "LoRA" chapter 7 among the first three pages listed. Screenshots of the home page, a
chapter and an exercise page are kept in ``build/screenshots/site/``.
"""
from __future__ import annotations

import functools
import http.server
import re
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from browser_support import offline_chromium, require_browser
from slm_course.paths import repo_root

pytestmark = [pytest.mark.slow]

ROOT = repo_root()
CHAPTERS = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
EXERCISES = sorted(p.stem for p in (ROOT / "exercises").glob("[0-9][0-9]_*.ipynb"))
SHOTS = ROOT / "build" / "screenshots" / "site"
WIDGET_REPR = re.compile(r"\b[A-Z]\w*(?:Box|Slider|Dropdown|Text|Textarea|Output|Button|Buttons|Progress|HTML|Checkbox"
                         r"|Select|Tab|Accordion|Play)\((?:children|value|description|options|layout)=|\bOutput\(\)")
MIN_SCALE, MAX_OVERFLOW_PX = 0.75, 8

PAGE_FACTS = """() => {
  const main = document.querySelector('.md-content');
  const box = main.getBoundingClientRect();
  const imgs = [...main.querySelectorAll('img')].map(i => {
    const r = i.getBoundingClientRect();
    return {src: (i.getAttribute('src') || '').slice(0, 60), natural: i.naturalWidth, width: r.width,
            left: r.left, right: r.right, complete: i.complete,
            room: i.parentElement.getBoundingClientRect().width};
  });
  const wide = [...main.querySelectorAll('pre, .jp-OutputArea-output, table')]
    .filter(e => e.scrollWidth > e.clientWidth + %d)
    .map(e => `${e.tagName} ${e.scrollWidth}>${e.clientWidth}: ${e.textContent.trim().slice(0, 60)}`);
  return {left: box.left, right: box.right, imgs, wide, text: main.innerText,
          badges: main.querySelectorAll('.celltoolbar, .cell-tag').length,
          links: [...document.querySelectorAll('a[href]')].map(a => a.href),
          ids: [...document.querySelectorAll('[id], a[name]')].map(e => e.id || e.getAttribute('name'))};
}""" % MAX_OVERFLOW_PX


@pytest.fixture(scope="session")
def site(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, str(ROOT / "docs" / "build_site.py"), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "file://" in result.stdout, "make site says how to open the site"
    return out


@pytest.fixture(scope="session")
def served(site):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_site_has_every_chapter_exercise_and_guide_as_files(site):
    for chapter in CHAPTERS:
        assert (site / "chapters" / f"{chapter}.html").is_file(), chapter
    for exercise in EXERCISES:
        assert (site / "exercises" / f"{exercise}.html").is_file(), exercise
    for guide in (ROOT / "docs").glob("*.md"):
        assert (site / f"{guide.stem}.html").is_file(), guide.name
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "images/map.png" in home and all(f'href="chapters/{c}.html"' in home for c in CHAPTERS)
    assert (site / "search" / "search_index.js").read_text(encoding="utf-8").startswith("var __index = {")


def _check_page(name: str, facts: dict) -> list[str]:
    problems = []
    if facts["badges"]:
        problems.append(f"{name}: {facts['badges']} cell-tag badges")
    if match := WIDGET_REPR.search(facts["text"]):
        problems.append(f"{name}: a widget's repr: {facts['text'][match.start():match.start() + 60]!r}")
    for img in facts["imgs"]:
        if not img["complete"] or img["natural"] == 0:
            problems.append(f"{name}: image {img['src']} did not load")
        elif img["left"] < facts["left"] - 1 or img["right"] > facts["right"] + 1:
            problems.append(f"{name}: image {img['src']} drawn outside the column")
        elif img["width"] < MIN_SCALE * img["natural"] and img["width"] < img["room"] - 2:
            problems.append(f"{name}: image {img['src']} shrunk to {img['width']:.0f} of {img['natural']} px")
    problems += [f"{name}: scrolls sideways: {w}" for w in facts["wide"]]
    return problems


@pytest.mark.browser
def test_every_page_opened_from_disk_has_working_links_and_reads_as_a_page(site, tmp_path):
    sync_api = require_browser()
    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = {p.resolve() for p in site.rglob("*.html") if p.name != "404.html" and "mathjax" not in p.parts}
    shots = {site / "index.html": "home", site / "chapters" / f"{CHAPTERS[4]}.html": "chapter",
             site / "exercises" / f"{EXERCISES[5]}.html": "exercise"}
    todo, seen, anchors, ids, problems = [site.resolve() / "index.html"], set(), [], {}, []
    with offline_chromium(sync_api, tmp_path / "profile") as (context, guard):
        page = context.new_page()
        page_errors = []
        page.on("pageerror", lambda error: page_errors.append(str(error)))
        while todo:
            path = todo.pop()
            if path in seen:
                continue
            seen.add(path)
            name = path.relative_to(site.resolve()).as_posix()
            page.goto(path.as_uri(), wait_until="load")
            facts = page.evaluate(PAGE_FACTS)
            ids[path] = set(facts["ids"])
            problems += _check_page(name, facts)
            if name.startswith(("chapters/", "exercises/")):
                assert facts["right"] - facts["left"] >= 900, f"{name}: a {facts['right'] - facts['left']:.0f} px column"
            if name.startswith("chapters/"):
                assert len([i for i in facts["imgs"] if i["src"].startswith("data:image")]) >= 2, f"{name}: figures"
            if path in shots:
                page.screenshot(path=str(SHOTS / f"{shots[path]}.png"))
            for href in facts["links"]:
                parts = urlsplit(href)
                if parts.scheme != "file":
                    continue  # another host (not followed) or a mailto:
                target = Path(unquote(parts.path)).resolve()
                if not target.is_relative_to(site.resolve()):
                    problems.append(f"{name}: links outside the site: {href}")
                elif target.is_dir():
                    problems.append(f"{name}: links to a folder (a directory listing from disk): {href}")
                elif not target.is_file():
                    problems.append(f"{name}: links to a missing file: {href}")
                else:
                    if parts.fragment:
                        anchors.append((name, target, unquote(parts.fragment)))
                    if target.suffix == ".html":
                        todo.append(target)
    for name, target, fragment in anchors:
        if target in ids and fragment not in ids[target]:
            problems.append(f"{name}: no #{fragment} on {target.relative_to(site.resolve())}")
    assert problems == [], "\n".join(sorted(set(problems))[:40])
    assert pages - seen == set(), f"pages no link reaches: {sorted(p.name for p in pages - seen)}"
    assert guard.blocked == [], f"pages asked other hosts: {guard.blocked[:5]}"
    # Cut short by leaving a page (ERR_ABORTED), or MathJax probing for a web font with about:blank (which
    # a file:// page may not load as a font; the math renders with the STIX-Web fonts' fallback): not
    # files the site lacks.
    assert [f for f in guard.failed if "ERR_ABORTED" not in f and not f.startswith("about:blank")] == [], guard.failed[:5]
    assert page_errors == [], page_errors[:5]


def _search(page, query: str) -> list[str]:
    """The pages (no query, no anchor) of the first search results for ``query``, in order, deduplicated."""
    field = page.locator("input.md-search__input")
    field.click()
    field.fill("")
    field.press_sequentially(query, delay=20)
    page.locator(".md-search-result__item").first.wait_for(timeout=20_000)
    page.wait_for_timeout(300)
    hrefs = page.locator(".md-search-result__item > a").evaluate_all("links => links.map(a => a.href)")
    pages = []
    for href in hrefs:
        name = urlsplit(href).path.rsplit("/", 2)[-2:]
        if "/".join(name) not in pages:
            pages.append("/".join(name))
    return pages


@pytest.mark.browser
@pytest.mark.parametrize("opened", ["from disk", "served"])
def test_search_finds_chapters_by_their_words(site, served, opened, tmp_path):
    sync_api = require_browser()
    start = (site / "index.html").as_uri() if opened == "from disk" else f"{served}/index.html"
    with offline_chromium(sync_api, tmp_path / "profile") as (context, guard):
        page = context.new_page()
        for query, chapter in (("KV cache", CHAPTERS[4]), ("LoRA", CHAPTERS[6])):
            page.goto(start, wait_until="load")
            found = _search(page, query)
            assert f"chapters/{chapter}.html" in found[:3], f"{query!r} ({opened}) found {found[:5]}"
    assert guard.blocked == [], guard.blocked[:5]
