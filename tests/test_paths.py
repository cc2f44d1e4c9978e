"""``publish_folder``: a cache folder appears whole or not at all, with checksums a later load verifies."""
from __future__ import annotations

import pytest

from slm_course import paths
from slm_course.paths import CHECKSUMS, cache_damage, cache_is_intact, publish_folder


def test_a_folder_is_published_whole_and_replaces_an_older_copy(tmp_path):
    target = tmp_path / "cache"
    (target / "old").mkdir(parents=True)
    publish_folder(target, lambda staging: (staging / "new.txt").write_text("x"), lambda f: (f / "new.txt").exists())
    assert sorted(p.name for p in target.iterdir()) == [CHECKSUMS, "new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["cache"]  # no staging folder left


def test_an_interrupted_fill_leaves_the_old_copy_and_no_staging(tmp_path):
    target = tmp_path / "cache"
    (target / "old").mkdir(parents=True)

    def fill(staging):
        (staging / "half.txt").write_text("x")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        publish_folder(target, fill, lambda f: True)
    assert [p.name for p in target.iterdir()] == ["old"] and [p.name for p in tmp_path.iterdir()] == ["cache"]


def _published(tmp_path):
    def fill(staging):
        (staging / "model.bin").write_bytes(bytes(range(256)) * 64)
        (staging / "sub").mkdir()
        (staging / "sub" / "config.json").write_text("{}")
    return publish_folder(tmp_path / "cache", fill, lambda f: True)


def test_an_intact_folder_passes_and_is_hashed_once_per_process(tmp_path, monkeypatch):
    folder = _published(tmp_path)
    assert cache_damage(folder) is None
    hashed = []
    real = paths.file_sha256
    monkeypatch.setattr(paths, "file_sha256", lambda p: hashed.append(p) or real(p))
    assert cache_damage(folder) is None and hashed == []  # same sizes and times: not hashed again


@pytest.mark.parametrize("damage, said", [
    (lambda f: f.write_bytes(f.read_bytes()[:100] + b"\xff" + f.read_bytes()[101:]), "model.bin has changed"),
    (lambda f: f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 2]), "model.bin is 8,192 bytes, not 16,384"),
    (lambda f: f.unlink(), "model.bin is missing"),
    (lambda f: (f.parent / CHECKSUMS).unlink(), "older version"),
])
def test_a_damaged_folder_is_reported_with_the_file(tmp_path, capsys, damage, said):
    folder = _published(tmp_path)
    assert cache_damage(folder) is None
    damage(folder / "model.bin")
    assert said in cache_damage(folder)
    assert not cache_is_intact(folder, "test model")
    err = capsys.readouterr().err
    assert "the cached test model" in err and said in err and "Rebuilding it" in err


def test_a_flipped_byte_in_a_nested_file_is_found(tmp_path):
    folder = _published(tmp_path)
    (folder / "sub" / "config.json").write_text("[]")  # same size, other bytes
    assert "sub/config.json has changed" in cache_damage(folder)
