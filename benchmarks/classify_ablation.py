"""Benchmark (chapter 7): the classification ablation on SmolLM2-135M, with the time each setting took.

Trains a fresh SmolLM2-135M spam classifier per row of ``slm_course.finetune.classify.ABLATION`` (last
block, last two blocks, all layers, LoRA on the top two blocks, all layers from random weights) on the
balanced SMS spam splits and prints test accuracy, trainable parameters and seconds, beside the
from-scratch course's published 95.67 % (GPT-2 small, last block). The rows that train top blocks share one
pass of the frozen blocks (its seconds printed once); the all-layer rows can be capped in steps, since on a
CPU each of their steps costs a whole forward and backward pass (``--max-steps-all``). Minutes to an hour.

    python benchmarks/classify_ablation.py [--max-steps 300] [--max-steps-all 300] [--max-length 64]
"""
from __future__ import annotations

import argparse

from slm_course.device import environment_report
from slm_course.finetune import classify as C
from slm_course.weights import smollm2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--max-steps-all", type=int, default=None, help="steps of the all-layer rows (default: --max-steps)")
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    print(environment_report(), flush=True)
    print(f"{'setting':26s} {'test acc':>9s} {'val acc':>8s} {'trainable':>10s} {'steps':>6s} {'seconds':>8s}", flush=True)

    def print_row(row: dict) -> None:
        print(f"{row['setting']:26s} {100 * row['test_accuracy']:8.2f}% {100 * row['validation_accuracy']:7.2f}% "
              f"{row['trainable'] / 1e6:9.2f}M {row['steps']:6d} {row['seconds']:8.0f}", flush=True)

    rows = C.ablation(smollm2, max_length=args.max_length, max_steps=args.max_steps, max_steps_all=args.max_steps_all,
                      progress=False, on_row=print_row)
    frozen = max(row["frozen_seconds"] for row in rows)
    print(f"frozen-block pass shared by the top-block and LoRA rows: {frozen:.0f} s (add it to their seconds)")
    print(f"{'reference (GPT-2 small)':26s} {100 * C.REFERENCE_TEST_ACCURACY:8.2f}%")


if __name__ == "__main__":
    main()
