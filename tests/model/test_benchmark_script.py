"""The benchmark script ``benchmarks/attention_and_model.py`` runs, at toy sizes, and checks parity."""
from __future__ import annotations

import pytest
import torch

from benchmark_support import load_benchmark

pytest.importorskip("transformers")


def test_benchmark_functions_at_toy_sizes():
    bench = load_benchmark("attention_and_model")
    cpu = torch.device("cpu")
    explicit, fused, ratio = bench.attention_ratio(cpu, repeats=1, batch=1, heads=2, tokens=8, head_dim=4)
    assert explicit > 0 and fused > 0 and ratio == pytest.approx(explicit / fused)
    result = bench.model_ratio(cpu, repeats=1, batch=1, tokens=8, n_layer=1, n_embd=16, n_head=2, vocab=50)
    assert result["max_logit_difference"] <= 1e-4
    assert result["slm_tokens_per_s"] > 0 and result["hf_tokens_per_s"] > 0
