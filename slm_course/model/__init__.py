"""The course's model (chapter 3): ``SLM``, its ``SLMConfig`` and presets, and parameter counting.

>>> from slm_course.model import SLM, SLMConfig
>>> model = SLM(SLMConfig.from_name("tiny"))
"""
from __future__ import annotations

from slm_course.model.config import LayerScaling, SLMConfig
from slm_course.model.counting import (
    PRECISION_BYTES,
    RUNTIME_OVERHEAD_BYTES,
    GiB,
    analytic_parameters,
    count_parameters,
    dense_parameters,
    kv_cache_bytes,
    memory_bytes,
    memory_needed,
    memory_table,
    moe_parameters,
    openelm_layers,
    openelm_parameters,
    plot_memory,
)
from slm_course.model.layers import (
    Block,
    CausalSelfAttention,
    GeluMLP,
    LayerNorm,
    RMSNorm,
    SwiGLU,
    apply_rope,
    repeat_kv,
    rope_frequencies,
)
from slm_course.model.presets import PRESETS, PUBLISHED_PARAMETERS, SURVEYED
from slm_course.model.slm import SLM

__all__ = [
    "SLM", "SLMConfig", "LayerScaling", "PRESETS", "PUBLISHED_PARAMETERS", "SURVEYED",
    "PRECISION_BYTES", "GiB", "RUNTIME_OVERHEAD_BYTES", "memory_needed", "count_parameters", "analytic_parameters", "dense_parameters", "moe_parameters",
    "openelm_layers", "openelm_parameters", "memory_bytes", "kv_cache_bytes", "memory_table", "plot_memory",
    "Block", "CausalSelfAttention", "GeluMLP", "LayerNorm", "RMSNorm", "SwiGLU", "apply_rope", "repeat_kv", "rope_frequencies",
]
