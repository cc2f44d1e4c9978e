"""Named model presets (chapter 3): a tiny CPU model, GPT-2, SmolLM2 and the SLMs the course surveys.

``SLMConfig.from_name(name)`` reads these. The large ones are for counting parameters and memory
only (``slm_course.model.counting``); nobody builds Llama 3 8B on a laptop. Where a model has a
detail our switches leave out, the comment says so and why the count is unaffected.
"""
from __future__ import annotations

from typing import Any

from slm_course.model.config import LayerScaling

_LLAMA_STYLE = dict(norm="rmsnorm", positions="rope", mlp="swiglu", bias=False, qkv_bias=False)

PRESETS: dict[str, dict[str, Any]] = {
    # A model that trains in seconds on a laptop CPU (chapters 2-5): GPT-2's layout, tiny sizes, and the
    # vocabulary of the course BPE (2,048 ids, slm_course.tokenizers.course_bpe).
    "tiny": dict(vocab_size=2048, context_length=256, d_model=128, n_layers=4, n_heads=4,
                 norm="layernorm", positions="learned", mlp="gelu", tie_embeddings=True,
                 qkv_bias=True, bias=True),
    # GPT-2 small (2019): learned positions, LayerNorm, GELU, biases everywhere, tied output layer.
    "gpt2-124m": dict(vocab_size=50257, context_length=1024, d_model=768, n_layers=12, n_heads=12,
                      norm="layernorm", positions="learned", mlp="gelu", tie_embeddings=True,
                      qkv_bias=True, bias=True),
    # SmolLM2-135M (2024): the Llama layout at small scale, 9 query heads sharing 3 key/value heads.
    "smollm2-135m": dict(vocab_size=49152, context_length=8192, d_model=576, n_layers=30, n_heads=9,
                         n_kv_heads=3, d_ff=1536, tie_embeddings=True, rope_theta=100_000.0, **_LLAMA_STYLE),
    # Llama 3 8B (2024): grouped-query attention (32 → 8), 128k vocabulary, untied head.
    "llama3-8b": dict(vocab_size=128256, context_length=8192, d_model=4096, n_layers=32, n_heads=32,
                      n_kv_heads=8, d_ff=14336, tie_embeddings=False, rope_theta=500_000.0, **_LLAMA_STYLE),
    # Phi-3 mini 4k (2024): Llama layout with full multi-head attention (its gate and up matrices are
    # stored fused, which changes no count).
    "phi3-mini": dict(vocab_size=32064, context_length=4096, d_model=3072, n_layers=32, n_heads=32,
                      d_ff=8192, tie_embeddings=False, **_LLAMA_STYLE),
    # Gemma 2B (2024): multi-query attention (one key/value head), 256k vocabulary, tied head. Gemma
    # gates with GELU (GeGLU), scales embeddings by √d and stores RMSNorm weights as 1 + w: the same
    # parameter count as our swiglu/rmsnorm switches.
    "gemma-2b": dict(vocab_size=256000, context_length=8192, d_model=2048, n_layers=18, n_heads=8,
                     n_kv_heads=1, d_ff=16384, tie_embeddings=True, norm_eps=1e-6, **_LLAMA_STYLE),
    # OpenELM-270M (2024): layer-wise scaling, 64-wide heads, query/key RMSNorm, tied head. Its heads
    # and widths vary per layer, so n_heads/d_ff here are placeholders; counting uses layer_scaling.
    "openelm-270m": dict(vocab_size=32000, context_length=2048, d_model=1280, n_layers=16, n_heads=20,
                         tie_embeddings=True, layer_scaling=LayerScaling(), **_LLAMA_STYLE),
    # Mixtral 8x7B (2023): Mistral 7B's layout with 8 feed-forward experts per layer, 2 used per token.
    "mixtral-8x7b": dict(vocab_size=32000, context_length=32768, d_model=4096, n_layers=32, n_heads=32,
                         n_kv_heads=8, d_ff=14336, tie_embeddings=False, rope_theta=1_000_000.0,
                         n_experts=8, n_experts_active=2, **_LLAMA_STYLE),
}

# Exact parameter counts of the released models (values stored in their checkpoints, a tied output
# layer counted once); the counting must reproduce them to the parameter.
PUBLISHED_PARAMETERS: dict[str, int] = {
    "gpt2-124m": 124_439_808,
    "smollm2-135m": 134_515_008,
    "openelm-270m": 271_527_168,
    "gemma-2b": 2_506_172_416,
    "phi3-mini": 3_821_079_552,
    "llama3-8b": 8_030_261_248,
    "mixtral-8x7b": 46_702_792_704,
}
# Mixtral's parameters used per token (2 of 8 experts), exactly.
PUBLISHED_ACTIVE_PARAMETERS: dict[str, int] = {"mixtral-8x7b": 12_879_925_248}
# The rounded sizes the model cards and papers quote, as (figure, the unit it is rounded to): the exact
# count must round to the figure. Gemma 2B is left out: its "2B" counts the non-embedding weights only.
NAMEPLATE_PARAMETERS: dict[str, tuple[float, float]] = {
    "gpt2-124m": (124e6, 1e6),
    "smollm2-135m": (135e6, 1e6),
    "openelm-270m": (270e6, 10e6),
    "phi3-mini": (3.8e9, 0.1e9),
    "llama3-8b": (8e9, 1e9),
    "mixtral-8x7b": (46.7e9, 0.1e9),
}
NAMEPLATE_ACTIVE_PARAMETERS: dict[str, tuple[float, float]] = {"mixtral-8x7b": (12.9e9, 0.1e9)}

# The SLMs chapter 3 surveys, smallest first (for tables and the memory plot).
SURVEYED = ["gpt2-124m", "smollm2-135m", "openelm-270m", "gemma-2b", "phi3-mini", "llama3-8b", "mixtral-8x7b"]
