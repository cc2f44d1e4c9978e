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

    def log_of_softmax(logits, targets):  # shifted, but log(softmax) is -inf for a target of probability e^-400
        probs = torch.softmax(logits, dim=-1)
        return -probs.gather(-1, targets.unsqueeze(-1)).log().mean()

    def uses_cross_entropy(logits, targets):  # the statement asks for it by hand
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def uses_nll_loss(logits, targets):
        return F.nll_loss(torch.log_softmax(logits, -1).flatten(0, 1), targets.flatten())

    def uses_the_module(logits, targets):  # nn.CrossEntropyLoss calls F.cross_entropy
        return nn.CrossEntropyLoss()(logits.flatten(0, 1), targets.flatten())

    check(ch04.q1, [naive_softmax, summed, unshifted_argmax, wrong_axis, log_of_softmax, uses_cross_entropy,
                    uses_nll_loss, uses_the_module])

    def logsumexp(logits, targets):  # a correct alternative: log-sum-exp minus the target's score
        picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
        return (torch.logsumexp(logits, dim=-1) - picked).mean()

    assert ch04.q1.check(logsumexp, quiet=True).correct


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

    def other_names(s, m, peak, low, w):  # the statement's names are part of it: the check passes some by name
        return lr_at(s, TrainConfig(max_steps=m, lr=peak, min_lr=low, warmup_steps=w))

    def a_tensor(step, max_steps, lr, min_lr, warmup_steps):  # the value, but a tensor
        return torch.tensor(lr_at(step, TrainConfig(max_steps=max_steps, lr=lr, min_lr=min_lr,
                                                    warmup_steps=warmup_steps)))

    def rounded(step, max_steps, lr, min_lr, warmup_steps):  # printed-looking rounding hides in a loose tolerance
        return round(lr_at(step, TrainConfig(max_steps=max_steps, lr=lr, min_lr=min_lr, warmup_steps=warmup_steps)), 6)

    check(ch04.q2, [zero_at_start, decays_to_zero, cosine_over_whole_run, other_names, a_tensor, rounded])

    def in_float32(step, max_steps, lr, min_lr, warmup_steps):  # a correct alternative: float32, then float()
        if step < warmup_steps:
            return float(torch.tensor(lr) * (step + 1) / warmup_steps)
        p = torch.tensor((step - warmup_steps) / max(1, max_steps - 1 - warmup_steps))
        return float(min_lr + 0.5 * (1 + torch.cos(torch.pi * p)) * (lr - min_lr))

    assert ch04.q2.check(in_float32, quiet=True).correct


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

    def same_list_back(grads, max_norm):  # "return a new list": not the given one when nothing is clipped
        total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads))
        if total <= max_norm:
            return grads
        return [g * (max_norm / (float(total) + 1e-6)) for g in grads]

    def squares_in_half(grads, max_norm):  # float16 squares of a few hundred overflow to inf
        total = torch.sqrt(sum((g ** 2).sum() for g in grads))
        return [g * min(1.0, max_norm / (float(total) + 1e-6)) for g in grads]

    check(ch04.q3, [per_tensor, always_rescale, in_place, same_list_back, squares_in_half])

    def with_vector_norm(grads, max_norm):  # a correct alternative: norms in float32, a norm of norms
        total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g.float()) for g in grads]))
        return [g * min(1.0, max_norm / (float(total) + 1e-6)) for g in grads]

    assert ch04.q3.check(with_vector_norm, quiet=True).correct


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

    def one_backward(w, micro_batches):  # the right gradient, but the whole batch at once: not accumulated
        w = w.detach().clone().requires_grad_()
        x = torch.cat([x for x, _ in micro_batches])
        y = torch.cat([y for _, y in micro_batches])
        ((x @ w - y) ** 2).mean().backward()
        return w.grad

    def tracks_the_callers_w(w, micro_batches):  # w.requires_grad_() switches on the caller's tensor
        w.requires_grad_()
        for x, y in micro_batches:
            (((x @ w - y) ** 2).mean() / len(micro_batches)).backward()
        grad = w.grad.clone()
        return grad

    def by_autograd_grad(w, micro_batches):  # no backward() at all: torch.autograd.grad per micro-batch
        w = w.detach().clone().requires_grad_()
        total = torch.zeros_like(w)
        for x, y in micro_batches:
            total += torch.autograd.grad(((x @ w - y) ** 2).mean() / len(micro_batches), w)[0]
        return total

    check(ch04.q4, [unscaled, last_only, sum_loss, one_backward, tracks_the_callers_w, by_autograd_grad])

    def averaged_after(w, micro_batches):  # a correct alternative: sum the means, divide the gradient at the end
        w = w.detach().clone().requires_grad_()
        for x, y in micro_batches:
            ((x @ w - y) ** 2).mean().backward()
        return w.grad / len(micro_batches)

    assert ch04.q4.check(averaged_after, quiet=True).correct


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

    def other_names(loss, tokens, size):  # the check passes the statement's names
        return loss * tokens / (math.log(2) * size)

    check(ch04.q6, [per_token, nats_per_byte, log10, other_names])
    assert ch04.q6.check(lambda mean_loss, n_tokens, n_bytes: float(
        torch.tensor(mean_loss) * n_tokens / (math.log(2) * n_bytes)), quiet=True).correct  # float32, then float()


def test_compute_optimal_size():
    def no_six(flops, tokens_per_param=20.0):  # forgets the 6 FLOPs per parameter and token
        n = math.sqrt(flops / tokens_per_param)
        return n, tokens_per_param * n

    def no_square_root(flops, tokens_per_param=20.0):
        n = flops / (6 * tokens_per_param)
        return n, tokens_per_param * n

    def swapped(flops, tokens_per_param=20.0):
        n = math.sqrt(flops / (6 * tokens_per_param))
        return tokens_per_param * n, n

    def rounded(flops, tokens_per_param=20.0):  # whole parameter counts: wrong for a tiny budget, and ints
        n = round(math.sqrt(flops / (6 * tokens_per_param)))
        return n, round(tokens_per_param * n)

    def floor_division(flops, tokens_per_param=20.0):
        n = math.sqrt(flops // (6 * tokens_per_param))
        return n, tokens_per_param * n

    def ratio_ignored(flops, tokens_per_param=20.0):  # always 20
        n = math.sqrt(flops / 120)
        return n, 20 * n

    def a_list(flops, tokens_per_param=20.0):
        n = math.sqrt(flops / (6 * tokens_per_param))
        return [n, tokens_per_param * n]

    check(ch04.q7, [no_six, no_square_root, swapped, rounded, floor_division, ratio_ignored, a_list])

    def from_the_flops(flops, tokens_per_param=20.0):  # a correct alternative: D from C / (6 N), in float32
        n = float(torch.sqrt(torch.tensor(flops / (6 * tokens_per_param), dtype=torch.float32)))
        return n, flops / (6 * n)

    assert ch04.q7.check(from_the_flops, quiet=True).correct


def test_chinchilla_budget():
    def forward_only(n_params, tokens_per_param=20.0):  # 2 FLOPs per parameter and token: the forward pass
        d = tokens_per_param * n_params
        return d, 2 * n_params * d

    def flops_per_token(n_params, tokens_per_param=20.0):  # 6N: the cost of one token, not the run
        return tokens_per_param * n_params, 6 * n_params

    def ratio_ignored(n_params, tokens_per_param=20.0):
        return 20 * n_params, 6 * n_params * 20 * n_params

    def as_ints(n_params, tokens_per_param=20.0):
        d = int(tokens_per_param * n_params)
        return d, 6 * int(n_params) * d

    check(ch04.q8, [forward_only, flops_per_token, ratio_ignored, as_ints])
    assert ch04.q8.check(lambda n_params, tokens_per_param=20.0: (
        tokens_per_param * n_params, 6 * tokens_per_param * n_params ** 2), quiet=True).correct


def test_solutions_equal_the_package():
    logits, targets = torch.randn(2, 5, 11), torch.randint(0, 11, (2, 5))
    torch.testing.assert_close(SOLVED["next_token_loss"](logits, targets), lm_loss(lambda _x: logits, (None, targets)))
    config = TrainConfig(max_steps=40, lr=1e-3, min_lr=1e-5, warmup_steps=7)
    for step in range(40):
        assert math.isclose(SOLVED["learning_rate"](step, 40, 1e-3, 1e-5, 7), lr_at(step, config), rel_tol=1e-12)
    model = nn.Sequential(nn.Embedding(5, 3), nn.LayerNorm(3), nn.Linear(3, 3))
    decayed = {id(p) for g in param_groups(model, 0.1) if g["weight_decay"] > 0 for p in g["params"]}
    assert SOLVED["decay_mask"](model) == {n: id(p) in decayed for n, p in model.named_parameters()}
