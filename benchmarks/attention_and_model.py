"""Benchmark (chapters 2-3): explicit vs fused attention, and SLM vs transformers' GPT-2, in one run.

1. Attention: ``slm_course.attention.scaled_dot_product`` on its explicit path (weights built by
   hand, needed by the attention explorer) against its fused path (``F.scaled_dot_product_attention``).
2. The model: ``SLM`` against ``transformers``' ``GPT2LMHeadModel`` of the same shape with the same
   (random, seeded) weights: the logits must agree within 1e-4, then forward throughput in tokens/s.

Prints ratios (> 1 means the first is faster). Timings on a shared machine vary: take them as rough.

    python benchmarks/attention_and_model.py [--device cpu] [--repeats 7]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from slm_course.attention import scaled_dot_product
from slm_course.device import environment_report, pick_device, set_seed
from slm_course.model.hf import slm_from_hf


def paired_seconds(
    first: Callable[[], object], second: Callable[[], object], repeats: int, device: torch.device
) -> tuple[float, float]:
    """Median wall times of ``first()`` and ``second()``, run alternately (ABAB…) after a warm-up,
    so that load from other processes on a shared machine hits both alike."""
    def timed(fn: Callable[[], object]) -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first(), second()
    times_first, times_second = [], []
    for _ in range(repeats):
        times_first.append(timed(first))
        times_second.append(timed(second))
    return statistics.median(times_first), statistics.median(times_second)


@torch.no_grad()
def attention_ratio(device: torch.device, repeats: int, batch: int = 8, heads: int = 6,
                    tokens: int = 256, head_dim: int = 64) -> tuple[float, float, float]:
    """(explicit seconds, fused seconds, explicit / fused) for causal attention of the given shape."""
    q, k, v = torch.randn(3, batch, heads, tokens, head_dim, device=device).unbind(0)
    explicit_out, _ = scaled_dot_product(q, k, v, return_weights=True)
    torch.testing.assert_close(explicit_out, scaled_dot_product(q, k, v), atol=1e-5, rtol=1e-4)
    explicit, fused = paired_seconds(
        lambda: scaled_dot_product(q, k, v, return_weights=True), lambda: scaled_dot_product(q, k, v), repeats, device
    )
    return explicit, fused, explicit / fused


@torch.no_grad()
def model_ratio(device: torch.device, repeats: int, batch: int = 4, tokens: int = 256,
                n_layer: int = 6, n_embd: int = 384, n_head: int = 6, vocab: int = 50257) -> dict[str, float]:
    """Build a random GPT-2 of the given shape, copy it into SLM, check the logits, time both forwards."""
    from transformers import GPT2Config, GPT2LMHeadModel

    set_seed(0)
    hf_config = GPT2Config(vocab_size=vocab, n_positions=tokens, n_embd=n_embd, n_layer=n_layer, n_head=n_head)
    reference = GPT2LMHeadModel(hf_config).eval().to(device)
    model = slm_from_hf(reference.cpu()).to(device)
    reference.to(device)
    idx = torch.randint(0, vocab, (batch, tokens), device=device)
    difference = (model(idx) - reference(idx).logits).abs().max().item()
    if difference > 1e-4:
        raise AssertionError(f"logits differ by {difference:.3g} (> 1e-4): the weights were not copied right.")
    slm_seconds, hf_seconds = paired_seconds(lambda: model(idx), lambda: reference(idx), repeats, device)
    n_tokens = batch * tokens
    return {"max_logit_difference": difference, "slm_tokens_per_s": n_tokens / slm_seconds,
            "hf_tokens_per_s": n_tokens / hf_seconds, "ratio": hf_seconds / slm_seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or mps")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median is kept)")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(environment_report())
    print(f"torch threads: {torch.get_num_threads()}, device: {device}")

    explicit, fused, ratio = attention_ratio(device, args.repeats)
    print("\nattention, causal, batch 8 × 6 heads × 256 tokens × 64 dims:")
    print(f"  explicit {explicit * 1e3:.2f} ms, fused {fused * 1e3:.2f} ms -> fused is {ratio:.2f}× faster")

    result = model_ratio(device, args.repeats)
    print("\nforward, GPT-2 shape (6 layers, width 384, 6 heads, vocab 50257), batch 4 × 256 tokens, same weights:")
    print(f"  max |logits difference| {result['max_logit_difference']:.2e} (<= 1e-4)")
    print(f"  SLM {result['slm_tokens_per_s']:,.0f} tokens/s, transformers GPT2LMHeadModel "
          f"{result['hf_tokens_per_s']:,.0f} tokens/s -> SLM / transformers throughput ratio {result['ratio']:.2f}")


if __name__ == "__main__":
    main()
