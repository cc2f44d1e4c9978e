"""Benchmark (chapter 7): the classification ablation on SmolLM2-135M, with the time each setting took.

Trains a fresh SmolLM2-135M spam classifier per row of ``slm_course.finetune.classify.ABLATION`` (last
block, last two blocks, all layers, LoRA on the top two blocks, all layers from random weights) on the
balanced SMS spam splits and prints test accuracy, trainable parameters and seconds, beside the
from-scratch course's published 95.67 % (GPT-2 small, last block). Minutes to hours on a CPU.

    python benchmarks/classify_ablation.py [--max-steps 300] [--max-length 64]
"""
from __future__ import annotations

import argparse

from slm_course.device import environment_report
from slm_course.finetune import classify as C
from slm_course.weights import smollm2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--max-length", type=int, default=64)
    args = parser.parse_args()
    print(environment_report())
    rows = C.ablation(smollm2, max_length=args.max_length, max_steps=args.max_steps, progress=False)
    print(f"{'setting':26s} {'test acc':>9s} {'trainable':>11s} {'seconds':>8s}")
    for row in rows:
        print(f"{row['setting']:26s} {100 * row['test_accuracy']:8.2f}% {row['trainable'] / 1e6:10.2f}M "
              f"{row['seconds']:8.0f}")
    print(f"{'reference (GPT-2 small)':26s} {100 * C.REFERENCE_TEST_ACCURACY:8.2f}%")


if __name__ == "__main__":
    main()
