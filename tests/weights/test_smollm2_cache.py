"""The float32 SmolLM2 cache (``smollm2()``) is checked on load: a damaged copy is rebuilt from the asset.

Marked ``asset`` and ``slow``: it dequantizes the GGUF file into a temporary cache (a few seconds) twice.
"""
from __future__ import annotations

import importlib
import os

import pytest
import torch

from slm_course.assets import course_home
S = importlib.import_module("slm_course.weights.smollm2")  # the module (the package exports a function of that name)

pytestmark = [pytest.mark.asset, pytest.mark.slow]


@pytest.fixture
def fresh_home(tmp_path, monkeypatch):
    """A cache folder of its own that shares the fetched assets (read only) with the real one."""
    (tmp_path / "assets").symlink_to(course_home() / "assets", target_is_directory=True)
    S.smollm2_gguf_path()  # fetched into the real cache first, if it is not there yet
    monkeypatch.setenv("SLM_COURSE_HOME", str(tmp_path))
    return tmp_path


def _flip(path, at: int) -> None:
    with open(path, "r+b") as handle:
        handle.seek(at)
        byte = handle.read(1)
        handle.seek(at)
        handle.write(bytes([byte[0] ^ 0x7F]))


def test_a_damaged_smollm2_cache_is_rebuilt(fresh_home, capsys):
    model, _ = S.smollm2()
    expected = model.blocks[29].mlp.down.weight.clone()
    weights = S.smollm2_dir() / "model.safetensors"
    size = weights.stat().st_size
    for damage in ("a flipped byte", "half the file"):
        if damage == "a flipped byte":
            _flip(weights, size - 4)  # inside the last stored tensor
        else:
            os.truncate(weights, size // 2)
        capsys.readouterr()
        model, _ = S.smollm2()
        note = capsys.readouterr().err
        assert "the cached float32 SmolLM2" in note and "model.safetensors" in note and "Rebuilding it" in note, damage
        assert torch.equal(model.blocks[29].mlp.down.weight, expected), damage
        assert weights.stat().st_size == size
    meta = S.smollm2_dir() / "meta.json"  # a cache of the older layout (no pre-tokenizer type) is not used
    meta.write_text(meta.read_text().replace(S.FORMAT, "slm-course-smollm2/1"))
    assert not S._cached(S.smollm2_dir())
