"""Chapter 4 exercises (pretraining): the loss of a batch, the schedule, clipping, accumulation, decay, bits per
byte, and compute-optimal sizes from a FLOP budget (Chinchilla's rule), then the budget of a given model.

The learner writes each piece in ``solutions/04_pretraining.ipynb`` (the exercise copy); the expected
values come from :mod:`slm_course.train`, the loop every later chapter trains with, and for the last two
from the rule itself, written out here: C = 6·N·D and D = r·N.
"""
from __future__ import annotations

import functools
import math

import torch
from torch import nn

from slm_course.exercises.core import (
    Case, Problem, call, call_for_new, compare_values, count_calls, forbid, random_tensor,
)
from slm_course.train import TrainConfig, lm_loss, lr_at, param_groups


# The statement asks for the loss by hand: these are every public way to have PyTorch compute it.
LOSS_SHORTCUTS = ("torch.nn.functional.cross_entropy", "torch.nn.functional.nll_loss")


def _loss_cases() -> list[Case]:
    cases = []
    for label, logits, targets in (
        ("logits (2, 3, 5), targets (2, 3)", random_tensor(2, 3, 5, seed=1), torch.tensor([[0, 4, 2], [1, 1, 3]])),
        ("logits (1, 4, 7) × 100 (large scores)", random_tensor(1, 4, 7, seed=2) * 100, torch.tensor([[6, 0, 3, 2]])),
        ("logits (3, 1, 2), targets id 0", random_tensor(3, 1, 2, seed=3), torch.zeros(3, 1, dtype=torch.long)),
        # the target's probability is e^-400: 0 in float32, so log(softmax) gives -log 0 = inf
        ("logits [[[0., 200., -200.]]], targets [[2]] (a very unlikely target)",
         torch.tensor([[[0.0, 200.0, -200.0]]]), torch.tensor([[2]])),
    ):
        expected = (lambda lg=logits, t=targets: lm_loss(lambda _x: lg, (None, t)))
        run = forbid(call(logits, targets), *LOSS_SHORTCUTS,
                     advice="Write it by hand: a log-softmax, then pick each target's entry.")
        cases.append(Case(f"next_token_loss({label})", run, expected))
    return cases


def _lr_cases() -> list[Case]:
    settings = [(0, 100, 1e-3, 1e-4, 10), (9, 100, 1e-3, 1e-4, 10), (10, 100, 1e-3, 1e-4, 10), (55, 100, 1e-3, 1e-4, 10),
                (99, 100, 1e-3, 1e-4, 10), (0, 50, 6e-4, 0.0, 0), (30, 50, 6e-4, 0.0, 0), (3, 20, 2e-3, 2e-4, 5),
                (0, 10, 3e-4, 3e-5, 1), (7, 30, 1e-3, 5e-4, 3)]
    # Passed by name (every statement name), positionally otherwise.
    return [Case(f"learning_rate(step={s}, max_steps={m}, lr={lr}, min_lr={lo}, warmup_steps={w})",
                 call(step=s, max_steps=m, lr=lr, min_lr=lo, warmup_steps=w) if i % 2 else call(s, m, lr, lo, w),
                 lambda s=s, m=m, lr=lr, lo=lo, w=w: lr_at(s, TrainConfig(max_steps=m, lr=lr, min_lr=lo, warmup_steps=w)),
                 compare=_python_number)
            for i, (s, m, lr, lo, w) in enumerate(settings)]


def _python_number(expected, actual):
    """The default float comparison, and a tensor is refused: the statement asks for a Python float."""
    if isinstance(actual, torch.Tensor):
        return f"expected a Python float, got a tensor ({actual!r}): return `float(...)` of it"
    return compare_values(expected, actual)


def _floats(expected, actual, names=("n_params", "n_tokens")):
    """A tuple of two floats: Python or NumPy floats (an int, a rounded count, is refused)."""
    import numpy as np

    if isinstance(actual, tuple):
        for index, item in enumerate(actual):
            if isinstance(item, (bool, int, np.integer)):
                return f"{names[index]}: expected a float, got the int {item!r} (do not round)"
    return compare_values(expected, actual, parts=(names,))


def _clipped(grads, max_norm):
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = min(1.0, max_norm / (float(total) + 1e-6))
    return [g * scale for g in grads]


def _clip_cases() -> list[Case]:
    big = [random_tensor(3, 4, seed=4) * 5, random_tensor(4, seed=5) * 5]
    small = [random_tensor(2, 2, seed=6) * 0.01, random_tensor(3, seed=7) * 0.01]
    one_big = [random_tensor(5, seed=8) * 0.01, torch.tensor([30.0, -40.0])]
    half = [(random_tensor(50, seed=9) * 300).half(), torch.full((3,), 200.0).half()]  # squares overflow float16
    cases = []
    for label, grads, bound in (("two large gradients, max_norm=1.0", big, 1.0), ("two small gradients, max_norm=1.0", small, 1.0),
                                ("one small and one of norm 50, max_norm=5.0", one_big, 5.0)):
        # the package's clipping (torch's clip_grad_norm_ on parameters holding these gradients)
        def expected(grads=grads, bound=bound):
            params = [torch.zeros_like(g, requires_grad=True) for g in grads]
            for p, g in zip(params, grads):
                p.grad = g.clone()
            torch.nn.utils.clip_grad_norm_(params, bound)
            return [p.grad for p in params]
        cases.append(Case(f"clip_by_global_norm({label})", call_for_new(grads, bound), expected))

    def expected_half():  # in float64, then back to float16
        total = math.sqrt(sum(float((g.double() ** 2).sum()) for g in half))
        return [(g.double() * min(1.0, 1.0 / (total + 1e-6))).half() for g in half]

    cases.append(Case("clip_by_global_norm(two float16 gradients with entries in the hundreds, max_norm=1.0)",
                      call_for_new(half, 1.0), expected_half,
                      functools.partial(compare_values, rtol=2e-3, atol=1e-4)))  # float16 holds ~3 digits
    cases.append(Case("clip_by_global_norm(two small gradients, max_norm=1.0)  (nothing to clip: a new list)",
                      call_for_new(small, max_norm=1.0), lambda: [g.clone() for g in small]))
    return cases


def _accum_data(seed: int, n_micro: int, b: int, d: int):
    x = random_tensor(n_micro * b, d, seed=seed)
    y = random_tensor(n_micro * b, seed=seed + 100)
    return [(x[i * b:(i + 1) * b], y[i * b:(i + 1) * b]) for i in range(n_micro)], x, y


def _accum_cases() -> list[Case]:
    cases = []
    for seed, n, b, d in ((10, 4, 3, 5), (11, 2, 8, 3), (12, 1, 4, 2)):
        w = random_tensor(d, seed=seed + 50)
        micro, x, y = _accum_data(seed, n, b, d)

        def expected(w=w, x=x, y=y):  # the gradient of one big batch's mean squared error
            w = w.clone().requires_grad_()
            ((x @ w - y) ** 2).mean().backward()
            return w.grad
        run = count_calls(call(w, micro), "torch.Tensor.backward", times=n,
                          what="`backward()` once per micro-batch")
        cases.append(Case(f"accumulated_gradient(w ({d},), {n} micro-batches of {b})", run, expected))
    return cases


class _Classifier(nn.Module):
    """An unfamiliar model: embeddings, a norm, a linear layer with bias and a classification head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(10, 4)
        self.norm = nn.LayerNorm(4)
        self.hidden = nn.Linear(4, 4)
        self.head = nn.Linear(4, 2, bias=False)
        self.scale = nn.Parameter(torch.ones(1))


def _decay_cases() -> list[Case]:
    from slm_course.model import SLM, SLMConfig

    def models():
        torch.manual_seed(0)
        tiny = SLM(SLMConfig.from_name("tiny", vocab_size=32, context_length=8, d_model=8, n_layers=1, n_heads=2))
        conv = nn.Sequential(nn.Conv1d(2, 3, 3), nn.BatchNorm1d(3), nn.Flatten(), nn.Linear(3, 1))
        return [("an SLM (tiny, 1 layer)", tiny), ("a classifier with an embedding", _Classifier()),
                ("a Conv1d + BatchNorm network", conv)]

    def expected(model):
        decayed = {id(p) for g in param_groups(model, 0.1) if g["weight_decay"] > 0 for p in g["params"]}
        return {name: id(p) in decayed for name, p in model.named_parameters()}

    # call() compares inputs before and after, which modules do not support: each run gets a fresh copy instead.
    import copy

    return [Case(f"decay_mask({label})", lambda fn, model=model: fn(copy.deepcopy(model)),
                 lambda model=model: expected(model)) for label, model in models()]


def _bpb_cases() -> list[Case]:
    settings = [(2.0, 1000, 4000), (4.5, 128, 300), (0.0, 10, 10), (3.2, 7, 21), (1.37, 2_000_000, 7_654_321)]
    return [Case(f"bits_per_byte_from_loss(mean_loss={l}, n_tokens={t}, n_bytes={b})",
                 call(mean_loss=l, n_tokens=t, n_bytes=b) if i % 2 else call(l, t, b),
                 l * t / (math.log(2) * b), compare=_python_number) for i, (l, t, b) in enumerate(settings)]


def _optimal_size(flops: float, tokens_per_param: float) -> tuple[float, float]:
    """(N, D) with 6·N·D = flops and D = r·N: N = sqrt(C / (6 r))."""
    n_params = math.sqrt(flops / (6 * tokens_per_param))
    return n_params, tokens_per_param * n_params


def _optimal_size_cases() -> list[Case]:
    settings = [(5.76e23, None, "Chinchilla's budget"), (1e21, None, ""), (1e4, None, "a tiny budget"),
                (3e19, 12.5, ""), (2.2e25, 100.0, "")]
    cases = []
    for flops, ratio, note in settings:
        tail = f"  ({note})" if note else ""
        if ratio is None:  # the default ratio, 20
            cases.append(Case(f"compute_optimal_size({flops:g}){tail}", call(flops),
                              _optimal_size(flops, 20.0), _floats))
        else:
            cases.append(Case(f"compute_optimal_size({flops:g}, tokens_per_param={ratio}){tail}",
                              call(flops, tokens_per_param=ratio), _optimal_size(flops, ratio), _floats))
    return cases


def _budget_cases() -> list[Case]:
    settings = [(134_515_008, None, "SmolLM2-135M"), (1.1e9, None, ""), (70e9, None, "Chinchilla's size"),
                (5e5, 37.5, ""), (125e6, 1.5, "")]
    cases = []
    for n_params, ratio, note in settings:
        r = 20.0 if ratio is None else ratio
        expected = (r * n_params, 6 * n_params * r * n_params)
        tail = f"  ({note})" if note else ""
        label = f"chinchilla_budget({n_params:g}" + ("" if ratio is None else f", tokens_per_param={ratio}") + f"){tail}"
        run = call(n_params) if ratio is None else call(n_params, tokens_per_param=ratio)
        cases.append(Case(label, run, expected, functools.partial(_floats, names=("n_tokens", "flops"))))
    return cases



q1 = Problem(
    name="q1", chapter="04", target="next_token_loss", title="the loss of a batch", cases=_loss_cases,
    hints=[
        "Cross-entropy is minus the log-probability of the right next token, averaged over every position of "
        "every sequence. Take log-probabilities with a log-softmax over the vocabulary (stable for large scores), "
        "then pick each target's entry.",
        "After a log-softmax over the vocabulary, pick each target's entry with `gather` along the last "
        "dimension; it needs the index with the same number of dimensions, so give the targets a "
        "trailing dimension of size 1 first, then average minus the picked values.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="04", target="learning_rate", title="warmup then cosine", cases=_lr_cases,
    hints=[
        "During warmup the rate climbs linearly and step 0 must already be positive: count the step as step + 1. "
        "After warmup a half cosine runs from lr (at step warmup_steps) down to min_lr (at the last step, max_steps - 1).",
        "Worked on warmup_steps = 4: steps 0 to 3 get a quarter, a half, three quarters and all of lr. "
        "After that the progress runs from 0 at step warmup_steps to 1 at the last step, max_steps − 1, "
        "and the cosine term, one plus the cosine of π times the progress, halved, falls from 1 to 0 "
        "between lr and min_lr.",
    ],
    points=2,
)

q3 = Problem(
    name="q3", chapter="04", target="clip_by_global_norm", title="clip by the global norm", cases=_clip_cases,
    hints=[
        "Measure ONE norm over all gradients together (the square root of the sum of every squared entry), and "
        "if it exceeds max_norm scale every gradient by the same factor. Never scale up, never edit the inputs.",
        "One norm for all: the square root of the sum, over the gradients, of each one's sum of squares. "
        "The factor is never above 1: max_norm over (norm + 1e-6) when that is smaller; every returned "
        "gradient is a new tensor, the given one times that factor.",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="04", target="accumulated_gradient", title="gradient accumulation", cases=_accum_cases,
    hints=[
        "Backpropagate each micro-batch's mean loss divided by the number of micro-batches: the gradients add up "
        "in w.grad to the gradient of the mean over the whole batch. Start from a fresh copy of w that requires grad.",
        "Each micro-batch's mean loss divided by the number of micro-batches, then backward: the "
        "gradients add up in the copy's `.grad`. The copy is a detached clone of w that requires grad, "
        "so the caller's w neither changes nor starts tracking gradients.",
    ],
    points=2,
)

q5 = Problem(
    name="q5", chapter="04", target="decay_mask", title="which parameters get weight decay", cases=_decay_cases,
    hints=[
        "Decay the weight matrices of layers that mix features (linear, convolution: two or more dimensions), but "
        "not norms, biases or single numbers, and not embeddings (a row only learns when its token appears).",
        "An embedding's weight is two-dimensional too, so the number of dimensions alone decays it: "
        "first collect the ids of the weights of every `nn.Embedding` among the model's modules, then "
        "exclude those.",
    ],
    points=2,
)

q6 = Problem(
    name="q6", chapter="04", target="bits_per_byte_from_loss", title="from loss per token to bits per byte",
    cases=_bpb_cases,
    hints=[
        "The mean loss is in nats per token: multiply by the number of tokens for the total in nats, convert "
        "nats to bits (divide by ln 2), then share them over the bytes.",
        "Worked on 2 tokens at 1.5 nats each: 3 nats in all, which is 3 / ln 2 ≈ 4.33 bits; over 4 bytes "
        "that is about 1.08 bits per byte.",
    ],
    points=1,
)

q7 = Problem(
    name="q7", chapter="04", target="compute_optimal_size", title="compute-optimal size from a FLOP budget",
    cases=_optimal_size_cases,
    hints=[
        "Two equations in two unknowns: the budget is C = 6·N·D FLOPs, and the compute-optimal run sees r tokens "
        "per parameter, D = r·N. Put the second into the first and solve for N; D follows.",
        "Substituting gives C = 6·r·N², so N is the square root of C over 6r. Worked on C = 1.2e21 with r = 20: "
        "N = √(1e19) ≈ 3.16e9 parameters and D = 20 N ≈ 6.3e10 tokens.",
    ],
    points=2,
)

q8 = Problem(
    name="q8", chapter="04", target="chinchilla_budget", title="the compute-optimal budget of a given model",
    cases=_budget_cases,
    hints=[
        "The same two equations read the other way: the model size N is given, so the tokens follow from the "
        "ratio, and the FLOPs from C = 6·N·D.",
        "Worked on a model of 1e8 parameters at r = 20: 2e9 tokens, and 6 · 1e8 · 2e9 = 1.2e18 FLOPs.",
    ],
    points=1,
)
