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


def test_smollm2_benchmark_matvec_ceiling_runs_every_linear_once_per_token():
    bench = load_benchmark("smollm2")
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    calls = []
    for layer in (model[0], model[2]):
        layer.register_forward_hook(lambda m, args, out: calls.append((m.in_features, tuple(args[0].shape))))
    before = [p.clone() for p in model.parameters()]
    ceiling = bench.matvec_ceiling(model, repeats=3)
    assert ceiling > 0 and ceiling != float("inf")
    assert calls == [(8, (1, 8)), (16, (1, 16))] * 4  # a warm-up, then 3 timed tokens: one row through each layer
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
