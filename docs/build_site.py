"""Build the course site (``make site``): the ten chapters with their stored outputs, the exercises,
the map and the guides, through MkDocs Material and mkdocs-jupyter — offline.

The notebooks are rendered as stored (nothing is executed: their outputs were recorded by
``make execute`` and checked by nbval), as ``site_notebooks`` prepares them (widgets, hidden inputs,
no tag badges); every link in the README, the guides and the notebooks is pointed at the site's pages
by ``site_links``. Everything a page needs is served by the site itself: the theme's web fonts are
switched off, MathJax comes from the ``jupyter-server-mathjax`` package and search runs in the page.

The site works opened from disk: pages are ``.html`` files (no directory URLs), and from ``file://``
the search index is read from ``search/search_index.js`` and the search worker runs in an iframe
(``site_assets/file-worker.js``), since Chromium starts no Web Worker from a file.

    python docs/build_site.py [--out site]
"""
from __future__ import annotations

import argparse
import html
import os
import re
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from site_links import rewrite  # noqa: E402
from site_notebooks import static_notebook  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / "build" / "site-src"
ASSETS = "course"  # the site's own CSS and scripts, under the docs folder


def _title(path: Path) -> str:
    """A notebook's first ``# `` heading (without its "Chapter N —" prefix)."""
    import nbformat

    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return cell.source.lstrip()[2:].splitlines()[0].split("—")[-1].strip()
    return path.stem[3:].replace("_", " ")


def site_files(root: Path = ROOT) -> dict[str, str]:
    """Every repository file the site carries, as ``{repository path: path in the site's docs folder}``."""
    files = {"README.md": "index.md"}
    files.update({f"docs/{p.name}": p.name for p in sorted((root / "docs").glob("*.md"))})
    for folder, target in (("notebooks", "chapters"), ("exercises", "exercises")):
        files.update({f"{folder}/{p.name}": f"{target}/{p.name}"
                      for p in sorted((root / folder).glob("[0-9][0-9]_*.ipynb"))})
    images = root / "docs" / "images"
    files.update({f"docs/images/{p.relative_to(images).as_posix()}": f"images/{p.relative_to(images).as_posix()}"
                  for p in sorted(images.rglob("*")) if p.is_file()})
    return files


def stage() -> dict:
    """Write what the site shows into ``build/site-src`` and return the navigation."""
    import jupyter_server_mathjax
    import nbformat

    shutil.rmtree(STAGING, ignore_errors=True)
    STAGING.mkdir(parents=True)
    files = site_files()

    def exists(path: str) -> bool:
        return (ROOT / path).exists()

    for source, staged in files.items():
        target = STAGING / staged
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.endswith(".md"):
            text = (ROOT / source).read_text(encoding="utf-8")
            target.write_text(rewrite(text, source, staged, files, exists), encoding="utf-8")
        elif source.endswith(".ipynb"):
            notebook = nbformat.read(ROOT / source, as_version=4)
            static_notebook(notebook, lambda text, s=source, t=staged: rewrite(text, s, t, files, exists))
            nbformat.write(notebook, target)
        else:
            shutil.copy(ROOT / source, target)
    shutil.copytree(Path(__file__).resolve().parent / "site_assets", STAGING / ASSETS)
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", STAGING / "mathjax")
    # That MathJax ships the STIX-Web fonts only: tell its HTML-CSS output to use them.
    (STAGING / "mathjax" / "config" / "CourseSite.js").write_text(
        'MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});\n'
        'MathJax.Ajax.loadComplete("[MathJax]/config/CourseSite.js");\n', encoding="utf-8")

    chapters = [{f"{int(Path(s).name[:2])}. {_title(ROOT / s)}": t} for s, t in files.items() if s.startswith("notebooks/")]
    exercises = [{f"{Path(s).name[:2]} {Path(s).stem[3:].replace('_', ' ')}": t}
                 for s, t in files.items() if s.startswith("exercises/")]
    guides = [{Path(s).stem.replace("_", " ").capitalize(): t} for s, t in files.items()
              if s.startswith("docs/") and s.endswith(".md")]
    return {"nav": [{"Home": "index.md"}, {"Chapters": chapters}, {"Exercises": exercises}, *guides]}


def _code_version() -> str:
    import hashlib

    here = Path(__file__).resolve().parent
    code = b"".join((here / name).read_bytes() for name in ("build_site.py", "site_notebooks.py", "site_links.py"))
    return hashlib.sha256(code).hexdigest()[:12]


def config(nav: dict, out: Path) -> str:
    import yaml

    settings = {
        "site_name": "slm-course",
        "site_description": "Build, train, finetune, evaluate, quantize and deploy a small language model on a laptop CPU.",
        "docs_dir": str(STAGING),
        "site_dir": str(out),
        # pages are files (chapters/05_….html), so the site works opened from disk as well as served
        "use_directory_urls": False,
        "theme": {"name": "material", "font": False,  # no web fonts from another host
                  "features": ["navigation.footer", "navigation.sections", "toc.integrate", "search.highlight"]},
        "extra_css": [f"{ASSETS}/course.css"],
        # before Material's own script, which starts the search worker
        "extra": {"polyfills": [f"{ASSETS}/file-worker.js"]},
        "plugins": [
            {"search": {"lang": "en"}},  # lunr, in the page: no search service
            {"mkdocs-jupyter": {
                "execute": False, "include_source": False, "ignore_h1_titles": False, "no_prompt": True,
                # the plugin's cache of rendered pages, kept apart for each version of this build's code
                "cache_dir": str(ROOT / "build" / "mkdocs-jupyter-cache" / _code_version()),
                # MathJax 2.7 from the site itself; every notebook page sits one folder below the root.
                "custom_mathjax_url": "../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,CourseSite",
            }},
        ],
        "markdown_extensions": ["tables", "admonition", "toc"],
        "validation": {"links": {"not_found": "warn", "anchors": "warn", "absolute_links": "warn",
                                 "unrecognized_links": "warn"}},
        **nav,
    }
    path = ROOT / "build" / "mkdocs.yml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return str(path)


def _notebook_toc(fpath: str, toc_depth: int):
    """mkdocs-jupyter's table of contents for a notebook page, with the words of code spans in headings kept.

    The plugin reads the headings from nbconvert's Markdown export, which drops a heading's code
    spans (``## 6. The corpus with `datasets` `` becomes "6. The corpus with", anchor
    ``#6-the-corpus-with``), while the page's headings, written by nbconvert's HTML export, keep them
    (id ``6-the-corpus-with-datasets``): every such entry linked to an anchor the page does not have.
    Here the headings come from the Markdown cells themselves (fenced code left out), code as text."""
    import mkdocs_jupyter.plugin as plugin
    import nbformat

    from site_links import _FENCE

    def plain(line: re.Match) -> str:
        return re.sub(r"`+([^`]+)`+", lambda code: html.escape(code.group(1)), line.group(0))

    cells = nbformat.read(fpath, as_version=4).cells
    text = "\n\n".join(_FENCE.sub("", c.source) for c in cells if c.cell_type == "markdown")
    tokens = plugin._get_markdown_toc(re.sub(r"^#{1,6}[ \t].*$", plain, text, flags=re.MULTILINE), toc_depth)
    title = next((t["name"] for t in tokens if t["level"] == 1), None)
    return tokens, title


def build(cfg: str) -> None:
    """``mkdocs build`` of the configuration ``cfg``, with the table-of-contents fix above."""
    os.environ.setdefault("NO_MKDOCS_2_WARNING", "1")
    import mkdocs_jupyter.plugin as plugin
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config

    plugin._get_nb_toc_tokens = _notebook_toc
    mkdocs_build(load_config(cfg))


def finish(out: Path) -> None:
    """What Material reads when the site is opened from disk: the search index as a script."""
    index = out / "search" / "search_index.json"
    (out / "search" / "search_index.js").write_text("var __index = " + index.read_text(encoding="utf-8"),
                                                    encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "site"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    start = time.perf_counter()
    nav = stage()
    cfg = config(nav, out)
    build(cfg)
    finish(out)
    pages = 1 + sum(len(next(iter(item.values()))) if isinstance(next(iter(item.values())), list) else 1
                    for item in nav["nav"][1:])
    print(f"site: {pages} pages in {out} ({time.perf_counter() - start:.0f} s)")
    print(f"open it from disk: file://{out / 'index.html'}  (or serve it: python -m http.server -d {out})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
