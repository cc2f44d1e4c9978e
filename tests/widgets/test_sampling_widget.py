"""The sampling explorer, driven headless: move each slider in code, check what gets drawn."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slm_course.generate import logits_to_probs
from slm_course.model import SLM, SLMConfig
from slm_course.widgets.attention import CharacterTokenizer
from slm_course.widgets.sampling import STAGES, SamplingExplorer, figure_of


@pytest.fixture()
def explorer() -> SamplingExplorer:
    tokenizer = CharacterTokenizer("hello world")
    torch.manual_seed(0)
    config = SLMConfig.from_name("tiny", vocab_size=tokenizer.vocab_size, context_length=32, d_model=32, n_layers=1)
    model = SLM(config)
    with torch.no_grad():
        model.lm_head.weight.mul_(6)  # a peaked distribution, so the filters have something to cut
    return SamplingExplorer(model, tokenizer, prompt="hello wor", show=10)


def entropy(p: np.ndarray) -> float:
    p = p[p > 0]
    return float(-(p * np.log(p)).sum())


def test_default_settings_change_nothing_and_match_generate(explorer):
    d = explorer.drawn
    assert list(d.probs) == list(STAGES) and len(d.shown) == 10 and len(d.labels) == 10
    for stage in STAGES[1:]:
        np.testing.assert_allclose(d.probs[stage], d.probs["model"], rtol=1e-5, atol=1e-7)
    assert d.kept["top-p"] == explorer.tokenizer.vocab_size
    assert explorer.image.value[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.temperature.value, explorer.top_k.value, explorer.top_p.value = 0.7, 12, 0.8
    expected = logits_to_probs(explorer._logits, 0.7, 12, 0.8).numpy()
    np.testing.assert_allclose(explorer.drawn.probs["top-p"], expected, rtol=1e-5, atol=1e-7)


def test_temperature_slider_sharpens_and_flattens(explorer):
    before = explorer.image.value
    explorer.temperature.value = 0.3
    cold = explorer.drawn.probs["temperature"]
    explorer.temperature.value = 2.0
    hot = explorer.drawn.probs["temperature"]
    assert entropy(cold) < entropy(explorer.drawn.probs["model"]) < entropy(hot)
    assert cold.argmax() == hot.argmax() == explorer.drawn.shown[0]  # the order never changes
    assert explorer.image.value != before


def test_top_k_slider_keeps_exactly_k(explorer):
    for k in (1, 5, 20):
        explorer.top_k.value = k
        d = explorer.drawn
        assert d.kept["top-k"] == k and d.kept["temperature"] == explorer.tokenizer.vocab_size
        assert set(np.flatnonzero(d.probs["top-k"])) == set(d.shown[:k]) if k <= 10 else True
        assert d.probs["top-k"].sum() == pytest.approx(1.0, abs=1e-5)
    explorer.top_k.value = 0
    assert explorer.drawn.kept["top-k"] == explorer.tokenizer.vocab_size


def test_top_p_slider_keeps_the_smallest_nucleus(explorer):
    explorer.top_p.value = 0.5
    small = explorer.drawn
    explorer.top_p.value = 0.95
    large = explorer.drawn
    assert 1 <= small.kept["top-p"] < large.kept["top-p"] <= explorer.tokenizer.vocab_size
    for d, p in ((small, 0.5), (large, 0.95)):
        order = np.argsort(-d.probs["top-k"])
        n = d.kept["top-p"]
        mass = d.probs["top-k"][order]
        assert mass[: n - 1].sum() < p <= mass[:n].sum() + 1e-6  # the last kept token is the one that reaches p
    explorer.top_p.value = 0.05
    assert explorer.drawn.kept["top-p"] == 1


def test_prompt_change_recomputes_and_snapshot_matches(explorer):
    first = explorer.drawn.probs["model"].copy()
    explorer.prompt.value = "xyz"
    assert not np.allclose(first, explorer.drawn.probs["model"])
    figure = explorer.snapshot(top_k=3)
    heights = [patch.get_height() for patch in figure.axes[2].patches]
    assert sum(h > 0 for h in heights) == 3
    explorer.prompt.value = ""
    assert explorer.drawn.probs == {} and explorer.image.value == b"" and "Type a prompt" in explorer.message.value
    with pytest.raises(ValueError, match="Type a prompt"):
        explorer.snapshot()


def test_bad_arguments(explorer):
    with pytest.raises(ValueError, match="show"):
        SamplingExplorer(explorer.model, explorer.tokenizer, show=1)
    with pytest.raises(TypeError, match="tokenizer"):
        SamplingExplorer(explorer.model, object())
    assert figure_of(explorer.drawn) is not None
