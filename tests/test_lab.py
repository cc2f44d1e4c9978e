"""`make lab` serves JupyterLab on the whole checkout (notebooks/ and the learner's work/), with the
widget manager as a prebuilt extension served from the venv: nothing comes from a CDN.
(tests/test_browser.py then opens chapter 2's widget in a real, offline browser.)
"""
import json
import re
import urllib.request

import pytest

from browser_support import make_lab
from slm_course.paths import repo_root


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        return response.read().decode("utf-8", "replace")


@pytest.mark.slow
def test_make_lab_serves_the_notebooks(tmp_path):
    root = repo_root()
    had_work = (root / "work").exists()
    try:
        with make_lab(root, tmp_path) as lab:
            page = get(lab.url("lab"))
            config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>\s*(\{.*?\})\s*</script>', page, re.S).group(1))
            extensions = {ext["name"] for ext in config.get("federated_extensions", [])}
            assert "@jupyter-widgets/jupyterlab-manager" in extensions
            top = {item["name"] for item in json.loads(get(lab.url("api/contents")))["content"]}
            assert {"notebooks", "work", "exercises"} <= top
            names = {item["name"] for item in json.loads(get(lab.url("api/contents/notebooks")))["content"]}
            expected = {p.name for p in (root / "notebooks").glob("*.ipynb")}
            assert expected and expected <= names
            first = sorted(expected)[0]
            assert json.loads(get(lab.url(f"api/contents/notebooks/{first}") + "&content=1"))["content"]["cells"]
    finally:
        if not had_work and (root / "work").is_dir() and not any((root / "work").iterdir()):
            (root / "work").rmdir()
