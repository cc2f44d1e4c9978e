"""Input-major linear weights (``store_input_major_``, ``input_major_weights``): same model, faster one-token steps;
``generate`` decodes on private input-major copies and leaves the model as it found it."""
from __future__ import annotations

import pytest
import torch

from slm_course.generate import generate
from slm_course.model import SLM, SLMConfig
from slm_course.model.io import load_model, save_model
from slm_course.model.surgery import input_major_weights, store_input_major_


def small(**changes) -> SLM:
    torch.manual_seed(0)
    config = SLMConfig(vocab_size=97, context_length=32, d_model=32, n_layers=2, n_heads=4, d_ff=64, **changes)
    return SLM(config).eval()


LLAMA = dict(norm="rmsnorm", positions="rope", mlp="swiglu", n_kv_heads=2, bias=False, qkv_bias=False)


@pytest.mark.parametrize("changes", [{}, LLAMA], ids=["gpt2", "llama"])
def test_the_layout_changes_and_nothing_else(changes):
    model = small(**changes, tie_embeddings=True)
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    before = {id(m): (m.weight, m.weight.detach().clone()) for m in linears}
    idx = torch.randint(0, 97, (2, 12), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = model(idx)
    moved = store_input_major_(model)
    assert moved == len(linears)
    for m in linears:
        param, values = before[id(m)]
        assert m.weight is param  # the same Parameter: an optimizer holding it still updates the model
        assert torch.equal(m.weight, values) and m.weight.shape == values.shape
        assert m.weight.t().is_contiguous() and not m.weight.is_contiguous()
    assert model.lm_head.weight is model.tok_emb.weight  # the tie survives
    with torch.no_grad():
        assert torch.allclose(model(idx), logits, atol=1e-5)
    assert store_input_major_(model) == 0  # a second call moves nothing


def layout(model: torch.nn.Module) -> dict:
    """Everything state_dict() shows of each tensor: key, shape, strides, contiguity, storage and values."""
    return {key: (tuple(t.shape), t.stride(), t.is_contiguous(), t.data_ptr(), t.detach().clone())
            for key, t in model.state_dict().items()}


def assert_same_layout(before: dict, after: dict) -> None:
    assert list(before) == list(after)
    for key, (shape, stride, contiguous, pointer, values) in before.items():
        assert after[key][:4] == (shape, stride, contiguous, pointer), key
        assert torch.equal(after[key][4], values), key


@pytest.mark.parametrize("changes", [{}, LLAMA], ids=["gpt2", "llama"])
def test_generate_leaves_the_state_dict_as_it_found_it_and_matches_a_step_by_step_argmax(changes):
    model = small(**changes, tie_embeddings=True)
    before = layout(model)
    idx = torch.randint(0, 97, (1, 5), generator=torch.Generator().manual_seed(2))
    with input_major_weights(model) as swapped:  # inside: every linear reads an input-major copy
        assert swapped == len([m for m in model.modules() if isinstance(m, torch.nn.Linear)])
        assert model.blocks[0].attn.q_proj.weight.t().is_contiguous()
        assert model.lm_head.weight is model.tok_emb.weight and model.tok_emb.weight.t().is_contiguous()
    assert_same_layout(before, layout(model))
    out = generate(model, idx, 8)
    assert_same_layout(before, layout(model))
    assert all(p.is_contiguous() for p in model.parameters())
    seq = idx
    with torch.no_grad():
        for _ in range(8):
            seq = torch.cat([seq, model(seq)[:, -1:].argmax(-1)], dim=1)
    assert torch.equal(out, seq)
    with pytest.raises(ValueError, match="outside the vocabulary"):  # fails inside: the model is still restored
        with input_major_weights(model):
            generate(model, torch.tensor([[1, 500]]), 3)
    with pytest.raises(RuntimeError, match="stop here"):
        with input_major_weights(model):
            raise RuntimeError("stop here")
    assert_same_layout(before, layout(model))


def test_input_major_copies_follow_changes_to_the_weights():
    # The copies are kept between calls, and remade when a weight changed: in place (an optimizer step) or replaced.
    model = small()
    idx = torch.tensor([[1, 2, 3]])
    generate(model, idx, 2)
    with input_major_weights(model):
        kept = model.blocks[0].attn.q_proj.weight.data_ptr()
    with input_major_weights(model):
        assert model.blocks[0].attn.q_proj.weight.data_ptr() == kept  # reused, not copied again
    with torch.no_grad():
        model.blocks[0].attn.q_proj.weight.mul_(2.0)
        model.blocks[1].mlp.fc.weight = torch.nn.Parameter(torch.randn_like(model.blocks[1].mlp.fc.weight))
    with input_major_weights(model), torch.no_grad():
        assert torch.equal(model.blocks[0].attn.q_proj.weight, model.blocks[0].attn.q_proj.weight.contiguous())
        inside = model(idx)
    with torch.no_grad():
        torch.testing.assert_close(inside, model(idx), atol=1e-5, rtol=1e-5)  # the changed weights, not stale copies


def test_a_model_after_generation_saves_loads_and_trains(tmp_path):
    model = small()
    generate(model, torch.tensor([[1, 2, 3]]), 4)
    save_model(model, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    idx = torch.tensor([[4, 5, 6, 7]])
    with torch.no_grad():
        assert torch.allclose(loaded(idx), model(idx), atol=1e-5)
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    weight = model.blocks[0].mlp.fc.weight
    start = weight.detach().clone()
    loss = model.loss(idx[:, :-1], idx[:, 1:])
    loss.backward()
    optimizer.step()
    assert not torch.equal(weight, start) and weight.is_contiguous()


def test_only_cpu_float32_weights_move():
    model = small().to(torch.bfloat16)
    assert store_input_major_(model) == 0
    assert model.blocks[0].attn.q_proj.weight.is_contiguous()
