"""Tests for slm_course.model.config and presets: switches, derived fields, clear errors."""
from __future__ import annotations

import pytest

from slm_course.model import PRESETS, LayerScaling, SLMConfig


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_builds_a_config(name):
    config = SLMConfig.from_name(name)
    assert config.name == name
    assert config.head_dim * config.n_heads == config.d_model
    assert config.n_heads % config.n_kv_heads == 0


def test_derived_fields():
    config = SLMConfig(vocab_size=10, context_length=8, d_model=48, n_layers=1, n_heads=6)
    assert config.head_dim == 8 and config.n_kv_heads == 6 and config.d_ff == 4 * 48
    assert config.family == "dense"
    swiglu = SLMConfig(vocab_size=10, context_length=8, d_model=48, n_layers=1, n_heads=6, mlp="swiglu")
    assert swiglu.d_ff % 64 == 0 and 2 * 48 < swiglu.d_ff < 4 * 48  # ≈ 8/3 · d_model
    assert SLMConfig.from_name("mixtral-8x7b").family == "moe"
    assert SLMConfig.from_name("openelm-270m").family == "openelm"


def test_from_name_overrides_and_is_case_insensitive():
    config = SLMConfig.from_name("TINY", vocab_size=300, n_layers=2)
    assert (config.vocab_size, config.n_layers, config.name) == (300, 2, "tiny")


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(ValueError, match="smollm2-135m"):
        SLMConfig.from_name("gpt5")


def test_width_not_divisible_by_heads():
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        SLMConfig(d_model=100, n_heads=3)


def test_heads_not_divisible_by_kv_heads():
    with pytest.raises(ValueError, match="not divisible by n_kv_heads"):
        SLMConfig(d_model=96, n_heads=6, n_kv_heads=4)


@pytest.mark.parametrize("field, value", [("norm", "batchnorm"), ("positions", "alibi"), ("mlp", "relu")])
def test_unknown_switch_value(field, value):
    with pytest.raises(ValueError, match=field):
        SLMConfig(**{field: value})


def test_bad_sizes_and_experts():
    with pytest.raises(ValueError, match="positive"):
        SLMConfig(n_layers=0)
    with pytest.raises(ValueError, match="n_experts_active"):
        SLMConfig(n_experts=2, n_experts_active=3)
    with pytest.raises(ValueError, match="even"):
        SLMConfig(d_model=12, n_heads=4, positions="rope")  # head_dim 3


@pytest.mark.parametrize(
    "changes, error, words",
    [
        (dict(d_ff=0), ValueError, "d_ff must be a positive"),
        (dict(d_ff=-4), ValueError, "d_ff must be a positive"),
        (dict(d_ff=2.5), TypeError, "d_ff must be a whole number"),
        (dict(norm_eps=0.0), ValueError, "norm_eps must be a positive number"),
        (dict(norm_eps=-1e-5), ValueError, "norm_eps must be a positive number"),
        (dict(rope_theta=0), ValueError, "rope_theta must be a positive number"),
        (dict(rope_theta=-10_000.0), ValueError, "rope_theta must be a positive number"),
        (dict(n_kv_heads=True), TypeError, "n_kv_heads must be a whole number"),
        (dict(n_kv_heads=0), ValueError, "n_kv_heads must be a positive"),
        (dict(n_heads=2.0), TypeError, "n_heads must be a whole number"),
        (dict(n_experts=0), ValueError, "n_experts must be a positive"),
    ],
)
def test_impossible_values_are_refused_with_a_sentence(changes, error, words):
    with pytest.raises(error, match=words):
        SLMConfig(**changes)


def test_replace_shares_the_default_width_rule():
    # The width a fresh config derives is the one replace() re-derives (one rule, two uses).
    for d_model, mlp in [(128, "gelu"), (128, "swiglu"), (768, "swiglu"), (96, "swiglu")]:
        fresh = SLMConfig(d_model=d_model, n_heads=4, mlp=mlp)
        replaced = SLMConfig(n_heads=4).replace(d_model=d_model, mlp=mlp)
        assert replaced.d_ff == fresh.d_ff
    assert SLMConfig(d_model=768, n_heads=12, mlp="swiglu").d_ff == 2048  # 8/3 · 768 exactly, no rounding


def test_dict_round_trip():
    for name in ("tiny", "smollm2-135m", "openelm-270m", "mixtral-8x7b"):
        config = SLMConfig.from_name(name)
        again = SLMConfig.from_dict(config.to_dict())
        assert again == config
    assert isinstance(SLMConfig.from_dict(SLMConfig.from_name("openelm-270m").to_dict()).layer_scaling, LayerScaling)


def test_replace_recomputes_derived_fields():
    config = SLMConfig.from_name("tiny")
    wider = config.replace(d_model=256, n_heads=8)
    assert (wider.head_dim, wider.n_kv_heads, wider.d_ff) == (32, 8, 1024)
    assert config.d_model == 128  # the original is untouched
    gqa = SLMConfig.from_name("smollm2-135m").replace(n_layers=2)
    assert gqa.n_kv_heads == 3 and gqa.d_ff == 1536


def test_replace_rederives_defaults_but_keeps_explicit_values():
    tiny = SLMConfig.from_name("tiny")
    assert tiny.replace(mlp="swiglu").d_ff == 384  # ≈ 8/3 · 128, rounded up to a multiple of 64
    assert tiny.replace(mlp="swiglu", d_ff=100).d_ff == 100
    llama = SLMConfig.from_name("llama3-8b")
    assert llama.replace(mlp="gelu").d_ff == 14336  # a width other than the default stays
    assert llama.replace(n_heads=16).n_kv_heads == 8  # grouped-query attention stays grouped
    assert SLMConfig.from_name("gpt2-124m").replace(n_heads=16).n_kv_heads == 16  # multi-head stays multi-head
