"""Build the course site (``make site``): the ten chapters with their stored outputs, the exercises,
the map and the guides, through MkDocs Material and mkdocs-jupyter — offline.

The notebooks are rendered as stored (nothing is executed: their outputs were recorded by
``make execute`` and checked by nbval). Everything a page needs is served by the site itself: the
theme's web fonts are switched off and MathJax comes from the ``jupyter-server-mathjax`` package,
so a page asks no other host for anything.

    python docs/build_site.py [--out site]
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / "build" / "site-src"


def _chapter_title(path: Path) -> str:
    import nbformat

    for cell in nbformat.read(path, as_version=4).cells:
        if cell.cell_type == "markdown" and cell.source.lstrip().startswith("# "):
            return cell.source.lstrip()[2:].splitlines()[0].strip()
    return path.stem.replace("_", " ")


def _front_page(readme: str) -> str:
    """The README as the site's home page, with links into the repository pointed at the site's pages."""
    text = readme.replace("docs/images/", "images/")
    text = re.sub(r"\]\(docs/(\w+)\.md\)", r"](\1.md)", text)
    text = re.sub(r"`notebooks/(\d\d_\w+)\.ipynb`", r"[`\1`](chapters/\1.ipynb)", text)
    return text


def _static_copy(source: Path, target: Path) -> None:
    """Copy a notebook without its live-widget state: a static page cannot run a widget, and rendering
    that state would load the widget manager from a CDN. The static snapshot after each widget stays."""
    import nbformat

    notebook = nbformat.read(source, as_version=4)
    notebook.metadata.pop("widgets", None)
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            data.pop("application/vnd.jupyter.widget-view+json", None)
            if output.get("output_type") in ("display_data", "execute_result") and not data:
                data["text/plain"] = "(an interactive widget: run the notebook to use it)"
    nbformat.write(notebook, target)


def stage() -> dict:
    """Copy what the site shows into ``build/site-src`` and return the navigation."""
    import jupyter_server_mathjax

    shutil.rmtree(STAGING, ignore_errors=True)
    (STAGING / "chapters").mkdir(parents=True)
    (STAGING / "exercises").mkdir()
    shutil.copytree(ROOT / "docs" / "images", STAGING / "images")
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent / "static", STAGING / "mathjax")
    # That MathJax ships the STIX-Web fonts only: tell its HTML-CSS output to use them.
    (STAGING / "mathjax" / "config" / "CourseSite.js").write_text(
        'MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, webFont: "STIX-Web", imageFont: null}});\n'
        'MathJax.Ajax.loadComplete("[MathJax]/config/CourseSite.js");\n', encoding="utf-8")
    (STAGING / "index.md").write_text(_front_page((ROOT / "README.md").read_text(encoding="utf-8")), encoding="utf-8")
    guides = []
    for name in ("instructors", "grading"):
        source = ROOT / "docs" / f"{name}.md"
        if source.exists():
            shutil.copy(source, STAGING / source.name)
            guides.append({name.capitalize(): source.name})
    chapters, exercises = [], []
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        _static_copy(path, STAGING / "chapters" / path.name)
        chapters.append({f"{int(path.name[:2])}. {_chapter_title(path).split('—')[-1].strip()}": f"chapters/{path.name}"})
    for path in sorted((ROOT / "exercises").glob("[0-9][0-9]_*.ipynb")):
        _static_copy(path, STAGING / "exercises" / path.name)
        exercises.append({f"{path.name[:2]} {path.stem[3:].replace('_', ' ')}": f"exercises/{path.name}"})
    return {"nav": [{"Home": "index.md"}, {"Chapters": chapters}, {"Exercises": exercises}, *guides]}


def config(nav: dict, out: Path) -> str:
    import yaml

    settings = {
        "site_name": "slm-course",
        "site_description": "Build, train, finetune, evaluate, quantize and deploy a small language model on a laptop CPU.",
        "docs_dir": str(STAGING),
        "site_dir": str(out),
        "use_directory_urls": True,
        "theme": {"name": "material", "font": False,  # no web fonts from another host
                  "features": ["navigation.footer", "navigation.sections", "navigation.indexes", "toc.follow"]},
        "plugins": [{"mkdocs-jupyter": {
            "execute": False, "include_source": True, "ignore_h1_titles": False,
            # MathJax 2.7 from the site itself; every notebook page sits two folders below the root.
            "custom_mathjax_url": "../../mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,CourseSite",
        }}],
        "markdown_extensions": ["tables", "admonition", "toc"],
        **nav,
    }
    path = ROOT / "build" / "mkdocs.yml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return str(path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "site"))
    args = parser.parse_args()
    out = Path(args.out).resolve()
    start = time.perf_counter()
    nav = stage()
    cfg = config(nav, out)
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--clean", "--config-file", cfg], cwd=ROOT)
    if result.returncode:
        return result.returncode
    pages = len(list(out.rglob("index.html")))
    print(f"site: {pages} pages in {out} ({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
