"""The generation benchmark ``benchmarks/generation.py`` runs at toy sizes and all three ways agree."""
from __future__ import annotations


import pytest
import torch

from benchmark_support import load_benchmark

pytest.importorskip("transformers")


def test_generation_benchmark_at_toy_size():
    bench = load_benchmark("generation")
    r = bench.run(torch.device("cpu"), new=6, prompt=3, n_layer=1, n_embd=16, n_head=2, vocab=50, context=32)
    assert r["same_tokens"] == 1.0  # cached, uncached and transformers' generate give the same greedy tokens
    assert r["cache_tokens_per_s"] > 0 and r["no_cache_tokens_per_s"] > 0 and r["hf_tokens_per_s"] > 0
    assert r["cache_over_no_cache"] == pytest.approx(r["cache_tokens_per_s"] / r["no_cache_tokens_per_s"])
