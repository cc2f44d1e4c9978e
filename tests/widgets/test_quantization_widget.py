"""The quantization explorer, driven headless: change the controls, check the drawn data and numbers."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slm_course.model import SLM, SLMConfig
from slm_course.quantize import perplexity
from slm_course.widgets.quantization import MINMAX, ROW, QuantizationExplorer, figure, quantize_every_linear


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SLM(SLMConfig.from_name("tiny", n_layers=2, vocab_size=256)).eval()


@pytest.fixture(scope="module")
def ids():
    return torch.randint(0, 256, (600,), generator=torch.Generator().manual_seed(1))


def test_default_drawing(model, ids):
    ex = QuantizationExplorer(model, ids, context_length=64)
    d = ex.drawn
    assert d.layer == "blocks.0.attn.q_proj" and d.bits == 4 and d.group_size == 32 and d.symmetric
    w = model.blocks[0].attn.q_proj.weight.detach().numpy().reshape(-1)
    assert np.array_equal(d.weights, w)
    assert len(d.grid) == 15 and np.allclose(d.grid, -d.grid[::-1])  # symmetric 4-bit: -7..7 steps
    assert d.bytes_fp32 == w.size * 4 and d.bytes_quantized == w.size / 2 + 2 * w.size / 32
    assert ex.image.value[:4] == b"\x89PNG" and "smaller" in ex.message.value
    axes = figure(d).axes
    assert len(axes) == 2 and axes[0].get_xlabel() == "weight value"
    assert len(axes[0].lines) == 15  # one vertical line per grid level


def test_controls_change_the_numbers(model, ids):
    ex = QuantizationExplorer(model, ids, context_length=64)
    rmse = {}
    for bits in (2, 4, 8):
        ex.bits.value = bits
        rmse[bits] = ex.drawn.error["rmse"]
        assert len(ex.drawn.grid) == 2**bits - 1
    assert rmse[2] > rmse[4] > rmse[8]
    ex.bits.value = 4
    small = ex.drawn.bytes_quantized
    ex.group_size.value = ROW
    assert ex.drawn.bytes_quantized < small  # fewer scales
    per_row = ex.drawn.error["rmse"]
    ex.group_size.value = 16
    assert ex.drawn.error["rmse"] < per_row  # smaller groups follow the weights closer
    ex.symmetric.value = False
    assert len(ex.drawn.grid) == 16 and 0.0 in ex.drawn.grid  # zero-point: 16 levels, zero exactly on the grid
    zero_point = ex.drawn.error["rmse"]
    ex.symmetric.value = MINMAX  # the grid Int4Linear stores: from each group's minimum to its maximum
    assert len(ex.drawn.grid) == 16 and ex.drawn.error["rmse"] <= zero_point
    w = model.blocks[0].attn.q_proj.weight.detach().reshape(-1, 16)
    # the widest group's minimum, kept as float16 as Int4Linear and GGUF's Q4_1 store it
    assert any((ex.drawn.grid[0] == w.amin(1).half().float().numpy()).tolist())
    assert not any((ex.drawn.grid[0] == w.amin(1).numpy()).tolist())  # not the float32 minimum
    assert "min/max" in figure(ex.drawn).axes[1].get_title()
    ex.layer.value = "blocks.1.mlp.fc"
    assert ex.drawn.weights.size == model.blocks[1].mlp.fc.weight.numel()


def test_perplexity_button(model, ids):
    ex = QuantizationExplorer(model, ids, context_length=64, bits=8)
    assert ex.drawn.perplexity is None
    ex.button.click()
    p8, p_fp32 = ex.drawn.perplexity, ex.drawn.perplexity_fp32
    assert p_fp32 == pytest.approx(perplexity(model, ids, context_length=64))
    assert abs(p8 - p_fp32) / p_fp32 < 0.01 and "Perplexity" in ex.message.value
    ex.bits.value = 2
    assert ex.drawn.perplexity is None  # a new setting clears the old figure's perplexity
    assert ex.measure_perplexity() > p8
    # the original model is untouched by the copies the button quantizes
    assert ex.drawn.perplexity_fp32 == pytest.approx(perplexity(model, ids, context_length=64))


def test_quantize_every_linear_keeps_the_tie(model):
    for scheme in (True, False, MINMAX):
        q = quantize_every_linear(model, 4, 32, scheme)
        assert q.lm_head.weight is q.tok_emb.weight and not torch.equal(q.lm_head.weight, model.lm_head.weight)


def test_errors(model):
    with pytest.raises(ValueError, match="unknown layer"):
        QuantizationExplorer(model, layer="nope")
    with pytest.raises(ValueError, match="group_size"):
        QuantizationExplorer(model, group_size=48)
    ex = QuantizationExplorer(model)
    assert ex.button.disabled
    with pytest.raises(ValueError, match="eval_ids"):
        ex.measure_perplexity()
