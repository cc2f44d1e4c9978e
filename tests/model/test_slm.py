"""Tests for slm_course.model.slm: the model's contract, its switches and its errors."""
from __future__ import annotations

import itertools

import pytest
import torch

from slm_course.model import SLM, SLMConfig


def tiny(**changes) -> SLMConfig:
    return SLMConfig.from_name("tiny", vocab_size=97, context_length=16, d_model=32, n_layers=2, **changes)


SWITCHES = list(itertools.product(["layernorm", "rmsnorm"], ["learned", "rope"], ["gelu", "swiglu"], [4, 2], [False, True]))


@pytest.mark.parametrize("norm, positions, mlp, n_kv_heads, tie", SWITCHES)
def test_every_switch_combination_runs_and_learns(norm, positions, mlp, n_kv_heads, tie):
    torch.manual_seed(0)
    model = SLM(tiny(norm=norm, positions=positions, mlp=mlp, n_kv_heads=n_kv_heads, tie_embeddings=tie))
    idx = torch.randint(0, 97, (2, 10))
    logits = model(idx)
    assert logits.shape == (2, 10, 97) and logits.dtype == torch.float32
    model.loss(idx, idx).backward()
    assert all(p.grad is not None for p in model.parameters())
    assert (model.pos_emb is None) == (positions == "rope")


def test_return_attention_contract_and_paths_agree():
    torch.manual_seed(0)
    model = SLM(tiny(n_kv_heads=2, positions="rope")).eval()
    idx = torch.randint(0, 97, (3, 9))
    logits, attentions = model(idx, return_attention=True)
    assert isinstance(attentions, list) and len(attentions) == 2
    for weights in attentions:
        assert weights.shape == (3, 4, 9, 9)
        torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4, 9))
        assert torch.all(weights.triu(diagonal=1) == 0)
    torch.testing.assert_close(logits, model(idx), atol=1e-5, rtol=1e-5)  # explicit path == fused path


@pytest.mark.parametrize("positions", ["learned", "rope"])
def test_logits_do_not_see_the_future(positions):
    torch.manual_seed(0)
    model = SLM(tiny(positions=positions)).eval()
    idx = torch.randint(0, 97, (1, 12))
    changed = idx.clone()
    changed[0, 7] = (idx[0, 7] + 1) % 97
    a, b = model(idx), model(changed)
    torch.testing.assert_close(a[:, :7], b[:, :7])
    assert not torch.allclose(a[:, 7:], b[:, 7:])


def test_tied_embeddings_share_one_matrix():
    tied, untied = SLM(tiny(tie_embeddings=True)), SLM(tiny(tie_embeddings=False))
    assert tied.lm_head.weight is tied.tok_emb.weight
    assert untied.num_parameters() - tied.num_parameters() == 97 * 32


def test_dropout_only_in_training():
    torch.manual_seed(0)
    model = SLM(tiny(dropout=0.5))
    idx = torch.randint(0, 97, (2, 8))
    model.eval()
    torch.testing.assert_close(model(idx), model(idx))
    model.train()
    assert not torch.allclose(model(idx), model(idx))


def test_untrained_loss_is_near_uniform():
    # Small initial weights give nearly uniform predictions: cross-entropy ≈ ln(vocab).
    torch.manual_seed(0)
    model = SLM(tiny()).eval()
    idx, targets = torch.randint(0, 97, (2, 4, 16))
    assert abs(model.loss(idx, targets).item() - torch.log(torch.tensor(97.0)).item()) < 0.2


def test_builds_on_meta_without_memory():
    with torch.device("meta"):
        model = SLM(SLMConfig.from_name("llama3-8b"))
    assert model.tok_emb.weight.is_meta
    logits = model(torch.zeros(1, 4, dtype=torch.long, device="meta"))
    assert logits.shape == (1, 4, 128256)


def test_sequence_longer_than_context():
    model = SLM(tiny())
    with pytest.raises(ValueError, match="context is 16"):
        model(torch.zeros(1, 17, dtype=torch.long))


@pytest.mark.parametrize("bad", [97, -1])
def test_token_ids_outside_vocabulary(bad):
    model = SLM(tiny())
    idx = torch.zeros(1, 4, dtype=torch.long)
    idx[0, 2] = bad
    with pytest.raises(ValueError, match=f"token id {bad} is outside the vocabulary"):
        model(idx)


def test_wrong_input_types_and_shapes():
    model = SLM(tiny())
    with pytest.raises(TypeError, match="integer tensor .*idx.long"):
        model(torch.zeros(1, 4))
    with pytest.raises(TypeError, match="integer tensor"):
        model(torch.zeros(1, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="unsqueeze"):
        model(torch.zeros(4, dtype=torch.long))
    with pytest.raises(TypeError, match="torch.Tensor"):
        model([[1, 2, 3]])
    with pytest.raises(TypeError, match="SLMConfig"):
        SLM({"d_model": 8})


@pytest.mark.parametrize("dtype", [torch.int32, torch.int16, torch.int8, torch.uint8])
def test_any_integer_dtype_gives_the_int64_logits(dtype):
    torch.manual_seed(0)
    model = SLM(tiny()).eval()
    idx = torch.randint(0, 97, (2, 5))
    torch.testing.assert_close(model(idx.to(dtype)), model(idx), rtol=0, atol=0)


def test_counting_only_families_are_refused():
    with pytest.raises(ValueError, match="count_parameters"):
        SLM(SLMConfig.from_name("mixtral-8x7b"))


def test_bfloat16_model_runs_and_stays_close():
    torch.manual_seed(0)
    model = SLM(tiny(norm="rmsnorm", positions="rope", mlp="swiglu", n_kv_heads=2)).eval()
    idx = torch.randint(0, 97, (2, 16))
    reference = model(idx)
    half = model.to(torch.bfloat16)
    logits = half(idx)
    assert logits.dtype == torch.bfloat16
    torch.testing.assert_close(logits.float(), reference, atol=0.05, rtol=0.05)


def test_rope_angles_offset_matches_the_full_table():
    model = SLM(tiny(positions="rope"))
    cos_all, sin_all = model.rope_angles(12, torch.device("cpu"))
    cos_tail, sin_tail = model.rope_angles(4, torch.device("cpu"), start=8)
    torch.testing.assert_close(cos_tail, cos_all[8:])
    torch.testing.assert_close(sin_tail, sin_all[8:])
