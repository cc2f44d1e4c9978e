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
    # Phi-2 (2023, 2.7B): GPT-style LayerNorm, GELU and biases, rotary positions on 32 of each head's 80
    # features, untied head. Two details our switches leave out change its count, and LAYOUT_DIFFERENCES
    # states them: each block runs attention and feed-forward side by side from ONE LayerNorm (ours has
    # two), and its output layer has a bias.
    "phi2-2.7b": dict(vocab_size=51200, context_length=2048, d_model=2560, n_layers=32, n_heads=32,
                      d_ff=10240, norm="layernorm", positions="rope", mlp="gelu", tie_embeddings=False,
                      qkv_bias=True, bias=True),
    # IBM Granite 3.1 2B (2024, dense): the Llama layout with grouped-query attention (32 → 8) and a tied
    # head. Granite also multiplies embeddings, attention scores, residuals and logits by fixed scalars
    # (muP-style), which are not parameters.
    "granite-3.1-2b": dict(vocab_size=49155, context_length=131072, d_model=2048, n_layers=40, n_heads=32,
                           n_kv_heads=8, d_ff=8192, tie_embeddings=True, rope_theta=5_000_000.0,
                           norm_eps=1e-5, **_LLAMA_STYLE),
    # IBM Granite 3.0 1B-A400M (2024, mixture of experts): 32 small SwiGLU experts per layer (width 512),
    # 8 used per token; tied head. "A400M": about 400M parameters active per token, embeddings aside.
    "granite-3.0-1b-a400m": dict(vocab_size=49155, context_length=4096, d_model=1024, n_layers=24, n_heads=16,
                                 n_kv_heads=8, d_ff=512, tie_embeddings=True, norm_eps=1e-6,
                                 n_experts=32, n_experts_active=8, **_LLAMA_STYLE),
    # IBM Granite 3.1 3B-A800M (2024, mixture of experts): 40 experts of width 512, 8 per token; tied head.
    "granite-3.1-3b-a800m": dict(vocab_size=49155, context_length=131072, d_model=1536, n_layers=32, n_heads=24,
                                 n_kv_heads=8, d_ff=512, tie_embeddings=True, rope_theta=10_000_000.0,
                                 norm_eps=1e-6, n_experts=40, n_experts_active=8, **_LLAMA_STYLE),
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
    "granite-3.1-2b": 2_533_531_648,  # granite-3.1-2b-instruct (the base checkpoint's vocabulary is 3 ids shorter)
    "granite-3.0-1b-a400m": 1_334_628_352,
    "granite-3.1-3b-a800m": 3_298_793_472,
}
# Released sizes our switches cannot reproduce exactly, as (exact released count, released − counted, why).
LAYOUT_DIFFERENCES: dict[str, tuple[int, int, str]] = {
    "phi2-2.7b": (2_779_683_840, 51_200 - 32 * 2 * 2560,
                  "one shared LayerNorm per block (32 × 5,120 fewer) and a bias on the output layer (+51,200)"),
}
# Mixture-of-experts parameters used per token, exactly (the embeddings included).
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
    "phi2-2.7b": (2.7e9, 0.1e9),  # the card's "2.7B" truncates 2.78B
    "granite-3.1-2b": (2.5e9, 0.1e9),
    "granite-3.0-1b-a400m": (1.3e9, 0.1e9),
    "granite-3.1-3b-a800m": (3.3e9, 0.1e9),
}
NAMEPLATE_ACTIVE_PARAMETERS: dict[str, tuple[float, float]] = {"mixtral-8x7b": (12.9e9, 0.1e9)}
# Granite's "A400M"/"A800M" count the active parameters WITHOUT the (tied) embedding table.
NAMEPLATE_ACTIVE_NON_EMBEDDING: dict[str, tuple[float, float]] = {
    "granite-3.0-1b-a400m": (0.4e9, 0.1e9),
    "granite-3.1-3b-a800m": (0.8e9, 0.1e9),
}

# The SLMs chapter 3 surveys, smallest first (for tables and the memory plot).
SURVEYED = ["gpt2-124m", "smollm2-135m", "openelm-270m", "granite-3.0-1b-a400m", "gemma-2b", "granite-3.1-2b",
            "phi2-2.7b", "granite-3.1-3b-a800m", "phi3-mini", "llama3-8b", "mixtral-8x7b"]
