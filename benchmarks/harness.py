"""Benchmark (chapter 9): the course's benchmark harness against lm-eval itself, on SmolLM2-135M-Instruct
and the 282 bundled MMLU questions (letter format, zero-shot), in one run.

Prints both accuracies with standard errors, how many items the two harnesses answer the same way,
the largest log-likelihood difference, and both wall times as a ratio (> 1: the course's harness is
faster; it shares each question's context across its four options through the KV cache, while the
adapter lm-eval drives scores every request on its own).

    python benchmarks/harness.py [--items 282]
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from slm_course.device import environment_report, set_seed
from slm_course.evaluate.benchmarks import mmlu_item, multiple_choice, requests_of
from slm_course.evaluate.datasets import mmlu_questions
from slm_course.evaluate.lm_eval_adapter import evaluate_mmlu_with_lm_eval
from slm_course.evaluate.scoring import loglikelihoods
from slm_course.weights import smollm2


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=282)
    args = parser.parse_args()
    print(environment_report())
    set_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model, tokenizer = smollm2()
    questions = [q for q in mmlu_questions() if len(q.choices) == 4][: args.items]
    items = [mmlu_item(q.question, q.choices, q.answer, "letter", q.subject) for q in questions]

    start = time.perf_counter()
    ours = [[ll for ll, _ in loglikelihoods(model, tokenizer, requests_of(item))] for item in items]
    course_seconds = time.perf_counter() - start
    result = multiple_choice(items, lambda r: loglikelihoods(model, tokenizer, r))["acc"]

    start = time.perf_counter()
    reference = evaluate_mmlu_with_lm_eval(model, tokenizer, questions)
    lm_eval_seconds = time.perf_counter() - start

    ours_pick = [int(np.argmax(row)) for row in ours]
    same = sum(a == b for a, b in zip(ours_pick, reference["predictions"]))
    diff = float(np.abs(np.array(ours) - np.array(reference["lls"])).max())
    lm_eval_stderr = float(np.std([p == q.answer for p, q in zip(reference["predictions"], questions)], ddof=1) / np.sqrt(len(questions)))
    print(f"\nMMLU, {len(items)} questions from the asset (letter format, zero-shot), SmolLM2-135M-Instruct:")
    print(f"  course harness: acc {result.value:.4f} ± {result.stderr:.4f}   (random guessing {result.baseline:.2f})")
    print(f"  lm-eval       : acc {reference['acc']:.4f} ± {lm_eval_stderr:.4f}")
    print(f"  same answer on {same}/{len(items)} items; largest log-likelihood difference {diff:.2e}")
    print(f"  wall time: course {course_seconds:.1f} s, lm-eval {lm_eval_seconds:.1f} s, "
          f"ratio lm-eval/course {lm_eval_seconds / course_seconds:.2f}x (target >= 1.0)")
    cloze = [mmlu_item(q.question, q.choices, q.answer, "cloze", q.subject) for q in questions]
    cloze_result = multiple_choice(cloze, lambda r: loglikelihoods(model, tokenizer, r))
    low, high = cloze_result["acc"].bootstrap(1000, seed=0)
    print(f"  cloze format  : acc {cloze_result['acc'].value:.4f} ± {cloze_result['acc'].stderr:.4f} "
          f"(bootstrap 95% [{low:.3f}, {high:.3f}]), acc_norm {cloze_result['acc_norm'].value:.4f}")


if __name__ == "__main__":
    main()
