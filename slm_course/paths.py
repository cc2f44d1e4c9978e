"""Where things live: the course checkout and the cache (``$SLM_COURSE_HOME``)."""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent


def repo_root() -> Path:
    """The course checkout (the folder holding ``notebooks/``, ``solutions/`` and ``exercises/``).

    The package is installed in editable mode, so the checkout is the package's parent; when it
    is not (an installed wheel), the current folder or the nearest parent holding ``solutions/``.
    """
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "solutions").is_dir():
        return candidate
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "solutions").is_dir() and (folder / "pyproject.toml").is_file():
            return folder
    raise FileNotFoundError(
        "Could not find the slm-course checkout (a folder with pyproject.toml and solutions/). "
        "Run this from inside your clone of the course."
    )


def course_home() -> Path:
    """The cache folder: ``$SLM_COURSE_HOME``, else the user cache folder (``~/.cache/slm-course`` on Linux)."""
    env = os.environ.get("SLM_COURSE_HOME")
    if env:
        return Path(env).expanduser().resolve()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("slm-course", appauthor=False))


def models_dir() -> Path:
    """``$SLM_COURSE_HOME/models``: shared, deterministically built models (one subfolder per key)."""
    return course_home() / "models"
