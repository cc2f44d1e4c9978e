"""Generation (chapter 5): the KV cache, the sampling filters and the decoding loop.

>>> from slm_course.generate import generate, KVCache
>>> out = generate(model, idx, 50, temperature=0.8, top_k=40, top_p=0.95, seed=0)
"""
from __future__ import annotations

from slm_course.generate.cache import KVCache, attend_one_step
from slm_course.generate.decode import compiled_blocks, compiled_head, decode_one_token, decode_speed, generate, generate_text, model_structure, next_token, prefill
from slm_course.generate.evaluation import perplexity_from_losses
from slm_course.generate.sampling import (
    apply_temperature, greedy, logits_to_probs, min_p_filter, sample, top_k_filter, top_p_filter,
)

__all__ = ["KVCache", "generate", "generate_text", "decode_speed", "prefill", "decode_one_token", "compiled_blocks", "compiled_head", "model_structure", "next_token",
           "apply_temperature", "top_k_filter", "top_p_filter", "min_p_filter", "logits_to_probs", "sample", "greedy",
           "attend_one_step", "perplexity_from_losses"]
