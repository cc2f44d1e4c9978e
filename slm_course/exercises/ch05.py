"""Chapter 5 exercises (evaluation and generation): perplexity, temperature, top-k, top-p, one
KV-cache decode step, and min-p, the filtering idea taken where the lesson did not go.

The learner writes each piece in ``solutions/05_evaluation_generation.ipynb`` (the exercise copy);
the expected values come from :mod:`slm_course.generate`, the implementation ``generate`` uses.
"""
from __future__ import annotations

import math

import torch

from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.generate import (
    apply_temperature, attend_one_step, min_p_filter, perplexity_from_losses, top_k_filter, top_p_filter,
)


def _perplexity_cases() -> list[Case]:
    lists = [[0.0], [1.0, 3.0], [2.5, 0.1, 4.0, 1.2], [math.log(2048)] * 3, [7.6]]
    return [Case(f"perplexity({x})", call(x), lambda x=x: perplexity_from_losses(x)) for x in lists]


def _temperature_cases() -> list[Case]:
    logits = random_tensor(2, 6, seed=1) * 3
    one = torch.tensor([1.0, 2.0, 3.0])
    return [
        Case(f"temperature_probs(logits (2, 6), {t})", call(logits, t),
             lambda t=t: torch.softmax(apply_temperature(logits, t), dim=-1)) for t in (0.5, 1.0, 2.0)
    ] + [Case("temperature_probs(tensor([1., 2., 3.]), 0.25)", call(one, 0.25),
              lambda: torch.softmax(apply_temperature(one, 0.25), dim=-1))]


def _top_k_cases() -> list[Case]:
    logits = random_tensor(3, 10, seed=2)
    ties = torch.tensor([[2.0, 1.0, 1.0, 0.0, -1.0]])
    return [
        Case("top_k_filter(logits (3, 10), 3)", call(logits, 3), lambda: top_k_filter(logits, 3)),
        Case("top_k_filter(logits (3, 10), 1)", call(logits, 1), lambda: top_k_filter(logits, 1)),
        Case("top_k_filter(tensor([[2., 1., 1., 0., -1.]]), 2)  (a tie at the cut)", call(ties, 2),
             lambda: top_k_filter(ties, 2)),
        Case("top_k_filter(logits (3, 10), 10)  (k = vocab)", call(logits, 10), lambda: top_k_filter(logits, 10)),
        Case("top_k_filter(logits (3, 10), 25)  (k > vocab)", call(logits, 25), lambda: top_k_filter(logits, 25)),
    ]


def _top_p_cases() -> list[Case]:
    logits = random_tensor(3, 12, seed=3) * 2
    ties = torch.tensor([[2.0, 1.0, 1.0, 0.0, -1.0]])
    probs = torch.softmax(ties, -1)[0]
    cases = [(logits, p, f"logits (3, 12), {p}") for p in (0.3, 0.75, 0.95)]
    cases += [(ties, 0.5, "tensor([[2., 1., 1., 0., -1.]]), 0.5"),
              (ties, round(float(probs[0]) + 0.01, 4), f"tensor([[2., 1., 1., 0., -1.]]), {float(probs[0]) + 0.01:.4f}  (a tie)"),
              (logits, 1e-4, "logits (3, 12), 0.0001  (keep at least one)"),
              (logits, 1.0, "logits (3, 12), 1.0")]
    return [Case(f"top_p_filter({label})", call(x, p), lambda x=x, p=p: top_p_filter(x, p)) for x, p, label in cases]


def _decode_cases() -> list[Case]:
    cases = []
    for batch, heads, past, d, seed in ((1, 1, 3, 4, 10), (2, 3, 5, 8, 20), (1, 2, 1, 4, 30)):
        q, kn, vn = (random_tensor(batch, heads, 1, d, seed=seed + i) for i in range(3))
        kp, vp = random_tensor(batch, heads, past, d, seed=seed + 3), random_tensor(batch, heads, past, d, seed=seed + 4)
        cases.append(Case(f"decode_step(q, k_new, v_new (each ({batch}, {heads}, 1, {d})), k_past, v_past ({batch}, {heads}, {past}, {d}))",
                          call(q, kn, vn, kp, vp), lambda a=(q, kn, vn, kp, vp): attend_one_step(*a)))
    return cases


def _min_p_cases() -> list[Case]:
    logits = random_tensor(3, 20, seed=5) * 3
    peaked = torch.tensor([[8.0, 2.0, 1.0, 1.0, 0.0], [0.1, 0.0, 0.0, -0.1, 0.05]])
    return [
        Case(f"min_p_filter(logits (3, 20), {m})", call(logits, m), lambda m=m: min_p_filter(logits, m)) for m in (0.05, 0.3)
    ] + [
        Case("min_p_filter(a sure row and an unsure row, 0.1)", call(peaked, 0.1), lambda: min_p_filter(peaked, 0.1)),
        Case("min_p_filter(logits (3, 20), 0.0)", call(logits, 0.0), lambda: min_p_filter(logits, 0.0)),
    ]


q1 = Problem(
    name="q1", chapter="05", target="perplexity", title="perplexity from per-token losses", cases=_perplexity_cases,
    hints=[
        "Perplexity is the exponential of the mean loss (nats per token), not the mean of the exponentials. "
        "Return a Python float.",
        "Fill in:\n    mean = ____(token_losses) / ____(token_losses)\n    return float(math.____(mean))",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="05", target="temperature_probs", title="temperature", cases=_temperature_cases,
    hints=[
        "Divide the logits by the temperature (a small temperature makes big differences bigger), then take a "
        "softmax over the vocabulary, the last dimension.",
        "Fill in:\n    return torch.softmax(logits ____ temperature, dim=____)",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="05", target="top_k_filter", title="the top-k filter", cases=_top_k_cases,
    hints=[
        "Find the k-th largest logit of each row; every logit below it becomes -inf (not 0: a logit of 0 is "
        "still a likely token). Logits equal to the k-th are kept. k at or above the vocabulary keeps everything.",
        "Fill in:\n    if k >= logits.shape[-1]:\n        return ____\n"
        "    kth = torch.topk(logits, k, dim=-1).values[..., ____:]\n"
        "    return logits.masked_fill(logits ____ kth, float(\"____\"))",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="05", target="top_p_filter", title="the top-p (nucleus) filter", cases=_top_p_cases,
    hints=[
        "Sort the probabilities from the most likely down. A token is kept when the tokens ranked above it hold "
        "less than p of the mass — so the token that crosses p is kept, and the first one always. Then keep every "
        "token whose logit is at least the smallest kept one (that keeps ties together).",
        "Fill in:\n    sorted_logits, _ = torch.sort(logits, dim=-1, descending=____)\n"
        "    probs = torch.softmax(sorted_logits, dim=-1)\n"
        "    keep = torch.cumsum(probs, dim=-1) - ____ < p\n"
        "    threshold = sorted_logits.masked_fill(~keep, float(\"inf\")).amin(dim=-1, keepdim=____)\n"
        "    return logits.masked_fill(logits < ____, float(\"-inf\"))",
    ],
    points=3,
)

q5 = Problem(
    name="q5", chapter="05", target="decode_step", title="one KV-cache decode step", cases=_decode_cases,
    hints=[
        "Append the new token's key and value to the cached ones along the token dimension (-2), then let the "
        "one query attend to all of them. The new token is the last position: nothing is in its future, so no "
        "mask. (is_causal=True with one query would hide every key but the first!) Return a tuple of three.",
        "Fill in:\n    k_all = torch.cat([____, ____], dim=-2)\n    v_all = torch.cat([____, ____], dim=-2)\n"
        "    weights = torch.softmax(q @ k_all.transpose(-2, -1) / math.sqrt(q.shape[____]), dim=-1)\n"
        "    return (weights @ ____, k_all, v_all)",
    ],
    points=2,
)

q6 = Problem(
    name="q6", chapter="05", target="min_p_filter", title="min-p: a filter that follows the model's confidence",
    cases=_min_p_cases,
    hints=[
        "Turn the logits into probabilities; the cut is min_p times the largest probability of the same row. "
        "Tokens below the cut become -inf; the others keep their logits.",
        "Fill in:\n    probs = torch.softmax(logits, dim=____)\n"
        "    floor = min_p * probs.amax(dim=-1, keepdim=____)\n"
        "    return logits.masked_fill(probs ____ floor, float(\"-inf\"))",
    ],
    points=2,
)
