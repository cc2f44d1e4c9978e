"""Chapter 7 exercises (classification finetuning and LoRA): the last real token under padding, the
classification loss, a balanced split, a LoRA forward pass, merging LoRA into a weight, precision/recall.

The learner writes each piece in ``solutions/07_classification_finetuning.ipynb`` (the exercise copy);
the expected values come from :mod:`slm_course.finetune.classify` and :mod:`slm_course.finetune.lora`.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.finetune import classify as C
from slm_course.finetune.lora import LoRALinear


def _mask(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


RIGHT = _mask([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]])  # lengths 3, 1 (a single token), 5
LEFT = _mask([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 1, 1, 1, 1]])
ONE = _mask([[1], [1]])


def _last_token_cases() -> list[Case]:
    logits = random_tensor(3, 5, 2, seed=70)
    wide = random_tensor(3, 5, 4, seed=71)
    single = random_tensor(2, 1, 3, seed=72)
    return [
        Case("last_real_token_logits(logits (3, 5, 2), right-padded mask)", call(logits, RIGHT),
             lambda: C.last_real_token(logits, RIGHT)),
        Case("last_real_token_logits(logits (3, 5, 4), left-padded mask)", call(wide, LEFT),
             lambda: C.last_real_token(wide, LEFT)),
        Case("last_real_token_logits(logits (2, 1, 3), mask [[1], [1]])", call(single, ONE),
             lambda: C.last_real_token(single, ONE)),
    ]


def _loss_cases() -> list[Case]:
    logits = random_tensor(3, 5, 2, seed=73) * 3
    labels = torch.tensor([1, 0, 1])
    wide = random_tensor(3, 5, 3, seed=74)
    labels3 = torch.tensor([2, 0, 1])

    def expected(lg, mask, y):
        return lambda: F.cross_entropy(C.last_real_token(lg, mask), y)

    return [
        Case("classification_loss(logits (3, 5, 2), right-padded mask, labels [1, 0, 1])",
             call(logits, RIGHT, labels), expected(logits, RIGHT, labels)),
        Case("classification_loss(logits (3, 5, 3), left-padded mask, labels [2, 0, 1])",
             call(wide, LEFT, labels3), expected(wide, LEFT, labels3)),
    ]


def _balanced_cases() -> list[Case]:
    lists = {
        "[1, 0, 0, 1, 0, 0, 0]": [1, 0, 0, 1, 0, 0, 0],
        "[0, 1, 1, 1, 0] (class 0 is the rarer)": [0, 1, 1, 1, 0],
        "[2, 0, 1, 2, 2, 0, 1, 0, 2] (three classes)": [2, 0, 1, 2, 2, 0, 1, 0, 2],
        "[0, 1, 0, 1] (already balanced)": [0, 1, 0, 1],
    }
    return [Case(f"balanced_indices({label})", call(labels), lambda labels=labels: C.balanced_indices(labels))
            for label, labels in lists.items()]


def _lora_layer(W, b, A, B, alpha, r) -> LoRALinear:
    base = nn.Linear(W.shape[1], W.shape[0], bias=b is not None)
    layer = LoRALinear(base, r=r, alpha=alpha)
    with torch.no_grad():
        base.weight.copy_(W)
        if b is not None:
            base.bias.copy_(b)
        layer.lora_A.copy_(A)
        layer.lora_B.copy_(B)
    return layer


def _lora_inputs(seed: int, d_in: int, d_out: int, r: int):
    return (random_tensor(d_out, d_in, seed=seed), random_tensor(d_out, seed=seed + 1),
            random_tensor(r, d_in, seed=seed + 2), random_tensor(d_out, r, seed=seed + 3))


def _lora_forward_cases() -> list[Case]:
    cases = []
    for seed, (batch, d_in, d_out, r, alpha) in enumerate([((4, 6), 6, 5, 2, 8), ((2, 3, 8), 8, 3, 4, 4),
                                                           ((1, 7), 7, 7, 1, 2)]):
        W, b, A, B = _lora_inputs(80 + 10 * seed, d_in, d_out, r)
        x = random_tensor(*batch, seed=90 + seed)
        cases.append(Case(f"lora_forward(x {batch}, W ({d_out}, {d_in}), b, A ({r}, {d_in}), B ({d_out}, {r}), "
                          f"alpha={alpha}, r={r})", call(x, W, b, A, B, alpha, r),
                          lambda x=x, W=W, b=b, A=A, B=B, alpha=alpha, r=r:
                          _lora_layer(W, b, A, B, alpha, r)(x).detach()))
    return cases


def _merge_cases() -> list[Case]:
    cases = []
    for seed, (d_in, d_out, r, alpha) in enumerate([(6, 5, 2, 8), (4, 9, 4, 4), (3, 3, 1, 16)]):
        W, _, A, B = _lora_inputs(100 + 10 * seed, d_in, d_out, r)
        cases.append(Case(f"merge_lora_weight(W ({d_out}, {d_in}), A ({r}, {d_in}), B ({d_out}, {r}), "
                          f"alpha={alpha}, r={r})", call(W, A, B, alpha, r),
                          lambda W=W, A=A, B=B, alpha=alpha, r=r:
                          _lora_layer(W, None, A, B, alpha, r).merged().weight.detach()))
    return cases


def _precision_recall_cases() -> list[Case]:
    examples = {
        "predictions [1, 1, 0, 0, 1, 0], labels [1, 0, 0, 1, 1, 0]": ([1, 1, 0, 0, 1, 0], [1, 0, 0, 1, 1, 0]),
        "predictions [1, 1, 1, 0], labels [1, 0, 0, 0]": ([1, 1, 1, 0], [1, 0, 0, 0]),
        "predictions [0, 0, 0], labels [1, 1, 0] (nothing called spam)": ([0, 0, 0], [1, 1, 0]),
        "predictions [1, 0], labels [0, 0] (no spam at all)": ([1, 0], [0, 0]),
    }

    def expected(p, y):
        return lambda: C.precision_recall(C.confusion_matrix(torch.tensor(p), torch.tensor(y)))

    return [Case(f"precision_recall({label})", call(torch.tensor(p), torch.tensor(y)), expected(p, y))
            for label, (p, y) in examples.items()]


q1 = Problem(
    name="q1", chapter="07", target="last_real_token_logits", title="the last real token under padding",
    cases=_last_token_cases,
    hints=[
        "For each row, find the position of the LAST 1 in the attention mask (padding may be on either side, "
        "so `mask.sum(1) - 1` is only right for right padding), then take that position's logits.",
        "Fill in:\n"
        "    positions = torch.arange(____).expand_as(attention_mask)\n"
        "    last = torch.where(attention_mask.bool(), positions, ____).max(dim=____).values\n"
        "    return logits[torch.arange(____), ____]",
    ],
    points=2,
)

q2 = Problem(
    name="q2", chapter="07", target="classification_loss", title="the classification loss",
    cases=_loss_cases,
    hints=[
        "Read each message's scores at its last real token (q1's idea), then the mean cross-entropy "
        "against the labels: one number, a 0-dimensional tensor.",
        "Fill in:\n"
        "    last = ____  # (B,) position of the last 1 in each row of the mask\n"
        "    scores = logits[torch.arange(logits.shape[0]), last]  # (B, C)\n"
        "    return F.____(scores, ____)",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="07", target="balanced_indices", title="a balanced split by undersampling",
    cases=_balanced_cases,
    hints=[
        "Count each class; every class keeps as many rows as the RAREST class has: its first ones, "
        "in order. Return all kept row indices as one sorted list of ints.",
        "Fill in:\n"
        "    keep_n = min(labels.count(y) for y in ____)\n"
        "    kept = [i for y in set(labels) for i in [j for j, l in enumerate(labels) if l == y][:____]]\n"
        "    return ____(kept)",
    ],
    points=1,
)

q4 = Problem(
    name="q4", chapter="07", target="lora_forward", title="a LoRA forward pass",
    cases=_lora_forward_cases,
    hints=[
        "The frozen layer's output x Wᵀ + b, plus the low-rank path x Aᵀ Bᵀ scaled by alpha / r "
        "(the course's convention: alpha is NOT the multiplier itself).",
        "Fill in:\n"
        "    frozen = x @ ____ + b\n"
        "    low_rank = (x @ ____) @ ____\n"
        "    return frozen + (____ / ____) * low_rank",
    ],
    points=1,
)

q5 = Problem(
    name="q5", chapter="07", target="merge_lora_weight", title="merging LoRA into a weight",
    cases=_merge_cases,
    hints=[
        "The merged weight makes x Wₘᵀ equal x Wᵀ + (alpha/r) x Aᵀ Bᵀ for every x, so Wₘ = W + (alpha/r) · B A, "
        "shape (out, in) like W. Return a new tensor: leave W unchanged.",
        "Fill in:\n"
        "    return W + (____ / ____) * (____ @ ____)",
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="07", target="precision_recall", title="precision and recall of a spam filter",
    cases=_precision_recall_cases,
    hints=[
        "Spam (1) is the positive class. Precision: of the messages called spam, the share that are spam. "
        "Recall: of the spam messages, the share called spam. Where a share has nothing to divide by, give 0.0.",
        "Fill in:\n"
        "    tp = int(((predictions == 1) & (labels == 1)).sum())\n"
        "    called, actual = int((predictions == ____).sum()), int((labels == ____).sum())\n"
        "    return (tp / called if called else ____, tp / actual if actual else ____)",
    ],
    points=1,
)
