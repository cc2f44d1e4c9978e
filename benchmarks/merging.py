"""Benchmark (chapter 8): the course's merges against mergekit's, and its DPO loss against trl's.

1. Merging: ``slm_course.finetune.merge`` (linear, task arithmetic, SLERP, TIES) on the state dicts of
   two perturbed copies of a Llama-style model, against ``mergekit.merge.run_merge`` on the same
   models saved as safetensors folders (mergekit's time includes reading and writing them, which
   is how it is used). Every merged tensor is compared (max abs difference printed).
2. DPO: ``slm_course.finetune.dpo.dpo_loss`` against ``trl``'s ``DPOTrainer._compute_loss`` on the
   same sequence log-probabilities (the test suite's call without a trainer).

Prints seconds and ratios (> 1: the course's code is faster). Shared machines vary: rough figures.

    python benchmarks/merging.py [--hidden 256] [--layers 4] [--repeats 3]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "finetune"))


def median_seconds(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file
    from transformers import LlamaConfig, LlamaForCausalLM

    from slm_course.device import environment_report
    from slm_course.finetune import dpo, merge

    print(environment_report())
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=2048, hidden_size=args.hidden, intermediate_size=args.hidden * 3,
                         num_hidden_layers=args.layers, num_attention_heads=4, num_key_value_heads=2,
                         tie_word_embeddings=False)
    root = Path(tempfile.mkdtemp(prefix="slm-merge-bench-"))
    model = LlamaForCausalLM(config)
    sds = {"base": {k: v.clone() for k, v in model.state_dict().items()}}
    model.save_pretrained(root / "base")
    for name, seed in (("a", 1), ("b", 2)):
        g = torch.Generator().manual_seed(seed)
        sds[name] = {k: v + 0.02 * torch.randn(v.shape, generator=g) for k, v in sds["base"].items()}
        model.load_state_dict(sds[name])
        model.save_pretrained(root / name)
    parameters = sum(v.numel() for v in sds["base"].values())
    print(f"model: {parameters / 1e6:.1f}M parameters, {args.layers} layers, width {args.hidden}")

    cases = {
        "linear": ({"models": [{"model": "a"}, {"model": "b"}], "parameters": {"weight": 0.5}},
                   lambda: merge.linear([sds["a"], sds["b"]])),
        "task_arithmetic": ({"base_model": "base", "models": [{"model": "a"}, {"model": "b"}],
                             "parameters": {"weight": 1.0}},
                            lambda: merge.task_arithmetic(sds["base"], [sds["a"], sds["b"]])),
        "slerp": ({"base_model": "a", "models": [{"model": "a"}, {"model": "b"}], "parameters": {"t": 0.5}},
                  lambda: merge.slerp_merge(sds["a"], sds["b"], 0.5)),
        "ties": ({"base_model": "base", "models": [{"model": "a"}, {"model": "b"}],
                  "parameters": {"weight": 1.0, "density": 0.5}},
                 lambda: merge.ties(sds["base"], [sds["a"], sds["b"]], density=0.5)),
    }
    print(f"{'method':16s} {'course s':>9s} {'mergekit s':>11s} {'ratio':>6s} {'max |diff|':>10s}")
    for method, (spec, ours) in cases.items():
        spec = {"merge_method": method, "dtype": "float32", **spec}
        spec["models"] = [{**m, "model": str(root / m["model"])} for m in spec["models"]]
        if "base_model" in spec:
            spec["base_model"] = str(root / spec["base_model"])
        out = root / f"out-{method}"

        def theirs():
            run_merge(MergeConfiguration.model_validate(spec), str(out),
                      MergeOptions(copy_tokenizer=False, quiet=True, write_model_card=False))

        ours_s, theirs_s = median_seconds(ours, args.repeats), median_seconds(theirs, args.repeats)
        merged, reference = ours(), load_file(out / "model.safetensors")
        diff = max(float((merged[k] - v).abs().max()) for k, v in reference.items())
        print(f"{method:16s} {ours_s:9.3f} {theirs_s:11.3f} {theirs_s / ours_s:6.1f} {diff:10.2e}")

    from test_dpo import _trl_dpo_loss

    g = torch.Generator().manual_seed(0)
    logps = [-50 * torch.rand(4096, generator=g) for _ in range(4)]
    ours_s = median_seconds(lambda: dpo.dpo_loss(*logps, beta=0.1), args.repeats * 10)
    theirs_s = median_seconds(lambda: _trl_dpo_loss(*logps, 0.1), args.repeats * 10)
    diff = abs(float(dpo.dpo_loss(*logps, beta=0.1).loss - _trl_dpo_loss(*logps, 0.1)[0]))
    print(f"{'dpo_loss (4096)':16s} {ours_s:9.5f} {theirs_s:11.5f} {theirs_s / ours_s:6.1f} {diff:10.2e}  (trl)")


if __name__ == "__main__":
    main()
