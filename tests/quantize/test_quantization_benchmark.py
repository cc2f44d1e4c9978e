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


def test_targets_print_ratios_with_the_capability_and_say_pass_miss_or_not_measured():
    bench = load_benchmark("quantization")
    speeds = {"fp32": 20.0, "int8 (Int8Linear)": 30.0, "int4 g32 (Int4Linear)": 32.0, "int8 quantize_dynamic": 29.0}
    compiled = {"fp32": 25.0, "int8 (Int8Linear)": 45.0, "int8 quantize_dynamic": 10.0}
    lines = bench.target_lines("AVX2", speeds, compiled, {"Q8_0": 100.0})
    assert lines[0].startswith("speed targets, CPU capability AVX2")
    text = "\n".join(lines)
    assert "int8 / fp32, each at its fastest" in text and " 1.80× (target >= 2.0): miss" in text  # 45 / 25
    assert " 1.55× (target >= 1.0): pass" in text  # 45 / 29: quantize_dynamic at its fastest is eager
    assert " 0.45× (target >= 0.5): miss" in text  # 45 / 100
    assert "Q4_1 (the asset's file)" in text and "not measured (target >= 0.5)" in text  # no Q4_1 figure
    assert " 1.50× (target >= 1.3): pass" in text  # compiled int8 / eager int8
