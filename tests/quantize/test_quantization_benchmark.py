"""``benchmarks/quantization.py``'s decode timer at toy size: the prefill left out, the greedy tokens kept."""
from __future__ import annotations

import torch

from benchmark_support import load_benchmark
from slm_course.generate import generate
from slm_course.model import SLM, SLMConfig
from slm_course.quantize import quantize_model


def test_decode_speed_returns_the_greedy_tokens_and_a_rate():
    bench = load_benchmark("quantization")
    torch.manual_seed(0)
    model = SLM(SLMConfig(vocab_size=64, context_length=32, d_model=32, n_layers=1, n_heads=2, d_ff=64)).eval()
    quantize_model(model, 8)
    prompt = torch.tensor([[1, 2, 3, 4]])
    rate, tokens = bench.decode_speed(model, prompt, 6)
    assert rate > 0
    assert tokens == generate(model, prompt, 6)[0, 4:].tolist() and len(tokens) == 6


def test_compiled_decode_speed_keeps_the_tokens():
    bench = load_benchmark("quantization")
    torch.manual_seed(0)
    model = SLM(SLMConfig(vocab_size=64, context_length=32, d_model=32, n_layers=1, n_heads=2, d_ff=64)).eval()
    quantize_model(model, 4, group_size=32)
    prompt = torch.tensor([[1, 2, 3, 4]])
    rate, tokens = bench.decode_speed(model, prompt, 6, compile=True)
    assert rate > 0
    assert tokens == generate(model, prompt, 6)[0, 4:].tolist() and len(tokens) == 6


def test_where_tokens_part_names_the_step_and_the_eager_gap():
    bench = load_benchmark("quantization")
    torch.manual_seed(0)
    model = SLM(SLMConfig(vocab_size=64, context_length=32, d_model=32, n_layers=1, n_heads=2, d_ff=64)).eval()
    prompt = torch.tensor([[1, 2, 3, 4]])
    eager = generate(model, prompt, 6)[0, 4:].tolist()
    other = eager[:3] + [(eager[3] + 1) % 64] + eager[4:]
    with torch.no_grad():
        logits = model(torch.cat([prompt, torch.tensor([eager[:3]])], dim=1))[0, -1]
    gap = float(logits.topk(2).values[0] - logits.topk(2).values[1])
    assert bench.where_tokens_part(model, prompt, eager, other) == f"from 4 (gap {gap:.2f})"
    assert bench.where_tokens_part(model, prompt, eager, [eager[0] + 1] + eager[1:]).startswith("from 1 (")
