"""Chapter 4's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import math

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.exercises import ch04
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects
from slm_course.train import TrainConfig, lm_loss, lr_at, param_groups

SOLVED = notebook_objects("04")
STUB = notebook_objects("04", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def test_next_token_loss():
    def naive_softmax(logits, targets):  # exp overflows for large scores
        probs = logits.exp() / logits.exp().sum(-1, keepdim=True)
        return -probs.gather(-1, targets.unsqueeze(-1)).log().mean()

    def summed(logits, targets):
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")

    def unshifted_argmax(logits, targets):  # the log-probability of the top score, not of the target
        return -torch.log_softmax(logits, -1).max(-1).values.mean()

    def wrong_axis(logits, targets):
        return -torch.log_softmax(logits, dim=1).gather(-1, targets.unsqueeze(-1)).mean()

    check(ch04.q1, [naive_softmax, summed, unshifted_argmax, wrong_axis])


def test_learning_rate():
    def zero_at_start(step, max_steps, lr, min_lr, warmup_steps):  # the bug the loop must not have
        if step < warmup_steps:
            return lr * step / warmup_steps
        p = (step - warmup_steps) / max(1, max_steps - 1 - warmup_steps)
        return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (lr - min_lr)

    def decays_to_zero(step, max_steps, lr, min_lr, warmup_steps):
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        p = (step - warmup_steps) / max(1, max_steps - 1 - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * p)) * lr

    def cosine_over_whole_run(step, max_steps, lr, min_lr, warmup_steps):
        if step < warmup_steps:
            return lr * (step + 1) / warmup_steps
        p = step / (max_steps - 1)
        return min_lr + 0.5 * (1 + math.cos(math.pi * p)) * (lr - min_lr)

    check(ch04.q2, [zero_at_start, decays_to_zero, cosine_over_whole_run])


def test_clip_by_global_norm():
    def per_tensor(grads, max_norm):
        return [g * min(1.0, max_norm / (float(g.norm()) + 1e-6)) for g in grads]

    def always_rescale(grads, max_norm):  # scales small gradients up too
        total = torch.sqrt(sum((g ** 2).sum() for g in grads))
        return [g * max_norm / (float(total) + 1e-6) for g in grads]

    def in_place(grads, max_norm):
        total = torch.sqrt(sum((g ** 2).sum() for g in grads))
        for g in grads:
            g.mul_(min(1.0, max_norm / (float(total) + 1e-6)))
        return grads

    check(ch04.q3, [per_tensor, always_rescale, in_place])


def test_accumulated_gradient():
    def unscaled(w, micro_batches):  # N times too large
        w = w.detach().clone().requires_grad_()
        for x, y in micro_batches:
            ((x @ w - y) ** 2).mean().backward()
        return w.grad

    def last_only(w, micro_batches):
        w = w.detach().clone().requires_grad_()
        for x, y in micro_batches:
            w.grad = None
            ((x @ w - y) ** 2).mean().backward()
        return w.grad

    def sum_loss(w, micro_batches):
        w = w.detach().clone().requires_grad_()
        for x, y in micro_batches:
            ((x @ w - y) ** 2).sum().backward()
        return w.grad

    check(ch04.q4, [unscaled, last_only, sum_loss])


def test_decay_mask():
    def every_matrix(model):  # decays embeddings too (nanoGPT's rule)
        return {n: p.dim() >= 2 for n, p in model.named_parameters()}

    def by_name(model):  # "weight" in the name: norms' gains get decayed
        return {n: n.endswith("weight") for n, p in model.named_parameters()}

    def everything(model):
        return {n: True for n, _ in model.named_parameters()}

    check(ch04.q5, [every_matrix, by_name, everything])


def test_bits_per_byte_from_loss():
    def per_token(mean_loss, n_tokens, n_bytes):
        return mean_loss / math.log(2)

    def nats_per_byte(mean_loss, n_tokens, n_bytes):
        return mean_loss * n_tokens / n_bytes

    def log10(mean_loss, n_tokens, n_bytes):
        return mean_loss * n_tokens / (math.log(10) * n_bytes)

    check(ch04.q6, [per_token, nats_per_byte, log10])


def test_solutions_equal_the_package():
    logits, targets = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(SOLVED["next_token_loss"](logits, targets), lm_loss(lambda _x: logits, (None, targets)))
    config = TrainConfig(max_steps=40, lr=1e-3, min_lr=1e-5, warmup_steps=7)
    for step in range(40):
        assert math.isclose(SOLVED["learning_rate"](step, 40, 1e-3, 1e-5, 7), lr_at(step, config), rel_tol=1e-12)
    model = nn.Sequential(nn.Embedding(5, 3), nn.LayerNorm(3), nn.Linear(3, 3))
    decayed = {id(p) for g in param_groups(model, 0.1) if g["weight_decay"] > 0 for p in g["params"]}
    assert SOLVED["decay_mask"](model) == {n: id(p) in decayed for n, p in model.named_parameters()}
