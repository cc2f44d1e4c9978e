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
