"""Parity with ``transformers``: tiny random GPT-2 and Llama models, weights copied into SLM, same logits.

No download: the reference models are built from small configs with random weights.
"""
from __future__ import annotations

import pytest
import torch

from slm_course.model import SLM
from slm_course.model.hf import config_from_hf, convert_gpt2_state_dict, load_converted, slm_from_hf

transformers = pytest.importorskip("transformers")


def tiny_gpt2(tie: bool = True):
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=101, n_positions=32, n_embd=48, n_layer=2, n_head=4,
                                     tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # GPT-2 starts with zero biases and unit norms: make them count
        for name, param in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                param.normal_(0.0, 0.1).add_(1.0 if name.endswith("weight") else 0.0)
    return model


def tiny_llama(tie: bool = True, kv_heads: int = 2, theta: float = 500.0, eps: float = 1e-6):
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=kv_heads, max_position_embeddings=32, rms_norm_eps=eps,
        tie_word_embeddings=tie, rope_theta=theta, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name:
                param.normal_(1.0, 0.2)
            else:  # larger weights than the default init, so position and norm errors show up
                param.normal_(0.0, 0.2)
    return model


IDX = torch.randint(0, 101, (2, 20), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("tie", [True, False])
def test_gpt2_logits_match(tie):
    reference = tiny_gpt2(tie)
    model = slm_from_hf(reference)
    assert model.config.tie_embeddings == tie
    with torch.no_grad():
        torch.testing.assert_close(model(IDX), reference(IDX).logits, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("tie, kv_heads", [(True, 2), (False, 3), (True, 6), (False, 1)])
def test_llama_logits_match(tie, kv_heads):
    reference = tiny_llama(tie, kv_heads)
    model = slm_from_hf(reference)
    assert (model.config.n_kv_heads, model.config.rope_theta, model.config.norm_eps) == (kv_heads, 500.0, 1e-6)
    with torch.no_grad():
        expected = reference(IDX).logits
        torch.testing.assert_close(model(IDX), expected, atol=1e-4, rtol=1e-4)
        _, attentions = model(IDX, return_attention=True)
    assert len(attentions) == 2 and attentions[0].shape == (2, 6, 20, 20)


def test_parity_catches_a_wrong_rope_base():
    # The test above could fail: the same weights with another RoPE base give other logits.
    reference = tiny_llama()
    model = slm_from_hf(reference, rope_theta=10_000.0)
    with torch.no_grad():
        assert not torch.allclose(model(IDX), reference(IDX).logits, atol=1e-3)


def test_loader_checks_shapes_and_keys():
    reference = tiny_gpt2()
    config = config_from_hf(reference.config)
    converted = convert_gpt2_state_dict(reference.state_dict(), config)
    with pytest.raises(ValueError, match="shape"):
        load_converted(SLM(config.replace(d_ff=96)), converted)
    converted.pop("final_norm.bias")
    with pytest.raises(ValueError, match="missing"):
        load_converted(SLM(config), converted)


def test_unprefixed_gpt2_checkpoint_names():
    # GPT-2's published safetensors use names without "transformer." (chapter 6 loads them).
    reference = tiny_gpt2()
    plain = {k.removeprefix("transformer."): v for k, v in reference.state_dict().items()}
    config = config_from_hf(reference.config)
    model = load_converted(SLM(config), convert_gpt2_state_dict(plain, config)).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(IDX), reference(IDX).logits, atol=1e-4, rtol=1e-4)


def test_unsupported_architecture():
    with pytest.raises(ValueError, match="gpt2"):
        config_from_hf(transformers.BertConfig())
