"""Where things live: the course checkout and the cache (``$SLM_COURSE_HOME``)."""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
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
    The size and sha256 of every file are recorded beside them (:func:`record_checksums`), so a later load can
    tell a damaged copy from a good one (:func:`cache_is_intact`).

    If another process renamed a complete copy into place first (``is_complete(target)``), that one is kept.
    An interrupted ``fill`` leaves no staging folder and no half-written ``target``. Returns the path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        fill(staging)
        record_checksums(staging)
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


# --------------------------------------------------------------------------- derived caches' checksums

CHECKSUMS = ".checksums.json"
_CHUNK = 1 << 22
_INTACT: dict[Path, tuple] = {}  # folder -> the stat signature it had when its files last matched


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file, read in 4 MiB blocks (asset files and derived caches are checked with it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != CHECKSUMS)


def record_checksums(folder: str | os.PathLike) -> Path:
    """Write ``folder/.checksums.json``: ``{relative path: [size in bytes, sha256]}`` for every file under it."""
    folder = Path(folder)
    sums = {p.relative_to(folder).as_posix(): [p.stat().st_size, file_sha256(p)] for p in _files(folder)}
    return atomic_write_text(folder / CHECKSUMS, json.dumps(sums, indent=1))


def _signature(folder: Path) -> tuple:
    return tuple((p.as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in _files(folder))


def cache_damage(folder: str | os.PathLike) -> str | None:
    """``None`` when every file recorded in ``folder/.checksums.json`` is there with its size and sha256;
    else a sentence saying what is wrong (``"model.safetensors is 1,024 bytes, not 2,048"``).

    Sizes are compared on every call; the hashes once per process for a given set of sizes and times, so a
    second load in the same kernel costs a few ``stat`` calls.
    """
    folder = Path(folder)
    try:
        recorded = json.loads((folder / CHECKSUMS).read_text())
    except FileNotFoundError:
        return f"it has no {CHECKSUMS} (it was written by an older version of the course, which recorded none)"
    except (OSError, json.JSONDecodeError) as error:
        return f"its {CHECKSUMS} cannot be read ({error})"
    try:
        for name, (size, _) in recorded.items():
            path = folder / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} is {path.stat().st_size:,} bytes, not {size:,}"
        signature = _signature(folder)
        if _INTACT.get(folder) == signature:
            return None
        for name, (_, digest) in recorded.items():
            if file_sha256(folder / name) != digest:
                return f"{name} has changed since it was built (its sha256 differs from the one recorded then)"
    except OSError as error:
        return f"it cannot be read ({error})"
    _INTACT[folder] = signature
    return None


def cache_is_intact(folder: str | os.PathLike, what: str) -> bool:
    """True when ``folder`` passes :func:`cache_damage`. When it does not, says so in one line on stderr
    (``what`` names the cache: "the tiny pretrained model") and returns False, so the caller rebuilds it."""
    damage = cache_damage(folder)
    if damage is None:
        return True
    print(f"slm-course: the cached {what} in {folder} failed its check: {damage}. Rebuilding it.",
          file=sys.stderr, flush=True)
    return False
