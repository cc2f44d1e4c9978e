"""Tests for slm_course.model.io: save and load a model, refuse mismatched or damaged files."""
from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import save_file

from slm_course.model import SLM, SLMConfig
from slm_course.model.io import load_model, save_model


def small(**changes) -> SLM:
    torch.manual_seed(0)
    fields = dict(vocab_size=61, context_length=16, d_model=32, n_layers=2) | changes
    return SLM(SLMConfig.from_name("tiny", **fields)).eval()


@pytest.mark.parametrize("tie", [True, False])
def test_round_trip_gives_the_same_logits_and_keeps_ties(tmp_path, tie):
    model = small(tie_embeddings=tie, positions="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2)
    save_model(model, tmp_path / "m")
    assert sorted(os.listdir(tmp_path)) == ["m"]  # no staging folder left behind
    loaded = load_model(tmp_path / "m")
    assert loaded.config == model.config and not loaded.training
    idx = torch.randint(0, 61, (2, 9))
    assert torch.equal(loaded(idx), model(idx))
    assert (loaded.lm_head.weight is loaded.tok_emb.weight) == tie


def test_saving_again_replaces_the_folder(tmp_path):
    save_model(small(), tmp_path / "m")
    other = small(d_model=48)
    save_model(other, tmp_path / "m")
    assert load_model(tmp_path / "m").config.d_model == 48
    assert sorted(os.listdir(tmp_path)) == ["m"]


def test_weights_from_another_config_are_refused(tmp_path):
    save_model(small(), tmp_path / "a")
    save_model(small(d_model=48), tmp_path / "b")
    os.replace(tmp_path / "b" / "model.safetensors", tmp_path / "a" / "model.safetensors")
    meta = json.loads((tmp_path / "a" / "config.json").read_text())
    meta.pop("weights_bytes")
    (tmp_path / "a" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="do not fit the config.*wrong shapes"):
        load_model(tmp_path / "a")
    save_file({"x": torch.zeros(2)}, str(tmp_path / "a" / "model.safetensors"))
    with pytest.raises(ValueError, match="missing.*unexpected"):
        load_model(tmp_path / "a")


def test_a_truncated_or_missing_file_is_refused(tmp_path):
    save_model(small(), tmp_path / "m")
    path = tmp_path / "m" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="truncated"):
        load_model(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text())
    meta.pop("weights_bytes")  # without the recorded size, safetensors itself notices
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="truncated or damaged"):
        load_model(tmp_path / "m")
    path.unlink()
    with pytest.raises(ValueError, match="missing"):
        load_model(tmp_path / "m")
    with pytest.raises(TypeError, match="SLM"):
        save_model(torch.nn.Linear(2, 2), tmp_path / "x")
