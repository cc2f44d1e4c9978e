"""Hugging Face safetensors folders ⇄ SLM: tiny random transformers GPT-2 and Llama saved, loaded,
same logits (fp32, 1e-4); and the reverse through save_hf."""
from __future__ import annotations

import pytest
import torch

from gguf_helpers import tiny_gpt2, tiny_llama
from slm_course.model import SLM, SLMConfig
from slm_course.weights.hf_files import from_hub, load_hf_folder, save_hf

transformers = pytest.importorskip("transformers")
INPUTS = [torch.randint(0, 96, (2, 20), generator=torch.Generator().manual_seed(s)) for s in range(3)]


def assert_same_logits(ours, theirs):
    with torch.no_grad():
        for idx in INPUTS:
            torch.testing.assert_close(ours(idx), theirs(idx).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("make", [lambda: tiny_gpt2(True), lambda: tiny_gpt2(False),
                                  lambda: tiny_llama(True, 2), lambda: tiny_llama(False, 1)])
def test_saved_transformers_folder_loads(tmp_path, make):
    reference = make()
    reference.save_pretrained(tmp_path / "hf")
    assert_same_logits(load_hf_folder(tmp_path / "hf"), reference)


@pytest.mark.parametrize("make", [lambda: tiny_gpt2(True), lambda: tiny_gpt2(False),
                                  lambda: tiny_llama(True, 2), lambda: tiny_llama(False, 4)])
def test_save_hf_round_trip(tmp_path, make):
    model = load_hf_folder_from(make(), tmp_path)
    save_hf(model, tmp_path / "out")
    back = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
    assert_same_logits(model, back)


def load_hf_folder_from(reference, tmp_path):
    reference.save_pretrained(tmp_path / "src")
    return load_hf_folder(tmp_path / "src")


def test_save_hf_from_course_presets(tmp_path):
    torch.manual_seed(0)
    for preset, kv in (("tiny", 4), ("smollm2-135m", 2)):  # the chapter-4 model's GPT-2 layout and a Llama layout
        config = SLMConfig.from_name(preset, vocab_size=96, d_model=64, n_layers=2, context_length=64, n_heads=4,
                                     n_kv_heads=kv, d_ff=96)
        model = SLM(config).eval()
        save_hf(model, tmp_path / preset)
        assert_same_logits(model, transformers.AutoModelForCausalLM.from_pretrained(tmp_path / preset).eval())
    with pytest.raises(ValueError, match="save_hf writes GPT-2"):  # GPT-2 layout without biases
        save_hf(SLM(SLMConfig.from_name("tiny", vocab_size=96, bias=False)), tmp_path / "nobias")


def test_every_bad_key_listed_at_once(tmp_path):
    from safetensors.torch import load_file, save_file

    reference = tiny_llama(False, 2)
    reference.save_pretrained(tmp_path / "hf")
    sd = load_file(str(tmp_path / "hf" / "model.safetensors"))
    sd.pop("model.layers.0.mlp.up_proj.weight")
    sd.pop("model.norm.weight")
    sd["model.layers.1.self_attn.rotary.weight"] = torch.zeros(3)
    sd["model.layers.1.mlp.down_proj.weight"] = torch.zeros(64, 95)
    save_file(sd, str(tmp_path / "hf" / "model.safetensors"))
    with pytest.raises(ValueError) as err:
        load_hf_folder(tmp_path / "hf")
    text = str(err.value)
    assert "2 missing: blocks.0.mlp.up.weight, final_norm.weight" in text
    assert "1 unexpected: (checkpoint) layers.1.self_attn.rotary.weight" in text
    assert "blocks.1.mlp.down.weight (checkpoint shape (64, 95), model shape (64, 96))" in text


def test_missing_folder_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.json"):
        load_hf_folder(tmp_path)


@pytest.mark.network
@pytest.mark.slow
@pytest.mark.parametrize("name, kind", [("gpt2", "GPT2LMHeadModel"), ("smollm2-135m", "LlamaForCausalLM")])
def test_hub_checkpoints_match_transformers(name, kind):
    import os

    if os.environ.get("HF_HUB_OFFLINE") == "1":
        pytest.skip("HF_HUB_OFFLINE=1: the Hub is not reachable")
    from slm_course.weights.hf_files import HUB_MODELS

    model = from_hub(name)
    reference = transformers.AutoModelForCausalLM.from_pretrained(HUB_MODELS[name], dtype=torch.float32).eval()
    assert type(reference).__name__ == kind
    idx = torch.randint(0, 1000, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(model(idx), reference(idx).logits, atol=1e-3, rtol=1e-3)
