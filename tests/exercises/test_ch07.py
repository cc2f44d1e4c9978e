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

    def first_real_token(logits, mask):  # argmax finds the FIRST 1
        return logits[torch.arange(logits.shape[0]), mask.argmax(1)]

    def stray_squeeze(logits, mask):  # right except on a batch of one, which loses its batch axis
        return SOLVED["last_real_token_logits"](logits, mask).squeeze()

    check(ch07.q1, [last_position, sum_minus_one, first_pad_position, first_real_token, stray_squeeze])

    def flipped_argmax(logits, mask):  # another right answer: the first 1 from the end
        last = mask.shape[1] - 1 - mask.flip(1).argmax(1)
        return logits[torch.arange(logits.shape[0]), last]

    assert ch07.q1.check(flipped_argmax, quiet=True).status == "correct"


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

    def every_real_token(logits, mask, labels):  # the label graded at every real token, not the last one
        per_token = labels[:, None].expand(mask.shape)
        losses = F.cross_entropy(logits.transpose(1, 2), per_token, reduction="none")
        return (losses * mask).sum() / mask.sum()

    check(ch07.q2, [at_last_position, summed, softmax_twice, right_padding_only, every_real_token])


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

    def ids_from_zero(labels):  # assumes the classes are 0 … max: a missing id counts 0 rows
        n = min(labels.count(y) for y in range(max(labels) + 1))
        return sorted(i for y in set(labels) for i in [j for j, l in enumerate(labels) if l == y][:n])

    def ids_count_up(labels):  # assumes the ids are 0 … (number of classes - 1)
        classes = range(len(set(labels)))
        n = min(labels.count(y) for y in set(labels))
        return sorted(i for y in classes for i in [j for j, l in enumerate(labels) if l == y][:n])

    check(ch07.q3, [unsorted, two_classes_only, last_rows, as_tuple, ids_from_zero, ids_count_up])


def test_lora_forward():
    def alpha_only(x, W, b, A, B, alpha, r):
        return x @ W.t() + b + alpha * (x @ A.t() @ B.t())

    def no_bias(x, W, b, A, B, alpha, r):
        return x @ W.t() + (alpha / r) * (x @ A.t() @ B.t())

    def r_over_alpha(x, W, b, A, B, alpha, r):
        return x @ W.t() + b + (r / alpha) * (x @ A.t() @ B.t())

    def frozen_only(x, W, b, A, B, alpha, r):  # B = 0 at init makes this look right on a fresh layer
        return x @ W.t() + b

    def floor_division(x, W, b, A, B, alpha, r):  # alpha // r: 3 // 2 is 1, 1.0 // 4 is 0
        return x @ W.t() + b + (alpha // r) * (x @ A.t() @ B.t())

    check(ch07.q4, [alpha_only, no_bias, r_over_alpha, frozen_only, floor_division])

    def with_linear(x, W, b, A, B, alpha, r):  # another right answer
        return F.linear(x, W, b) + alpha / r * F.linear(F.linear(x, A), B)

    assert ch07.q4.check(with_linear, quiet=True).status == "correct"


def test_merge_lora_weight():
    def in_place(W, A, B, alpha, r):
        W += (alpha / r) * (B @ A)
        return W

    def alpha_only(W, A, B, alpha, r):
        return W + alpha * (B @ A)

    def delta_only(W, A, B, alpha, r):
        return (alpha / r) * (B @ A)

    def floor_division(W, A, B, alpha, r):
        return W + (alpha // r) * (B @ A)

    def int_scale(W, A, B, alpha, r):
        return W + int(alpha / r) * (B @ A)

    check(ch07.q5, [in_place, alpha_only, delta_only, floor_division, int_scale])


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

    def rounded(predictions, labels):  # 4 decimals look tidy but are not the ratio
        p, r = SOLVED["precision_recall"](predictions, labels)
        return round(p, 4), round(r, 4)

    def tensors(predictions, labels):  # 0-d tensors, not floats
        tp = ((predictions == 1) & (labels == 1)).sum().float()
        return (tp / (predictions == 1).sum().clamp(min=1), tp / (labels == 1).sum().clamp(min=1))

    check(ch07.q6, [swapped, accuracy_twice, nan_on_zero, as_list, rounded, tensors])

    def float32_route(predictions, labels):  # another right answer: float32 arithmetic, float() at the end
        tp = ((predictions == 1) & (labels == 1)).sum().float()
        called, actual = (predictions == 1).sum().float(), (labels == 1).sum().float()
        return (float(tp / called) if called else 0.0, float(tp / actual) if actual else 0.0)

    assert ch07.q6.check(float32_route, quiet=True).status == "correct"


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
