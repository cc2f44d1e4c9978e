"""Finding the submissions to grade: files, folders and zips of a class, one student per file name.

A zip is unpacked into the grader's own temporary folder with guards: no absolute paths or
``..`` components, no links, only ``.ipynb`` members, a cap on the number of members and on the
bytes actually unpacked (a decompression bomb is stopped while it inflates, not after).
"""
from __future__ import annotations

import hashlib
import json
import stat
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import slm_course

MAX_NOTEBOOK_BYTES = 32 << 20  # a learner's notebook larger than this is not graded
MAX_ZIP_MEMBERS = 5000


@dataclass
class Submission:
    """One learner's notebook: ``student`` names the row, ``source`` is what the instructor gave."""

    student: str
    path: Path  # a readable file (inside the grader's temporary folder for zip members)
    source: str  # as given: the file, or "class.zip:alice.ipynb"
    relative: str  # path under the folder or zip it came from, used to tell apart equal names

    def sha256(self) -> str:
        """The hex SHA-256 of the notebook's bytes: ``--resume`` keeps a row only while this is unchanged."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()


def _extract_zip(archive: Path, into: Path, max_bytes: int) -> list[tuple[Path, str]]:
    """Unpack the ``.ipynb`` members of ``archive`` into ``into``; refuse unsafe or oversized ones."""
    found: list[tuple[Path, str]] = []
    total = 0
    try:
        with zipfile.ZipFile(archive) as handle:
            members = handle.infolist()
            if len(members) > MAX_ZIP_MEMBERS:
                raise ValueError(f"{archive}: {len(members)} members is more than the {MAX_ZIP_MEMBERS} a class zip may hold.")
            for index, info in enumerate(members):
                name = PurePosixPath(info.filename.replace("\\", "/"))
                if info.is_dir() or name.suffix != ".ipynb" or "__MACOSX" in name.parts or name.name.startswith("."):
                    continue
                if name.is_absolute() or ".." in name.parts or ":" in info.filename:
                    raise ValueError(f"{archive}: member {info.filename!r} points outside the folder; refusing the zip.")
                if stat.S_ISLNK(info.external_attr >> 16):
                    raise ValueError(f"{archive}: member {info.filename!r} is a link; refusing the zip.")
                target = into / f"{index:05d}" / name.name
                target.parent.mkdir(parents=True)
                with handle.open(info) as src, open(target, "wb") as dst:
                    while chunk := src.read(1 << 20):
                        total += len(chunk)
                        if total > max_bytes:
                            raise ValueError(
                                f"{archive}: unpacks to more than {max_bytes >> 20} MB (a decompression bomb?); "
                                "refusing it. Raise --zip-limit if the class is really that large."
                            )
                        dst.write(chunk)
                found.append((target, str(name)))
    except zipfile.BadZipFile as error:
        raise ValueError(f"{archive}: not a readable zip file ({error}).") from None
    return found


def collect(inputs: list[str], workdir: Path, zip_limit: int = 512 << 20) -> list[Submission]:
    """Every notebook named by ``inputs`` (files, folders searched recursively, zips), sorted by student."""
    raw: list[tuple[Path, str, str]] = []  # (file, source, relative)
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            for file in sorted(path.rglob("*.ipynb")):
                if ".ipynb_checkpoints" not in file.parts:
                    raw.append((file, str(file), str(file.relative_to(path))))
            for index, archive in enumerate(sorted(path.rglob("*.zip"))):
                for file, member in _extract_zip(archive, workdir / f"zip{len(raw)}-{index}", zip_limit):
                    raw.append((file, f"{archive}:{member}", member))
        elif path.is_file() and path.suffix == ".zip":
            for file, member in _extract_zip(path, workdir / f"zip{len(raw)}", zip_limit):
                raw.append((file, f"{path}:{member}", member))
        elif path.is_file():
            raw.append((path, str(path), path.name))
        else:
            raise FileNotFoundError(f"{given}: no such file or folder.")
    if not raw:
        raise ValueError("No notebooks found in " + ", ".join(inputs) + ": give .ipynb files, folders or a zip.")
    stems: dict[str, int] = {}
    for file, _, _ in raw:
        stems[file.stem] = stems.get(file.stem, 0) + 1
    subs = []
    for file, source, relative in raw:
        student = file.stem if stems[file.stem] == 1 else str(PurePosixPath(relative).with_suffix(""))
        subs.append(Submission(student, file, source, relative))
    names = [s.student for s in subs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Two submissions are both named {duplicates[0]!r}: give each student's notebook its own file name.")
    return sorted(subs, key=lambda s: s.student)


def read_notebook(path: Path) -> tuple[dict | None, str]:
    """The notebook as a dict, or ``(None, reason)`` when it is not a readable notebook."""
    size = path.stat().st_size
    if size > MAX_NOTEBOOK_BYTES:
        return None, f"the file is {size >> 20} MB, more than the {MAX_NOTEBOOK_BYTES >> 20} MB a notebook may be"
    try:
        data = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        return None, f"not a valid notebook: the file is not valid JSON ({str(error)[:80]})"
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        return None, "not a valid notebook: no list of cells"
    return data, ""


def chapter_of(notebook: dict, forced: str | None) -> tuple[str | None, list[str]]:
    """The chapter to grade against and notes: ``--chapter`` wins over the notebook's metadata."""
    notes: list[str] = []
    meta = notebook.get("metadata", {}).get("slm_course") if isinstance(notebook.get("metadata"), dict) else None
    meta = meta if isinstance(meta, dict) else {}
    stamped = meta.get("chapter")
    stamped = f"{int(stamped):02d}" if isinstance(stamped, (str, int)) and str(stamped).isdigit() else None
    version = meta.get("course_version")
    if version and version != slm_course.__version__:
        notes.append(f"made with course version {version}, graded with {slm_course.__version__}")
    if forced is not None:
        if stamped and stamped != forced:
            notes.append(f"the notebook says chapter {stamped}; graded as chapter {forced} (--chapter)")
        return forced, notes
    return stamped, notes
