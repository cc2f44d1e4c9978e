"""``publish_folder``: a cache folder appears whole or not at all."""
from __future__ import annotations

import pytest

from slm_course.paths import publish_folder


def test_a_folder_is_published_whole_and_replaces_an_older_copy(tmp_path):
    target = tmp_path / "cache"
    (target / "old").mkdir(parents=True)
    publish_folder(target, lambda staging: (staging / "new.txt").write_text("x"), lambda f: (f / "new.txt").exists())
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
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
