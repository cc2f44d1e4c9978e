"""Where things live: the course checkout and the cache (``$SLM_COURSE_HOME``)."""
from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import Callable

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


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically: a temporary file in the same folder, then a rename.

    A reader never sees a half-written file, even if the writer is interrupted. Returns the path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        umask = os.umask(0)  # mkstemp makes the file private (0600); give it the usual permissions
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def publish_folder(target: str | os.PathLike, fill: Callable[[Path], None], is_complete: Callable[[Path], bool]) -> Path:
    """Build the folder ``target`` atomically: ``fill(staging)`` writes everything into a fresh staging folder
    beside it, which is then renamed into place (an older ``target``, e.g. from another recipe, is removed first).

    If another process renamed a complete copy into place first (``is_complete(target)``), that one is kept.
    An interrupted ``fill`` leaves no staging folder and no half-written ``target``. Returns the path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        fill(staging)
        if target.exists():
            shutil.rmtree(target)
        try:
            os.replace(staging, target)
        except OSError:  # another process finished first: keep theirs
            if not is_complete(target):
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
