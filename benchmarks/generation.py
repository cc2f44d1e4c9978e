"""Benchmark (chapter 5): generation speed with and without the KV cache, and against ``transformers``.

In one run, on GPT-2-124M-shaped random (seeded) weights: greedy generation of ``--new`` tokens
(default 200) after a ``--prompt``-token prompt (default 16) by

1. ``slm_course.generate.generate(..., use_cache=False)``: the whole sequence again at every step;
2. ``slm_course.generate.generate(..., use_cache=True)``: prefill once, then one token per step;
3. ``transformers``' ``GPT2LMHeadModel.generate`` with its own cache, on the same weights
   (the course model is built from it with ``slm_course.model.hf.slm_from_hf``).

All three must produce the same tokens (checked). Prints tokens/s and the ratios cache/no-cache
(target ≥ 4) and course/transformers (target ≥ 1.0). Timings on a shared machine vary: take them as rough.

    python benchmarks/generation.py [--device cpu] [--new 200] [--prompt 16] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
from typing import Callable

import torch

from slm_course.device import environment_report, pick_device
from slm_course.generate import generate
from slm_course.model.hf import slm_from_hf


def seconds(fn: Callable[[], torch.Tensor], device: torch.device, repeats: int) -> tuple[float, torch.Tensor]:
    """Median wall time of ``fn()`` over ``repeats`` runs (after one short warm-up elsewhere), and its result."""
    times, out = [], None
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


@torch.no_grad()
def run(device: torch.device, new: int = 200, prompt: int = 16, repeats: int = 1,
        n_layer: int = 12, n_embd: int = 768, n_head: int = 12, vocab: int = 50257, context: int = 1024,
        verbose: bool = False) -> dict[str, float]:
    """Tokens/s of the three ways to generate, and their ratios (see the module docstring).

    ``verbose`` prints each measurement as soon as it is taken (the uncached run, last, is the slow one).
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=n_head, vocab_size=vocab,
                                    n_positions=context, bos_token_id=vocab - 1, eos_token_id=vocab - 1)).eval().to(device)
    ours = slm_from_hf(hf).eval().to(device)
    idx = torch.randint(0, vocab, (1, prompt), generator=torch.Generator().manual_seed(1)).to(device)

    def hf_generate() -> torch.Tensor:
        return hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=new, min_new_tokens=new,
                           do_sample=False, use_cache=True, pad_token_id=0)

    for fn in (lambda: generate(ours, idx, 4), lambda: generate(ours, idx, 4, use_cache=False)):
        fn()  # warm-up
    hf.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=4, do_sample=False, pad_token_id=0)
    cached, theirs = [], []
    for _ in range(repeats):  # alternate the two cached runs, so load from other processes hits both alike
        cached.append(seconds(lambda: generate(ours, idx, new, use_cache=True), device, 1))
        theirs.append(seconds(hf_generate, device, 1))
    t_cache, out_cache = statistics.median(t for t, _ in cached), cached[-1][1]
    t_hf, out_hf = statistics.median(t for t, _ in theirs), theirs[-1][1]
    if verbose:
        print(f"  KV cache          : {new / t_cache:8.1f} tokens/s", flush=True)
        print(f"  transformers cache: {new / t_hf:8.1f} tokens/s", flush=True)
    t_plain, out_plain = seconds(lambda: generate(ours, idx, new, use_cache=False), device, 1)  # slow: once
    same = bool(torch.equal(out_cache, out_plain)) and bool(torch.equal(out_cache, out_hf))
    result = {
        "no_cache_tokens_per_s": new / t_plain, "cache_tokens_per_s": new / t_cache, "hf_tokens_per_s": new / t_hf,
        "same_tokens": float(same),
    }
    result["cache_over_no_cache"] = result["cache_tokens_per_s"] / result["no_cache_tokens_per_s"]
    result["course_over_transformers"] = result["cache_tokens_per_s"] / result["hf_tokens_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default=None, help="cpu, cuda or mps (default: SLM_COURSE_DEVICE or the best found)")
    parser.add_argument("--new", type=int, default=200, help="new tokens to generate")
    parser.add_argument("--prompt", type=int, default=16, help="prompt length in tokens")
    parser.add_argument("--repeats", type=int, default=5, help="timed cached runs of each, alternating (median)")
    args = parser.parse_args()
    device = pick_device(args.device)
    print(environment_report())
    print(f"measuring as it goes ({args.new} new tokens):", flush=True)
    r = run(device, new=args.new, prompt=args.prompt, repeats=args.repeats, verbose=True)
    print(f"GPT-2-124M-shaped random weights, greedy, prompt {args.prompt} tokens, {args.new} new tokens, {device}")
    print(f"  no cache          : {r['no_cache_tokens_per_s']:8.1f} tokens/s")
    print(f"  KV cache          : {r['cache_tokens_per_s']:8.1f} tokens/s")
    print(f"  transformers cache: {r['hf_tokens_per_s']:8.1f} tokens/s")
    print(f"  same tokens from all three: {bool(r['same_tokens'])}")
    print(f"  cache / no cache        = {r['cache_over_no_cache']:.2f}x  (target >= 4)")
    print(f"  course / transformers   = {r['course_over_transformers']:.2f}x  (target >= 1.0)")


if __name__ == "__main__":
    main()
