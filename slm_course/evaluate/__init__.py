"""Evaluation (chapter 9): a benchmark harness that scores the way EleutherAI's ``lm-eval`` does, and
Elo / Bradley–Terry leaderboards from pairwise games.

- :mod:`slm_course.evaluate.scoring`: log-likelihoods of continuations (with a shared-prefix KV cache).
- :mod:`slm_course.evaluate.benchmarks`: tasks and their metrics (acc, acc_norm, letter vs cloze MMLU,
  Winogrande's partial scoring, TruthfulQA MC1/MC2, GSM8k exact match), standard errors, baselines.
- :mod:`slm_course.evaluate.datasets`: the 282 real MMLU questions from the assets, small original
  items in the other formats (not the real benchmarks), seeded GSM8k-style problems.
- :mod:`slm_course.evaluate.lm_eval_adapter`: lets ``lm-eval`` itself evaluate an ``SLM`` (cross-check).
- :mod:`slm_course.evaluate.elo`: Elo, Bradley–Terry, bootstrap intervals.
"""
