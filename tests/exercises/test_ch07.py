"""Chapter 7's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import torch
import torch.nn.functional as F

from slm_course.exercises import ch07
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects
from slm_course.finetune import classify as C
from slm_course.finetune.lora import LoRALinear

SOLVED = notebook_objects("07")
STUB = notebook_objects("07", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def test_last_real_token_logits():
    def last_position(logits, mask):  # reads padding for right-padded rows
        return logits[:, -1]

    def sum_minus_one(logits, mask):  # right only: wrong under left padding
        return logits[torch.arange(logits.shape[0]), mask.sum(1) - 1]

    def first_pad_position(logits, mask):  # off by one
        return logits[torch.arange(logits.shape[0]), mask.sum(1).clamp(max=mask.shape[1] - 1)]

    check(ch07.q1, [last_position, sum_minus_one, first_pad_position])


def test_classification_loss():
    def at_last_position(logits, mask, labels):
        return F.cross_entropy(logits[:, -1], labels)

    def summed(logits, mask, labels):
        last = C.last_token_index(mask)
        return F.cross_entropy(logits[torch.arange(len(labels)), last], labels, reduction="sum")

    def softmax_twice(logits, mask, labels):
        last = C.last_token_index(mask)
        return F.cross_entropy(torch.softmax(logits[torch.arange(len(labels)), last], -1), labels)

    def right_padding_only(logits, mask, labels):
        return F.cross_entropy(logits[torch.arange(len(labels)), mask.sum(1) - 1], labels)

    check(ch07.q2, [at_last_position, summed, softmax_twice, right_padding_only])


def test_balanced_indices():
    def unsorted(labels):
        n = min(labels.count(y) for y in set(labels))
        return [i for y in sorted(set(labels)) for i in [j for j, l in enumerate(labels) if l == y][:n]]

    def two_classes_only(labels):  # assumes ham/spam
        n = min(labels.count(0), labels.count(1))
        return sorted([i for i, l in enumerate(labels) if l == 0][:n] + [i for i, l in enumerate(labels) if l == 1][:n])

    def last_rows(labels):
        n = min(labels.count(y) for y in set(labels))
        return sorted(i for y in set(labels) for i in [j for j, l in enumerate(labels) if l == y][-n:])

    def as_tuple(labels):
        return tuple(SOLVED["balanced_indices"](labels))

    check(ch07.q3, [unsorted, two_classes_only, last_rows, as_tuple])


def test_lora_forward():
    def alpha_only(x, W, b, A, B, alpha, r):
        return x @ W.t() + b + alpha * (x @ A.t() @ B.t())

    def no_bias(x, W, b, A, B, alpha, r):
        return x @ W.t() + (alpha / r) * (x @ A.t() @ B.t())

    def r_over_alpha(x, W, b, A, B, alpha, r):
        return x @ W.t() + b + (r / alpha) * (x @ A.t() @ B.t())

    def frozen_only(x, W, b, A, B, alpha, r):  # B = 0 at init makes this look right on a fresh layer
        return x @ W.t() + b

    check(ch07.q4, [alpha_only, no_bias, r_over_alpha, frozen_only])


def test_merge_lora_weight():
    def in_place(W, A, B, alpha, r):
        W += (alpha / r) * (B @ A)
        return W

    def alpha_only(W, A, B, alpha, r):
        return W + alpha * (B @ A)

    def delta_only(W, A, B, alpha, r):
        return (alpha / r) * (B @ A)

    check(ch07.q5, [in_place, alpha_only, delta_only])


def test_precision_recall():
    def swapped(predictions, labels):
        p, r = SOLVED["precision_recall"](predictions, labels)
        return r, p

    def accuracy_twice(predictions, labels):
        acc = float((predictions == labels).float().mean())
        return acc, acc

    def nan_on_zero(predictions, labels):
        tp = int(((predictions == 1) & (labels == 1)).sum())
        called, actual = int((predictions == 1).sum()), int((labels == 1).sum())
        return (tp / called if called else float("nan"), tp / actual if actual else float("nan"))

    def as_list(predictions, labels):
        return list(SOLVED["precision_recall"](predictions, labels))

    check(ch07.q6, [swapped, accuracy_twice, nan_on_zero, as_list])


def test_solutions_equal_the_package():
    mask = torch.tensor([[0, 1, 1], [1, 0, 0]])
    logits = torch.randn(2, 3, 2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(SOLVED["last_real_token_logits"](logits, mask), C.last_real_token(logits, mask))
    base = torch.nn.Linear(4, 3)
    layer = LoRALinear(base, r=2, alpha=6)
    with torch.no_grad():
        layer.lora_B.normal_()
    x = torch.randn(5, 4)
    ours = SOLVED["lora_forward"](x, base.weight, base.bias, layer.lora_A, layer.lora_B, 6, 2)
    torch.testing.assert_close(ours, layer(x))
    torch.testing.assert_close(SOLVED["merge_lora_weight"](base.weight, layer.lora_A, layer.lora_B, 6, 2),
                               layer.merged().weight)
    labels = [0, 1, 1, 0, 0, 2]
    assert SOLVED["balanced_indices"](labels) == C.balanced_indices(labels)
