"""Counting parameters and memory without allocating (chapter 3; chapter 10 reuses the memory side).

Two ways to count, checked against each other:

- ``count_parameters(config)`` builds a ``dense`` model on PyTorch's ``meta`` device (shapes, no
  storage) and adds up its parameters: exact, and instant even for Llama 3 8B.
- ``analytic_parameters(config)`` applies a formula per architecture family: ``dense`` (GPT and
  Llama families), ``moe`` (Mixtral: total vs active parameters) and ``openelm`` (layer-wise heads
  and widths). The models our switches cannot build (Mixtral, OpenELM) are counted this way only.

Memory is parameters × bytes per parameter (``PRECISION_BYTES``) plus, when generating, the KV cache
and a runtime overhead (``memory_needed``). Memory budgets are binary: an "8 GB" GPU or "16 GB" of
RAM holds 8 or 16 GiB (× 2^30 bytes), so sizes are reported in GiB.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slm_course.model.config import SLMConfig

INT4_GROUP = 32  # int4 weights share one fp16 scale per group of this many (the layout of GGUF's Q4_0)
PRECISION_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "int8": 1.0,  # one scale per row of 4,096 or so weights: negligible, not counted
    "int4": 0.5 + 2 / INT4_GROUP,  # half a byte per weight plus a 2-byte scale per group: 4.5 bits
}
GiB = 2**30  # memory is sold in binary units: an "8 GB" GPU holds 8 × 2^30 bytes
# What a run needs beyond weights and KV cache, as one stated round figure: a CUDA context alone takes
# 0.3-0.5 GiB, then the activations of a forward pass and the framework's allocator slack; in RAM,
# the operating system and the Python process. Real figures vary with the runtime; see memory_needed.
RUNTIME_OVERHEAD_BYTES = 1 * GiB


# --------------------------------------------------------------------------- exact, by building on meta
def count_parameters(config: SLMConfig, *, active: bool = False) -> int:
    """Number of parameters of ``config`` (a tied output layer counted once).

    ``dense`` configs are built on the ``meta`` device and counted exactly; ``moe`` and ``openelm``
    configs, which ``SLM`` does not build, use :func:`analytic_parameters`. ``active=True`` counts
    only the parameters one token uses (differs from the total only for mixtures of experts).
    """
    if config.family != "dense":
        return analytic_parameters(config, active=active)
    from slm_course.model.slm import SLM

    with torch.device("meta"):
        model = SLM(config)
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- analytic formulas
def _norm_size(config: SLMConfig, d: int) -> int:
    return 2 * d if config.norm == "layernorm" else d  # layernorm: weight + bias; rmsnorm: weight


def _attention_size(config: SLMConfig, n_heads: int, n_kv_heads: int) -> int:
    d, hd = config.d_model, config.head_dim
    q, kv = n_heads * hd, n_kv_heads * hd
    weights = d * q + 2 * d * kv + q * d  # W_q, W_k, W_v, W_out
    return weights + config.qkv_bias * (q + 2 * kv) + config.bias * d


def _mlp_size(config: SLMConfig, d_ff: int) -> int:
    d = config.d_model
    if config.mlp == "gelu":  # fc (d → d_ff), proj (d_ff → d)
        return 2 * d * d_ff + config.bias * (d_ff + d)
    return 3 * d * d_ff + config.bias * (2 * d_ff + d)  # gate, up (d → d_ff), down (d_ff → d)


def _embedding_size(config: SLMConfig) -> int:
    d = config.d_model
    size = config.vocab_size * d  # token embeddings
    size += config.context_length * d if config.positions == "learned" else 0  # position table
    size += 0 if config.tie_embeddings else config.vocab_size * d  # separate output layer
    return size + _norm_size(config, d)  # the final norm


def dense_parameters(config: SLMConfig) -> int:
    """The formula for a dense decoder (GPT-2, Llama, SmolLM2, Phi-3, Gemma): layers × block + embeddings."""
    block = (
        _attention_size(config, config.n_heads, config.n_kv_heads)
        + _mlp_size(config, config.d_ff)
        + 2 * _norm_size(config, config.d_model)
    )
    return config.n_layers * block + _embedding_size(config)


def moe_parameters(config: SLMConfig) -> tuple[int, int]:
    """``(total, active)`` for a mixture of experts (Mixtral): every layer holds ``n_experts``
    feed-forwards and a router (``d_model × n_experts``); a token uses ``n_experts_active`` of them.
    With one expert there is no router and both equal :func:`dense_parameters`.
    """
    router = config.d_model * config.n_experts if config.n_experts > 1 else 0
    shared = (
        _attention_size(config, config.n_heads, config.n_kv_heads)
        + 2 * _norm_size(config, config.d_model)
        + router
    )
    expert = _mlp_size(config, config.d_ff)
    total = config.n_layers * (shared + config.n_experts * expert) + _embedding_size(config)
    active = config.n_layers * (shared + config.n_experts_active * expert) + _embedding_size(config)
    return total, active


def _make_divisible(value: float, divisor: int) -> int:
    """Round ``value`` to the nearest multiple of ``divisor`` (at least one), never more than 10 % down."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def openelm_layers(config: SLMConfig) -> list[tuple[int, int, int]]:
    """OpenELM's layer-wise scaling: ``(n_heads, n_kv_heads, d_ff)`` of each layer, first to last.

    Layer ``i``'s multipliers grow linearly from the first to the last value; the query width is
    rounded to whole groups of heads, the feed-forward width to a multiple of ``ffn_divisor``.
    """
    scaling = config.layer_scaling
    if scaling is None:
        raise ValueError("openelm_layers needs a config with layer_scaling (e.g. SLMConfig.from_name('openelm-270m')).")
    n = config.n_layers
    qkv_mults = [round(float(m), 2) for m in np.linspace(*scaling.qkv_multipliers, num=n)]
    ffn_mults = [round(float(m), 2) for m in np.linspace(*scaling.ffn_multipliers, num=n)]
    group = scaling.queries_per_kv_head
    layers = []
    for qkv_mult, ffn_mult in zip(qkv_mults, ffn_mults):
        n_heads = _make_divisible(config.d_model * qkv_mult, config.head_dim * group) // config.head_dim
        d_ff = _make_divisible(config.d_model * ffn_mult, scaling.ffn_divisor)
        layers.append((n_heads, n_heads // group, d_ff))
    return layers


def openelm_parameters(config: SLMConfig) -> int:
    """The formula for OpenELM: each layer with its own heads and width, plus query/key norms."""
    scaling = config.layer_scaling
    total = _embedding_size(config)
    for n_heads, n_kv_heads, d_ff in openelm_layers(config):
        total += _attention_size(config, n_heads, n_kv_heads) + _mlp_size(config, d_ff)
        total += 2 * _norm_size(config, config.d_model)
        total += 2 * _norm_size(config, config.head_dim) if scaling.qk_norm else 0
    return total


def analytic_parameters(config: SLMConfig, *, active: bool = False) -> int:
    """Parameters by the formula of ``config.family`` (``active``: per token, for mixtures of experts)."""
    if config.family == "moe":
        total, used = moe_parameters(config)
        return used if active else total
    if config.family == "openelm":
        return openelm_parameters(config)
    return dense_parameters(config)


# --------------------------------------------------------------------------- memory
def bytes_per_value(precision: str) -> float:
    """Bytes one stored value takes at ``precision`` (see ``PRECISION_BYTES``); a clear error otherwise."""
    if precision not in PRECISION_BYTES:
        raise ValueError(f"Unknown precision {precision!r}; choose one of {', '.join(PRECISION_BYTES)}.")
    return PRECISION_BYTES[precision]


def memory_bytes(n_parameters: int | float, precision: str = "fp32") -> float:
    """Bytes to hold ``n_parameters`` weights at ``precision``: fp32 4, bf16 2, int8 1 byte each, int4
    0.5625 (half a byte plus a 2-byte scale per group of 32 weights)."""
    return n_parameters * bytes_per_value(precision)


def kv_cache_bytes(config: SLMConfig, tokens: int, *, batch: int = 1, precision: str = "bf16") -> float:
    """Bytes of the key/value cache after ``tokens`` tokens: 2 (K and V) × layers × KV heads × head_dim
    × tokens × batch × bytes per value. Grouped-query attention shrinks it by ``n_heads / n_kv_heads``.
    """
    if config.family == "openelm":
        kv_heads = sum(n_kv for _, n_kv, _ in openelm_layers(config))
    else:
        kv_heads = config.n_layers * config.n_kv_heads
    return 2 * kv_heads * config.head_dim * tokens * batch * bytes_per_value(precision)


def memory_needed(
    config: SLMConfig,
    precision: str,
    *,
    tokens: int = 2048,
    cache_precision: str = "bf16",
    overhead: float = RUNTIME_OVERHEAD_BYTES,
) -> float:
    """Bytes to generate with ``config``: weights at ``precision`` + a ``tokens``-long KV cache (batch 1,
    ``cache_precision``) + a fixed runtime ``overhead`` (default 1 GiB, see ``RUNTIME_OVERHEAD_BYTES``).

    Compare it with a budget in bytes, e.g. ``8 * GiB`` for an "8 GB" GPU.
    """
    return (
        memory_bytes(count_parameters(config), precision)
        + kv_cache_bytes(config, tokens, precision=cache_precision)
        + overhead
    )


def memory_table(
    names: Sequence[str], precisions: Sequence[str] = tuple(PRECISION_BYTES)
) -> list[dict[str, float | str | int]]:
    """One row per preset: parameters (total, active) and weight memory in GiB per precision."""
    rows = []
    for name in names:
        config = SLMConfig.from_name(name)
        total = count_parameters(config)
        row: dict[str, float | str | int] = {"name": name, "parameters": total,
                                             "active": count_parameters(config, active=True)}
        for precision in precisions:
            row[precision] = memory_bytes(total, precision) / GiB
        rows.append(row)
    return rows


def plot_memory(names: Sequence[str], budgets_gib: dict[str, float] | None = None):
    """Grouped bars: weight memory (GiB, log scale) per precision for each preset, with budget lines.

    Returns the matplotlib ``Figure``. ``budgets_gib`` default: an 8 GiB laptop GPU and 16 GiB of RAM.
    """
    import matplotlib.pyplot as plt

    budgets_gib = budgets_gib or {"8 GiB laptop GPU": 8.0, "16 GiB RAM": 16.0}
    rows = memory_table(names)
    precisions = list(PRECISION_BYTES)
    fig, ax = plt.subplots(figsize=(max(9.0, 0.95 * len(rows)), 4.4))
    width = 0.8 / len(precisions)
    x = np.arange(len(rows))
    for j, precision in enumerate(precisions):
        ax.bar(x + (j - (len(precisions) - 1) / 2) * width, [r[precision] for r in rows], width, label=precision)
    for (label, gib), style in zip(budgets_gib.items(), ("--", ":")):
        ax.axhline(gib, color="black", linestyle=style, linewidth=1, label=label)
    ax.set_yscale("log")
    ax.set_xticks(x, [str(r["name"]) for r in rows], rotation=30, ha="right", rotation_mode="anchor")
    ax.set_xlabel("model")
    ax.set_ylabel("weight memory (GiB, log scale)")
    ax.set_title("Memory for the weights alone, per precision")
    ax.legend(ncol=3, fontsize=8)
    fig.tight_layout()
    return fig
