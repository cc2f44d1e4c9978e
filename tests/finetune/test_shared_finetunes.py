"""Chapter 8's cached finetunes: built once, reused, rebuilt on a new recipe, never left half-written."""
from __future__ import annotations

import pytest
import torch

from slm_course.finetune import shared_finetunes as S


@pytest.fixture
def short(monkeypatch, tmp_path):
    """The real recipe at a few steps, cached under a temporary folder."""
    real = S.finetunes_recipe()
    recipe = {**real, "sft": {**real["sft"], "steps": 3}, "specialists": {**real["specialists"], "steps": 2}}
    monkeypatch.setattr(S, "finetunes_recipe", lambda: recipe)
    monkeypatch.setattr(S, "models_dir", lambda: tmp_path)
    return recipe


def test_builds_three_models_that_differ_and_reuses_the_cache(short, monkeypatch):
    folder = S.build_instruct_finetunes()
    models = S.instruct_finetunes()
    assert set(models) == {"sft", "a", "b"} and all(not m.training for m in models.values())
    sft, a, b = (models[n] for n in ("sft", "a", "b"))
    assert not torch.equal(sft.blocks[0].mlp.fc.weight, a.blocks[0].mlp.fc.weight)
    assert not torch.equal(a.blocks[0].mlp.fc.weight, b.blocks[0].mlp.fc.weight)
    assert sft.lm_head.weight is sft.tok_emb.weight  # the tie survives the save
    info = S.instruct_finetunes_info()
    assert info["recipe"] == short and len(info["train_loss"]["sft"]) == 3 and len(info["train_loss"]["a"]) == 2

    from slm_course.finetune import sft as sft_module

    def no_training(*args, **kwargs):
        raise AssertionError("a cached build must not train again")

    monkeypatch.setattr(sft_module, "finetune", no_training)
    assert S.build_instruct_finetunes() == folder


def test_another_recipe_rebuilds(short, monkeypatch, tmp_path):
    S.build_instruct_finetunes()
    changed = {**short, "sft": {**short["sft"], "lr": 1e-3}}
    monkeypatch.setattr(S, "finetunes_recipe", lambda: changed)
    assert S._cached(S.instruct_finetunes_dir()) is None  # stale: the recipe differs
    S.build_instruct_finetunes()
    assert S.instruct_finetunes_info()["recipe"] == changed


def test_an_interrupted_build_leaves_nothing_behind(short, monkeypatch, tmp_path):
    from slm_course.model import io

    calls = []

    def failing_save(model, folder):
        calls.append(folder)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the learner stopped the kernel mid-save
        return real_save(model, folder)

    real_save = io.save_model
    monkeypatch.setattr(io, "save_model", failing_save)
    with pytest.raises(KeyboardInterrupt):
        S.build_instruct_finetunes()
    assert list(tmp_path.iterdir()) == []  # no cache, no staging folder
    monkeypatch.setattr(io, "save_model", real_save)
    assert S._cached(S.build_instruct_finetunes()) is not None


def test_a_damaged_cache_is_rebuilt_with_a_note(short, capsys):
    folder = S.build_instruct_finetunes()
    before = S.instruct_finetunes()["a"].state_dict()
    weights = folder / "a" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x40  # one flipped bit inside the last tensor's bytes
    weights.write_bytes(bytes(data))
    capsys.readouterr()
    after = S.instruct_finetunes()["a"].state_dict()
    note = capsys.readouterr().err
    assert "the cached chapter 8 finetunes" in note and "a/model.safetensors has changed" in note
    assert all(torch.equal(before[k], after[k]) for k in before)  # rebuilt deterministically, not the flipped copy
    assert "Rebuilding" not in (S.build_instruct_finetunes() and capsys.readouterr().err)  # and intact again
