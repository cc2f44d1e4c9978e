"""LoRA (chapter 7): unchanged at step 0, only A and B train, merging, adapters on their own, peft parity."""
import pytest
import torch
import torch.nn.functional as F
import warnings

from torch import nn

from slm_course.finetune.lora import (
    LoRALinear, apply_lora, load_adapter, lora_layers, lora_state_dict, merge_lora, save_adapter,
    trainable_parameters,
)
from slm_course.model import SLM, SLMConfig

LLAMA_TINY = dict(vocab_size=101, context_length=32, d_model=48, n_layers=2, n_heads=6, n_kv_heads=2, d_ff=80,
                  norm="rmsnorm", positions="rope", mlp="swiglu", tie_embeddings=True, qkv_bias=False, bias=False)


def tiny_slm(seed=0, **overrides):
    torch.manual_seed(seed)
    return SLM(SLMConfig(**{**LLAMA_TINY, **overrides})).eval()


def tokens(seed=1, shape=(2, 12), vocab=101):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


def test_lora_linear_is_the_base_at_step_zero_and_alpha_over_r():
    torch.manual_seed(0)
    base = nn.Linear(6, 5)
    layer = LoRALinear(base, r=2, alpha=8)
    x = torch.randn(3, 4, 6)
    assert torch.equal(layer(x), base(x))  # B = 0: exactly the original
    assert layer.scaling == 4.0 and layer.lora_A.shape == (2, 6) and layer.lora_B.shape == (5, 2)
    with torch.no_grad():
        layer.lora_B.normal_()
    expected = base(x) + (8 / 2) * x @ layer.lora_A.t() @ layer.lora_B.t()
    torch.testing.assert_close(layer(x), expected)
    assert not base.weight.requires_grad and layer.lora_A.requires_grad and layer.lora_B.requires_grad


@pytest.mark.parametrize("bad", [dict(r=0), dict(r=-1), dict(r=2.0), dict(alpha=0), dict(alpha="16")])
def test_lora_linear_rejects_bad_settings(bad):
    with pytest.raises(ValueError):
        LoRALinear(nn.Linear(6, 5), **{"r": 2, "alpha": 4, **bad})
    with pytest.raises(TypeError):
        LoRALinear(nn.Conv1d(2, 2, 1), r=1)


def test_apply_lora_unchanged_model_and_trainable_share():
    model = tiny_slm()
    idx = tokens()
    before = model(idx)
    names = apply_lora(model, ["q_proj", "v_proj"], r=4, alpha=8)
    assert names == [f"blocks.{i}.attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    assert torch.equal(model(idx), before)
    trainable, total = trainable_parameters(model)
    # per layer: A (4, 48) + B (out, 4); q out = 48, v out = 2 kv heads × 8 = 16
    assert trainable == 2 * (4 * 48 + 48 * 4 + 4 * 48 + 16 * 4)
    assert total == SLM(SLMConfig(**LLAMA_TINY)).num_parameters() + trainable
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        f"{name}.lora_{ab}" for name in names for ab in "AB"}
    with pytest.raises(ValueError, match="already has LoRA"):
        apply_lora(model, ["q_proj"])
    with pytest.raises(ValueError, match="no linear layer matches"):
        apply_lora(tiny_slm(), ["query"])


def test_apply_lora_seed_makes_a_repeat():
    a, b = tiny_slm(), tiny_slm()
    apply_lora(a, ["q_proj"], seed=3)
    apply_lora(b, ["q_proj"], seed=3)
    for k, v in lora_state_dict(a).items():
        assert torch.equal(v, lora_state_dict(b)[k])


def train_a_little(model, steps=5, seed=0):
    """A few AdamW steps (weight decay on) over every parameter: frozen ones have no grad, so they stay."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    model.train()
    for step in range(steps):
        x = tokens(seed=seed + step, shape=(4, 16))
        loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


def test_training_changes_only_the_adapter_and_merge_matches():
    model = tiny_slm()
    original = {k: v.clone() for k, v in model.state_dict().items()}
    apply_lora(model, ["q_proj", "k_proj", "v_proj", "out_proj", "gate", "up", "down"], r=4, alpha=16)
    idx = tokens()
    train_a_little(model)
    state = model.state_dict()
    for key, value in original.items():  # base weights live at <layer>.base.weight once wrapped
        wrapped = key.replace(".weight", ".base.weight")
        assert torch.equal(state[key] if key in state else state[wrapped], value), key
    assert any(v.abs().sum() > 0 for k, v in lora_state_dict(model).items() if k.endswith("lora_B"))
    adapted = model(idx)
    assert not torch.allclose(adapted, tiny_slm()(idx), atol=1e-4)  # training did change the outputs
    merge_lora(model)
    assert not lora_layers(model) and all(not p.requires_grad for p in model.parameters())
    torch.testing.assert_close(model(idx), adapted, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no LoRA layers"):
        merge_lora(model)


def test_adapter_saved_alone_and_loaded(tmp_path):
    model = tiny_slm()
    apply_lora(model, ["q_proj", "v_proj"], r=4, alpha=8)
    train_a_little(model, steps=3)
    idx = tokens()
    expected = model(idx)
    path = save_adapter(model, tmp_path / "sub" / "adapter.safetensors")
    assert path.is_file() and not list(path.parent.glob(".*.tmp"))
    adapter_bytes = sum(v.numel() * 4 for v in lora_state_dict(model).values())
    assert adapter_bytes <= path.stat().st_size < adapter_bytes + 4096  # only A and B, plus a header
    fresh = tiny_slm()
    assert load_adapter(fresh, path) == list(lora_layers(model))
    torch.testing.assert_close(fresh(idx), expected)
    again = tiny_slm()
    apply_lora(again, ["q_proj"], r=4, alpha=8)
    with pytest.raises(ValueError, match="adapter is for layers"):
        load_adapter(again, path)
    with pytest.raises(ValueError, match="no adapter file"):
        load_adapter(tiny_slm(), tmp_path / "missing.safetensors")


@pytest.mark.parametrize("r,alpha", [(4, 8), (2, 32)])
def test_parity_with_peft(r, alpha):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    from slm_course.model.hf import slm_from_hf

    config = transformers.LlamaConfig(
        vocab_size=101, hidden_size=48, intermediate_size=80, num_hidden_layers=2, num_attention_heads=6,
        num_key_value_heads=2, max_position_embeddings=32, tie_word_embeddings=True, bos_token_id=0,
        eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    hf = transformers.LlamaForCausalLM(config).eval()
    ours = slm_from_hf(hf)
    hf_targets = ["q_proj", "v_proj", "o_proj", "down_proj"]
    ours_targets = ["q_proj", "v_proj", "out_proj", "down"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # transformers' own deprecation inside peft
        peft_model = peft.get_peft_model(hf, peft.LoraConfig(r=r, lora_alpha=alpha, target_modules=hf_targets,
                                                             lora_dropout=0.0)).eval()
    apply_lora(ours, ours_targets, r=r, alpha=alpha)
    rename = dict(zip(ours_targets, hf_targets))
    mapping = {"q_proj": "self_attn", "v_proj": "self_attn", "o_proj": "self_attn", "down_proj": "mlp"}
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, layer in lora_layers(ours).items():
            i, short = int(name.split(".")[1]), name.split(".")[-1]
            theirs = peft_model.get_submodule(f"base_model.model.model.layers.{i}.{mapping[rename[short]]}.{rename[short]}")
            assert theirs.scaling["default"] == layer.scaling == alpha / r
            layer.lora_A.copy_(torch.randn(layer.lora_A.shape, generator=generator))
            layer.lora_B.copy_(torch.randn(layer.lora_B.shape, generator=generator) * 0.1)
            theirs.lora_A["default"].weight.copy_(layer.lora_A)
            theirs.lora_B["default"].weight.copy_(layer.lora_B)
    idx = tokens(shape=(2, 16))
    expected = peft_model(input_ids=idx).logits
    torch.testing.assert_close(ours(idx), expected, rtol=1e-4, atol=1e-4)
    with peft_model.disable_adapter():
        base_logits = peft_model(input_ids=idx).logits
    assert (expected - base_logits).abs().max() > 1e-2  # the adapters really changed the logits
