"""Tests for slm_course.model.counting: meta-device counts, per-family formulas, published sizes, memory.

Three independent references: models we build and allocate (small presets), the same architectures
built by ``transformers`` on the meta device from their published hyper-parameters (typed here, not
read from our presets), and the sizes the model authors publish.
"""
from __future__ import annotations

import pytest
import torch

from slm_course.model import (
    PRESETS,
    PUBLISHED_PARAMETERS,
    SLM,
    LayerScaling,
    SLMConfig,
    analytic_parameters,
    count_parameters,
    dense_parameters,
    kv_cache_bytes,
    memory_bytes,
    memory_table,
    moe_parameters,
    openelm_layers,
    openelm_parameters,
    plot_memory,
)
from slm_course.model.counting import RUNTIME_OVERHEAD_BYTES, GiB, memory_needed
from slm_course.model.presets import (
    LAYOUT_DIFFERENCES,
    NAMEPLATE_ACTIVE_NON_EMBEDDING,
    NAMEPLATE_ACTIVE_PARAMETERS,
    NAMEPLATE_PARAMETERS,
    PUBLISHED_ACTIVE_PARAMETERS,
    SURVEYED,
)


def small(**changes) -> SLMConfig:
    fields = dict(vocab_size=61, context_length=12, d_model=24, n_layers=3, n_heads=6)
    return SLMConfig(**{**fields, **changes})


@pytest.mark.parametrize(
    "changes",
    [{}, {"tie_embeddings": True}, {"qkv_bias": True, "bias": True},
     {"norm": "rmsnorm", "positions": "rope", "mlp": "swiglu", "n_kv_heads": 2},
     {"norm": "rmsnorm", "mlp": "swiglu", "n_kv_heads": 3, "tie_embeddings": True, "bias": True, "d_ff": 40}],
)
def test_meta_count_and_dense_formula_equal_an_allocated_model(changes):
    config = small(**changes)
    built = sum(p.numel() for p in SLM(config).parameters())
    assert count_parameters(config) == built
    assert dense_parameters(config) == built


def test_tiny_preset_is_counted_exactly():
    config = SLMConfig.from_name("tiny")
    assert count_parameters(config) == SLM(config).num_parameters() == dense_parameters(config)


def test_gpt2_124m_with_tied_head():
    assert count_parameters(SLMConfig.from_name("gpt2-124m")) == 124_439_808
    assert count_parameters(SLMConfig.from_name("gpt2-124m", tie_embeddings=False)) == 124_439_808 + 50257 * 768


@pytest.mark.parametrize("name", list(PUBLISHED_PARAMETERS))
def test_published_sizes_exactly(name):
    assert count_parameters(SLMConfig.from_name(name)) == PUBLISHED_PARAMETERS[name]


@pytest.mark.parametrize("name", list(NAMEPLATE_PARAMETERS))
def test_counts_round_to_the_model_card_figure(name):
    figure, unit = NAMEPLATE_PARAMETERS[name]
    if name in LAYOUT_DIFFERENCES:  # the card rounds the released count, not our layout's
        released = LAYOUT_DIFFERENCES[name][0]
        assert abs(released - figure) < unit, (name, released)
        return
    counted = count_parameters(SLMConfig.from_name(name))
    assert abs(counted - figure) <= unit / 2, f"{name}: {counted:,} does not round to {figure:,.0f}"


def test_mixtral_total_and_active():
    config = SLMConfig.from_name("mixtral-8x7b")
    total, active = moe_parameters(config)
    assert count_parameters(config) == total and count_parameters(config, active=True) == active
    assert active == PUBLISHED_ACTIVE_PARAMETERS["mixtral-8x7b"]
    figure, unit = NAMEPLATE_ACTIVE_PARAMETERS["mixtral-8x7b"]
    assert abs(active - figure) <= unit / 2
    # 8 experts held, 2 used; attention, norms, routers and embeddings are shared by all:
    expert = 3 * 4096 * 14336  # gate, up, down
    assert total - active == 32 * (8 - 2) * expert


def test_formulas_agree_where_the_switches_express_them():
    # One expert and no router: the MoE formula is the dense one, and both match a built model.
    dense = small(norm="rmsnorm", positions="rope", mlp="swiglu", n_kv_heads=2)
    assert moe_parameters(dense) == (dense_parameters(dense), dense_parameters(dense))
    assert analytic_parameters(dense) == SLM(dense).num_parameters()
    # OpenELM with constant multipliers and no query/key norms is a plain dense model.
    scaling = LayerScaling(qkv_multipliers=(1.0, 1.0), ffn_multipliers=(2.0, 2.0), queries_per_kv_head=2,
                           ffn_divisor=16, qk_norm=False)
    elm = small(norm="rmsnorm", positions="rope", mlp="swiglu", n_heads=4, layer_scaling=scaling)
    (n_heads, n_kv, d_ff), *_ = openelm_layers(elm)
    assert (n_heads, n_kv, d_ff) == (4, 2, 48)
    plain = small(norm="rmsnorm", positions="rope", mlp="swiglu", n_heads=n_heads, n_kv_heads=n_kv, d_ff=d_ff)
    assert openelm_parameters(elm) == SLM(plain).num_parameters()
    with_qk_norm = small(norm="rmsnorm", positions="rope", mlp="swiglu", n_heads=4,
                         layer_scaling=LayerScaling(**{**scaling.__dict__, "qk_norm": True}))
    assert openelm_parameters(with_qk_norm) - openelm_parameters(elm) == 3 * 2 * 6  # layers × (q, k) × head_dim


def test_openelm_270m_layer_shapes():
    # Published OpenELM-270M: 12, 16 then 20 query heads of width 64, four queries per key/value head.
    layers = openelm_layers(SLMConfig.from_name("openelm-270m"))
    assert [h for h, _, _ in layers] == [12] * 5 + [16] * 7 + [20] * 4
    assert all(h == 4 * kv for h, kv, _ in layers)
    assert layers[0][2] == 768 and layers[-1][2] == 5120  # 0.5 × 1280 … 4.0 × 1280
    assert all(d_ff % 256 == 0 for _, _, d_ff in layers)


HF_SHAPES = {  # published hyper-parameters, typed independently of our presets
    "gpt2-124m": ("GPT2LMHeadModel", "GPT2Config", {}),
    "smollm2-135m": ("LlamaForCausalLM", "LlamaConfig", dict(
        vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
        num_attention_heads=9, num_key_value_heads=3, tie_word_embeddings=True)),
    "llama3-8b": ("LlamaForCausalLM", "LlamaConfig", dict(
        vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)),
    "phi3-mini": ("Phi3ForCausalLM", "Phi3Config", dict(
        vocab_size=32064, hidden_size=3072, intermediate_size=8192, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=32, tie_word_embeddings=False)),
    "gemma-2b": ("GemmaForCausalLM", "GemmaConfig", dict(
        vocab_size=256000, hidden_size=2048, intermediate_size=16384, num_hidden_layers=18,
        num_attention_heads=8, num_key_value_heads=1, head_dim=256, tie_word_embeddings=True)),
    "mixtral-8x7b": ("MixtralForCausalLM", "MixtralConfig", dict(
        vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
        num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2,
        tie_word_embeddings=False)),
    "granite-3.1-2b": ("GraniteForCausalLM", "GraniteConfig", dict(
        vocab_size=49155, hidden_size=2048, intermediate_size=8192, num_hidden_layers=40,
        num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=True)),
    "granite-3.0-1b-a400m": ("GraniteMoeForCausalLM", "GraniteMoeConfig", dict(
        vocab_size=49155, hidden_size=1024, intermediate_size=512, num_hidden_layers=24,
        num_attention_heads=16, num_key_value_heads=8, num_local_experts=32, num_experts_per_tok=8,
        tie_word_embeddings=True)),
    "granite-3.1-3b-a800m": ("GraniteMoeForCausalLM", "GraniteMoeConfig", dict(
        vocab_size=49155, hidden_size=1536, intermediate_size=512, num_hidden_layers=32,
        num_attention_heads=24, num_key_value_heads=8, num_local_experts=40, num_experts_per_tok=8,
        tie_word_embeddings=True)),
}


@pytest.mark.parametrize("name", list(HF_SHAPES))
def test_counts_equal_transformers_models_built_on_meta(name):
    transformers = pytest.importorskip("transformers")
    model_class, config_class, fields = HF_SHAPES[name]
    with torch.device("meta"):
        reference = getattr(transformers, model_class)(getattr(transformers, config_class)(**fields))
    assert count_parameters(SLMConfig.from_name(name)) == sum(p.numel() for p in reference.parameters())


def test_memory_per_precision():
    n = count_parameters(SLMConfig.from_name("gpt2-124m"))
    assert memory_bytes(n, "fp32") == 4 * n == 497_759_232
    assert memory_bytes(n, "int4") == n / 2 + 2 * n / 32  # 4 bits per weight + an fp16 scale per 32
    with pytest.raises(ValueError, match="fp32, bf16, int8, int4"):
        memory_bytes(n, "fp8")
    rows = {row["name"]: row for row in memory_table(["llama3-8b", "mixtral-8x7b"])}
    assert rows["llama3-8b"]["bf16"] == 2 * 8_030_261_248 / 2**30  # in GiB: ≈ 14.96
    assert rows["mixtral-8x7b"]["int4"] > 16  # all experts must be held, even at 4 bits
    assert rows["mixtral-8x7b"]["active"] < rows["mixtral-8x7b"]["parameters"]


def test_memory_needed_adds_cache_and_overhead():
    llama = SLMConfig.from_name("llama3-8b")
    cache = 2048 * 128 * 1024  # 2,048 tokens × 128 KiB per token in bf16
    assert memory_needed(llama, "bf16") == 2 * 8_030_261_248 + cache + RUNTIME_OVERHEAD_BYTES
    assert memory_needed(llama, "bf16", tokens=0, overhead=0) == memory_bytes(8_030_261_248, "bf16")
    assert RUNTIME_OVERHEAD_BYTES == GiB == 2**30


def test_laptop_verdicts_in_binary_units():
    # An "8 GB" GPU holds 8 GiB. Llama 3 8B's int8 weights alone (7.48 GiB) would fit, but with the
    # 2,048-token cache and the 1 GiB overhead they do not; int4 with its scales does.
    llama = SLMConfig.from_name("llama3-8b")
    assert memory_bytes(count_parameters(llama), "int8") < 8 * GiB < memory_needed(llama, "int8")
    assert memory_needed(llama, "int4") < 8 * GiB
    assert memory_needed(llama, "bf16") > 16 * GiB > memory_bytes(count_parameters(llama), "bf16")
    phi = SLMConfig.from_name("phi3-mini")
    assert memory_needed(phi, "int8") < 8 * GiB < memory_needed(phi, "bf16") < 16 * GiB
    assert memory_needed(SLMConfig.from_name("mixtral-8x7b"), "int4") > 16 * GiB


def test_kv_cache_estimate():
    # Llama 3 8B: 2 × 32 layers × 8 KV heads × 128 dims × 2 bytes = 128 KiB per token in bf16.
    llama = SLMConfig.from_name("llama3-8b")
    assert kv_cache_bytes(llama, 1) == 128 * 1024
    assert kv_cache_bytes(llama, 8192, batch=2) == 2 * 8192 * 128 * 1024
    # Without grouped-query attention it would be 4 × larger.
    assert kv_cache_bytes(llama.replace(n_kv_heads=32), 1) == 4 * kv_cache_bytes(llama, 1)
    # Measured against the cache a real model fills: keys and values of every layer.
    config = small(norm="rmsnorm", positions="rope", mlp="swiglu", n_kv_heads=2)
    per_layer = 2 * 1 * 2 * 5 * config.head_dim  # (K, V) × batch × kv heads × tokens × head_dim
    assert kv_cache_bytes(config, 5, precision="fp32") == 4 * config.n_layers * per_layer
    with pytest.raises(ValueError, match="Unknown precision 'fp8'; choose one of fp32, bf16, int8, int4"):
        kv_cache_bytes(llama, 1, precision="fp8")
    elm = SLMConfig.from_name("openelm-270m")
    assert kv_cache_bytes(elm, 1) == 2 * sum(kv for _, kv, _ in openelm_layers(elm)) * 64 * 2


def test_plot_memory_has_labels():
    import matplotlib

    matplotlib.use("Agg")
    fig = plot_memory(["gpt2-124m", "llama3-8b"])
    ax = fig.axes[0]
    assert ax.get_title() and ax.get_xlabel() and ax.get_ylabel()
    assert len(ax.patches) == 2 * 4  # two models × four precisions
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_every_preset_is_countable():
    for name in PRESETS:
        config = SLMConfig.from_name(name)
        assert count_parameters(config) == analytic_parameters(config) > 0


def test_granite_moe_active_parameters_match_the_names():
    # "1B-A400M" and "3B-A800M" name the parameters one token uses, the embedding table aside.
    for name, (figure, unit) in NAMEPLATE_ACTIVE_NON_EMBEDDING.items():
        config = SLMConfig.from_name(name)
        active = count_parameters(config, active=True)
        embedding = config.vocab_size * config.d_model + config.d_model  # tied table + final norm
        assert abs(active - embedding - figure) < unit / 2, name
        assert active < count_parameters(config) / 3  # 8 of 32 or 40 experts
    assert count_parameters(SLMConfig.from_name("granite-3.1-3b-a800m"), active=True) == 882_874_368


def test_phi2_released_size_and_the_stated_layout_difference():
    config = SLMConfig.from_name("phi2-2.7b")
    released, difference, _ = LAYOUT_DIFFERENCES["phi2-2.7b"]
    assert released == 2_779_683_840  # PhiForCausalLM's checkpoint, every tensor counted
    # one LayerNorm (weight + bias) fewer per block, one output bias (vocab_size) more
    assert difference == config.vocab_size - config.n_layers * 2 * config.d_model
    assert count_parameters(config) + difference == released
    transformers = pytest.importorskip("transformers")
    with torch.device("meta"):
        reference = transformers.PhiForCausalLM(transformers.PhiConfig(
            vocab_size=51200, hidden_size=2560, intermediate_size=10240, num_hidden_layers=32,
            num_attention_heads=32, partial_rotary_factor=0.4, tie_word_embeddings=False))
    assert sum(p.numel() for p in reference.parameters()) == released


def test_the_survey_covers_the_families_the_course_names():
    families = {"gpt2", "smollm2", "openelm", "gemma", "phi2", "phi3", "llama3", "mixtral", "granite"}
    assert families == {name.split("-")[0] for name in SURVEYED}
    assert {SLMConfig.from_name(n).family for n in SURVEYED if n.startswith("granite")} == {"dense", "moe"}
    assert all(n in PUBLISHED_PARAMETERS or n in LAYOUT_DIFFERENCES for n in SURVEYED)
