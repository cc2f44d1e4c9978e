"""Chapter 7 exercises (classification finetuning and LoRA): the last real token under padding, the
classification loss, a balanced split, a LoRA forward pass, merging LoRA into a weight, precision/recall.

The learner writes each piece in ``solutions/07_classification_finetuning.ipynb`` (the exercise copy);
the expected values come from :mod:`slm_course.finetune.classify` and :mod:`slm_course.finetune.lora`.
"""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.exercises.compare import compare_values
from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.finetune import classify as C
from slm_course.finetune.lora import LoRALinear


def _mask(rows: list[list[int]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.long)


RIGHT = _mask([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]])  # lengths 3, 1 (a single token), 5
LEFT = _mask([[0, 0, 1, 1, 1], [0, 0, 0, 0, 1], [0, 1, 1, 1, 1]])
ONE = _mask([[1], [1]])
SINGLE_ROW = _mask([[0, 1, 1, 0]])  # a batch of one: a stray squeeze() loses the batch axis


def _last_token_cases() -> list[Case]:
    logits = random_tensor(3, 5, 2, seed=70)
    wide = random_tensor(3, 5, 4, seed=71)
    single = random_tensor(2, 1, 3, seed=72)
    batch_one = random_tensor(1, 4, 3, seed=75)
    return [
        Case("last_real_token_logits(logits (3, 5, 2), right-padded mask)", call(logits, RIGHT),
             lambda: C.last_real_token(logits, RIGHT)),
        Case("last_real_token_logits(logits (3, 5, 4), left-padded mask)", call(wide, LEFT),
             lambda: C.last_real_token(wide, LEFT)),
        Case("last_real_token_logits(logits (2, 1, 3), mask [[1], [1]])", call(single, ONE),
             lambda: C.last_real_token(single, ONE)),
        Case("last_real_token_logits(logits (1, 4, 3), mask [[0, 1, 1, 0]]: a batch of one, pads on both sides)",
             call(batch_one, SINGLE_ROW), lambda: C.last_real_token(batch_one, SINGLE_ROW)),
    ]


def _loss_cases() -> list[Case]:
    logits = random_tensor(3, 5, 2, seed=73) * 3
    labels = torch.tensor([1, 0, 1])
    wide = random_tensor(3, 5, 3, seed=74)
    labels3 = torch.tensor([2, 0, 1])
    one = random_tensor(1, 4, 3, seed=76) * 4

    def expected(lg, mask, y):
        return lambda: F.cross_entropy(C.last_real_token(lg, mask), y)

    return [
        Case("classification_loss(logits (3, 5, 2), right-padded mask, labels [1, 0, 1])",
             call(logits, RIGHT, labels), expected(logits, RIGHT, labels)),
        Case("classification_loss(logits (3, 5, 3), left-padded mask, labels [2, 0, 1])",
             call(wide, LEFT, labels3), expected(wide, LEFT, labels3)),
        Case("classification_loss(logits (1, 4, 3), mask [[0, 1, 1, 0]], labels [2]: a batch of one)",
             call(one, SINGLE_ROW, torch.tensor([2])), expected(one, SINGLE_ROW, torch.tensor([2]))),
    ]


def _balanced_cases() -> list[Case]:
    lists = {
        "[1, 0, 0, 1, 0, 0, 0]": [1, 0, 0, 1, 0, 0, 0],
        "[0, 1, 1, 1, 0] (class 0 is the rarer)": [0, 1, 1, 1, 0],
        "[2, 0, 1, 2, 2, 0, 1, 0, 2] (three classes)": [2, 0, 1, 2, 2, 0, 1, 0, 2],
        "[0, 1, 0, 1] (already balanced)": [0, 1, 0, 1],
        "[5, 2, 5, 5, 2, 9, 9, 9] (class ids 2, 5, 9: not 0, 1, 2)": [5, 2, 5, 5, 2, 9, 9, 9],
        "[3, -1, 3, 3, -1, -1, 3] (a negative id)": [3, -1, 3, 3, -1, -1, 3],
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
                                                           ((1, 7), 7, 7, 1, 2), ((3, 5), 5, 4, 2, 3),
                                                           ((1, 1, 4), 4, 6, 4, 1.0)]):
        W, b, A, B = _lora_inputs(80 + 10 * seed, d_in, d_out, r)
        x = random_tensor(*batch, seed=90 + seed)
        cases.append(Case(f"lora_forward(x {batch}, W ({d_out}, {d_in}), b, A ({r}, {d_in}), B ({d_out}, {r}), "
                          f"alpha={alpha}, r={r})", call(x, W, b, A, B, alpha, r),
                          lambda x=x, W=W, b=b, A=A, B=B, alpha=alpha, r=r:
                          _lora_layer(W, b, A, B, alpha, r)(x).detach()))
    return cases


def _merge_cases() -> list[Case]:
    cases = []
    for seed, (d_in, d_out, r, alpha) in enumerate([(6, 5, 2, 8), (4, 9, 4, 4), (3, 3, 1, 16), (5, 4, 2, 3),
                                                    (4, 6, 8, 2.0)]):  # alpha / r of 1.5 and 0.25
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
        "predictions [1, 1, 1, 1, 1, 1, 1, 0, 0], labels [1, 1, 0, 0, 0, 0, 0, 1, 1]": (
            [1, 1, 1, 1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0, 0, 1, 1]),  # 2/7 and 1/2: no rounding hides here
        "predictions [1], labels [1] (one message)": ([1], [1]),
    }

    def expected(p, y):
        return lambda: C.precision_recall(C.confusion_matrix(torch.tensor(p), torch.tensor(y)))

    # ratios of counts: float32 meets 1e-6, a ratio rounded to 4 decimals does not
    exact = functools.partial(compare_values, rtol=1e-6, atol=1e-9)
    return [Case(f"precision_recall({label})", call(torch.tensor(p), torch.tensor(y)), expected(p, y), compare=exact)
            for label, (p, y) in examples.items()]


q1 = Problem(
    name="q1", chapter="07", target="last_real_token_logits", title="the last real token under padding",
    cases=_last_token_cases,
    hints=[
        "For each row, find the position of the LAST 1 in the attention mask (padding may be on either side, "
        "so `mask.sum(1) - 1` is only right for right padding), then take that position's logits.",
        "Give every real position its own index and every pad a value below all of them; the largest value in "
        "a row is then its last real token. For the mask row 0 1 1 0: indices 0 1 2 3 become -1 1 2 -1, largest 2.",
    ],
    points=2,
)

q2 = Problem(
    name="q2", chapter="07", target="classification_loss", title="the classification loss",
    cases=_loss_cases,
    hints=[
        "Read each message's scores at its last real token (q1's idea), then the mean cross-entropy "
        "against the labels: one number, a 0-dimensional tensor.",
        "The scores to grade form a (B, C) matrix, one row per message, picked with two index tensors at once "
        "(the batch positions and each row's last real position); cross-entropy then averages over B for you.",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="07", target="balanced_indices", title="a balanced split by undersampling",
    cases=_balanced_cases,
    hints=[
        "Count each class; every class keeps as many rows as the RAREST class has: its first ones, "
        "in order. Return all kept row indices as one sorted list of ints.",
        "Take the classes from the labels themselves (ids need not be 0, 1, …): for labels 5 2 5 5 2 the rarest "
        "class, 2, has two rows, so class 5 keeps rows 0 and 2, class 2 keeps 1 and 4, and the answer is 0 1 2 4.",
    ],
    points=1,
)

q4 = Problem(
    name="q4", chapter="07", target="lora_forward", title="a LoRA forward pass",
    cases=_lora_forward_cases,
    hints=[
        "The frozen layer's output x Wᵀ + b, plus the low-rank path x Aᵀ Bᵀ scaled by alpha / r "
        "(the course's convention: alpha is NOT the multiplier itself).",
        "Keep the scale a true division: with alpha 3 and rank 2 it is 1.5 (floor division gives 1). Apply A "
        "first, then B, so the path goes in → r → out without forming the (out, in) product.",
    ],
    points=1,
)

q5 = Problem(
    name="q5", chapter="07", target="merge_lora_weight", title="merging LoRA into a weight",
    cases=_merge_cases,
    hints=[
        "The merged weight makes x Wₘᵀ equal x Wᵀ + (alpha/r) x Aᵀ Bᵀ for every x, so Wₘ = W + (alpha/r) · B A, "
        "shape (out, in) like W. Return a new tensor: leave W unchanged.",
        "The product runs the other way round from the forward pass: the matrix with out rows on the left, "
        "so that the result has the shape of W. The scale is a true quotient: three over two is one and a half."
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="07", target="precision_recall", title="precision and recall of a spam filter",
    cases=_precision_recall_cases,
    hints=[
        "Spam (1) is the positive class. Precision: of the messages called spam, the share that are spam. "
        "Recall: of the spam messages, the share called spam. Where a share has nothing to divide by, give 0.0.",
        "Worked small: predictions 1 1 0, labels 1 0 1. One true positive; two messages called spam, two spam "
        "messages; precision one half, recall one half. Turn each count into a Python int before dividing.",
    ],
    points=1,
)
