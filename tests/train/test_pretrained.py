"""The course's tiny pretrained model: its recipe, and the cached build (asset: needs the Shakespeare works)."""
import json

import pytest

from slm_course.model import SLM
from slm_course.train import pretrained


def test_recipe_is_a_fixed_token_budget(monkeypatch):
    monkeypatch.delenv("SLM_COURSE_PROFILE", raising=False)
    fast = pretrained.recipe()
    assert fast["tokens"] == fast["max_steps"] * fast["batch_size"] * fast["context_length"]
    monkeypatch.setenv("SLM_COURSE_PROFILE", "full")
    assert pretrained.recipe()["max_steps"] > fast["max_steps"]
    assert pretrained.tiny_pretrained_dir().name == "tiny-pretrained-full"


@pytest.mark.asset
@pytest.mark.slow
def test_tiny_pretrained_loads_in_eval_mode_and_learned_shakespeare(monkeypatch):
    monkeypatch.delenv("SLM_COURSE_PROFILE", raising=False)
    model = pretrained.tiny_pretrained()
    assert isinstance(model, SLM) and not model.training
    assert model.config.name == "tiny" and model.lm_head.weight is model.tok_emb.weight
    info = pretrained.tiny_pretrained_info()
    assert info["recipe"] == pretrained.recipe()
    assert info["val_bits_per_byte"] < 2.8  # untrained: ln(2048)/ln 2 / (≈3 bytes per token) ≈ 3.7
    assert pretrained.tiny_pretrained_dir().name == "tiny-pretrained"


def test_a_cache_from_another_recipe_is_not_used(tmp_path, monkeypatch):
    monkeypatch.setenv("SLM_COURSE_HOME", str(tmp_path))
    folder = pretrained.tiny_pretrained_dir()
    folder.mkdir(parents=True)
    (folder / "meta.json").write_text(json.dumps({"recipe": {**pretrained.recipe(), "max_steps": 1}}))
    assert pretrained._cached(folder) is None
    (folder / "meta.json").write_text(json.dumps({"recipe": pretrained.recipe()}))
    assert pretrained._cached(folder) is not None
