"""``benchmarks/pretrain_vs_baseline.py`` at toy sizes: the baseline is nanoGPT's CPU recipe, both races
train and score, and the throughput comparison trains the same weights on both sides."""
from __future__ import annotations

import math

import pytest

from benchmark_support import load_benchmark

pytest.importorskip("transformers")


def test_baseline_is_nanogpts_cpu_recipe_and_trains():
    bench = load_benchmark("pretrain_vs_baseline")
    train_text, val_text = "To be, or not to be: that is the question.\n" * 40, "Whether 'tis nobler in the mind to suffer\n" * 5
    setup = bench.baseline_setup(train_text, val_text)
    make_model, tokenizer, _, make_config, tokens_per_step = setup
    config, model = make_config(2000), make_model()
    c = model.config
    assert (c.n_layers, c.n_heads, c.d_model, c.context_length, c.dropout, c.bias) == (4, 4, 128, 64, 0.0, False)
    assert tokens_per_step == 12 * 64 and (config.lr, config.min_lr, config.warmup_steps) == (1e-3, 1e-4, 100)
    assert set(tokenizer.encode(train_text + val_text)) and 0 not in tokenizer.encode(val_text)  # no unknown characters
    row = bench.run_for(0.0, setup, val_text, eval_tokens=100)
    assert row["steps"] == 20 and row["tokens"] == 20 * 12 * 64
    assert 0 < row["val_bpb"] < math.log2(tokenizer.vocab_size) + 1  # trained a little: about uniform or better


def test_throughput_compares_the_same_model():
    bench = load_benchmark("pretrain_vs_baseline")
    result = bench.throughput(steps=1, rounds=1)  # asserts internally that both start from the same loss
    assert result["course_tokens_per_s"] > 0 and result["hf_tokens_per_s"] > 0
    assert result["ratio"] == pytest.approx(result["course_tokens_per_s"] / result["hf_tokens_per_s"])
