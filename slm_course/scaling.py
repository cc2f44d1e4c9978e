"""Scaling laws (chapter 4): a sweep of model sizes × token budgets, a Chinchilla-style fit, compute overheads.

The law is Hoffmann et al.'s (2022) ``L(N, D) = E + A / N^α + B / D^β`` (loss in nats per token,
``N`` parameters, ``D`` training tokens), their "approach 3". :func:`fit_scaling_law` fits it with
Hoffmann et al.'s own method: the Huber loss (δ = 10⁻³) between the predicted and observed *log*
loss, minimized by L-BFGS from a grid of starts. Bootstrap intervals from refits on resampled runs
are what Besiroglu et al. (2024) added when they replicated that fit.

The often quoted ≈ 20 tokens per parameter comes from Hoffmann et al.'s approaches 1 and 2 (fits of
the compute-optimal frontier). Their published approach-3 constants (:data:`HOFFMANN`) give about 50
at 10²¹ FLOPs and more at larger budgets: the inconsistency Besiroglu et al. found. Their refit of
approach 3 (:data:`BESIROGLU`) lands near 20. :func:`published_tokens_per_parameter` computes both.
:func:`compute_overhead` draws de Vries' (2023) "go smol or go home" curve: the extra compute a
model k times smaller than compute-optimal needs to reach the same loss.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

# Published fits, losses in nats per token: Hoffmann et al. 2022 (approach 3, their eq. 10) and
# Besiroglu et al. 2024 (their refit of approach 3 on the data read back from Hoffmann's figure).
HOFFMANN = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
BESIROGLU = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
PUBLISHED = {"Hoffmann et al. 2022, approach 3": HOFFMANN, "Besiroglu et al. 2024, refit": BESIROGLU}
NAMES = ("E", "A", "B", "alpha", "beta")


def scaling_loss(N, D, E: float, A: float, B: float, alpha: float, beta: float):
    """``E + A / N^α + B / D^β`` (broadcasts over arrays of ``N`` and ``D``)."""
    return E + A / np.asarray(N, dtype=float) ** alpha + B / np.asarray(D, dtype=float) ** beta


def compute_optimal(compute: float, law: dict[str, float]) -> tuple[float, float]:
    """``(N_opt, D_opt)`` minimizing the law at ``compute = 6 N D`` FLOPs (Hoffmann et al., eq. 4)."""
    A, B, a, b = law["A"], law["B"], law["alpha"], law["beta"]
    G = (a * A / (b * B)) ** (1 / (a + b))
    n_opt = G * (compute / 6) ** (b / (a + b))
    return n_opt, compute / 6 / n_opt


def tokens_per_parameter(compute: float, law: dict[str, float]) -> float:
    """Compute-optimal ``D / N`` at a compute budget under ``law`` (it grows with the budget when β < α)."""
    n_opt, d_opt = compute_optimal(compute, law)
    return d_opt / n_opt


def published_tokens_per_parameter(compute: float) -> dict[str, float]:
    """Compute-optimal ``D / N`` at ``compute`` FLOPs under each law of :data:`PUBLISHED` (name → ratio)."""
    if not compute > 0:
        raise ValueError(f"compute must be a positive number of FLOPs, got {compute!r}.")
    return {name: tokens_per_parameter(compute, law) for name, law in PUBLISHED.items()}


def compute_overhead(size_fraction, compute: float, law: dict[str, float]):
    """Extra compute (a fraction: 0.5 = 50 % more) a model of ``size_fraction × N_opt`` parameters needs
    to reach the loss of the compute-optimal model at ``compute``; ``inf`` where it never can."""
    n_opt, d_opt = compute_optimal(compute, law)
    target = float(scaling_loss(n_opt, d_opt, **law))
    n = np.asarray(size_fraction, dtype=float) * n_opt
    room = target - law["E"] - law["A"] / n ** law["alpha"]  # what B / D^β may still contribute
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(room > 0, (law["B"] / np.where(room > 0, room, 1.0)) ** (1 / law["beta"]), np.inf)
    return n * d / (n_opt * d_opt) - 1


def _huber(residual: np.ndarray, delta: float) -> np.ndarray:
    small = np.abs(residual) <= delta
    return np.where(small, 0.5 * residual ** 2, delta * (np.abs(residual) - 0.5 * delta))


def _objective(theta: np.ndarray, log_n: np.ndarray, log_d: np.ndarray, log_l: np.ndarray, delta: float):
    a, b, e, alpha, beta = theta  # a = log A, b = log B, e = log E
    terms = np.stack([a - alpha * log_n, b - beta * log_d, np.full_like(log_n, e)])
    top = terms.max(axis=0)
    weights = np.exp(terms - top)
    pred = top + np.log(weights.sum(axis=0))  # log(A/N^α + B/D^β + E), computed stably
    residual = pred - log_l
    value = _huber(residual, delta).sum()
    d_res = np.clip(residual, -delta, delta)  # d huber / d residual
    soft = weights / weights.sum(axis=0)
    grad = np.array([
        (d_res * soft[0]).sum(), (d_res * soft[1]).sum(), (d_res * soft[2]).sum(),
        (d_res * soft[0] * -log_n).sum(), (d_res * soft[1] * -log_d).sum(),
    ])
    return value, grad


def _fit_once(log_n, log_d, log_l, delta, starts):
    from scipy.optimize import minimize

    best = None
    for start in starts:
        result = minimize(_objective, np.array(start, dtype=float), args=(log_n, log_d, log_l, delta),
                          jac=True, method="L-BFGS-B")
        if best is None or result.fun < best.fun:
            best = result
    a, b, e, alpha, beta = best.x
    return {"E": math.exp(e), "A": math.exp(a), "B": math.exp(b), "alpha": float(alpha), "beta": float(beta)}, best.fun


def default_starts() -> list[tuple[float, ...]]:
    """A coarse version of Hoffmann et al.'s grid of initial values (72 starts): log A, log B, log E, α, β."""
    return list(itertools.product((2.0, 6.0, 10.0), (2.0, 6.0, 10.0), (0.0, 1.0), (0.2, 0.6), (0.2, 0.6)))


@dataclass
class ScalingFit:
    """A fitted law, its bootstrap refits and the compute-optimal tokens per parameter with an interval."""

    law: dict[str, float]
    objective: float
    bootstrap: list[dict[str, float]] = field(default_factory=list)
    compute: float = 0.0  # the budget (FLOPs) at which tokens_per_parameter is reported

    def interval(self, name: str, level: float = 0.8) -> tuple[float, float]:
        """Central ``level`` bootstrap interval of a law constant, or of ``"tokens_per_parameter"``."""
        if not self.bootstrap:
            raise ValueError("this fit was made with bootstrap=0: there are no refits to take an interval from.")
        if name == "tokens_per_parameter":
            values = [tokens_per_parameter(self.compute, law) for law in self.bootstrap]
        else:
            values = [law[name] for law in self.bootstrap]
        low, high = np.quantile(values, [(1 - level) / 2, (1 + level) / 2])
        return float(low), float(high)

    @property
    def tokens_per_parameter(self) -> float:
        return tokens_per_parameter(self.compute, self.law)

    def summary(self) -> str:
        law = self.law
        text = (f"L(N, D) = {law['E']:.3g} + {law['A']:.3g}/N^{law['alpha']:.3g} + {law['B']:.3g}/D^{law['beta']:.3g}; "
                f"compute-optimal tokens per parameter at {self.compute:.2g} FLOPs: {self.tokens_per_parameter:.3g}")
        if self.bootstrap:
            low, high = self.interval("tokens_per_parameter")
            text += f" (80% bootstrap interval {low:.3g} to {high:.3g}; Chinchilla's approaches 1-2 ≈ 20)"
        return text


def fit_scaling_law(N: Sequence[float], D: Sequence[float], L: Sequence[float], *, delta: float = 1e-3,
                    starts: Sequence[Sequence[float]] | None = None, bootstrap: int = 100, compute: float | None = None,
                    seed: int = 0) -> ScalingFit:
    """Fit ``L = E + A/N^α + B/D^β`` to runs (``N`` parameters, ``D`` tokens, ``L`` loss in nats/token).

    Huber loss with ``delta`` on log-loss residuals, the best of L-BFGS runs from ``starts`` (default:
    :func:`default_starts`); ``bootstrap`` refits on runs resampled with replacement (each from the
    best fit and a few grid starts). ``compute`` (FLOPs) is where tokens per parameter is reported
    (default: the largest ``6 N D`` of the runs).
    """
    N, D, L = (np.asarray(v, dtype=float) for v in (N, D, L))
    if not (N.shape == D.shape == L.shape and N.ndim == 1):
        raise ValueError(f"N, D and L must be 1-D and of one length, got shapes {N.shape}, {D.shape}, {L.shape}.")
    if len(N) < 5:
        raise ValueError(f"a law with 5 constants needs at least 5 runs, got {len(N)}.")
    if (N <= 0).any() or (D <= 0).any() or (L <= 0).any():
        raise ValueError("N, D and L must all be positive (parameters, tokens, loss in nats per token).")
    starts = list(starts) if starts is not None else default_starts()
    log_n, log_d, log_l = np.log(N), np.log(D), np.log(L)
    law, value = _fit_once(log_n, log_d, log_l, delta, starts)
    rng = np.random.default_rng(seed)
    best_start = (math.log(law["A"]), math.log(law["B"]), math.log(law["E"]), law["alpha"], law["beta"])
    few = [best_start] + [starts[i] for i in rng.choice(len(starts), size=min(3, len(starts)), replace=False)]
    refits = []
    for _ in range(bootstrap):
        rows = rng.integers(0, len(N), len(N))
        refits.append(_fit_once(log_n[rows], log_d[rows], log_l[rows], delta, few)[0])
    return ScalingFit(law, float(value), refits, float(compute if compute is not None else (6 * N * D).max()))


def non_embedding_parameters(model) -> int:
    """Parameters outside the embedding tables (Kaplan et al.'s N; at tiny sizes the vocabulary's table
    would otherwise dominate the count)."""
    from torch import nn

    embedded = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    return sum(p.numel() for p in model.parameters() if id(p) not in embedded)


def sweep(train_ids, val_ids, widths: Sequence[int], token_budgets: Sequence[int], *, n_layers: int = 1,
          batch_size: int = 8, context_length: int = 64, lr: float = 3e-3, vocab_size: int = 2048,
          seed: int = 0, progress: bool = False) -> list[dict[str, float]]:
    """Train one model per (width, token budget) and return ``[{d_model, N, D, loss}]``.

    ``N`` counts non-embedding parameters, ``D`` the training tokens (a whole number of steps of
    ``batch_size × context_length``), ``loss`` the mean validation loss in nats per token on
    ``val_ids``. Every run uses warmup + cosine over its own budget, as Chinchilla did. ``progress``
    shows one ``tqdm.auto`` bar over the runs.
    """
    import torch

    from slm_course.model import SLM, SLMConfig
    from slm_course.train.loop import TrainConfig, lm_loss, train
    from slm_course.train.metrics import token_batches
    from slm_course.train.progress import progress_bar

    val = torch.as_tensor(val_ids, dtype=torch.long)
    n_windows = (len(val) - 1) // context_length
    if n_windows < 1:
        raise ValueError(f"val_ids has {len(val)} tokens, fewer than one window of {context_length} + 1.")
    inputs = val[: n_windows * context_length].view(n_windows, context_length)
    targets = val[1: n_windows * context_length + 1].view(n_windows, context_length)
    rows = []
    with progress_bar(len(widths) * len(token_budgets), desc="scaling sweep", unit="run", enabled=progress) as bar:
        for width, budget in itertools.product(widths, token_budgets):
            steps = max(1, int(budget) // (batch_size * context_length))
            torch.manual_seed(seed)
            config = SLMConfig.from_name("tiny", vocab_size=vocab_size, context_length=context_length, d_model=width,
                                         n_layers=n_layers, n_heads=max(1, width // 16))
            model = SLM(config)
            train(model, token_batches(train_ids, batch_size, context_length, seed=seed),
                  TrainConfig(max_steps=steps, lr=lr, warmup_steps=max(1, steps // 20), seed=seed, progress=False))
            with torch.no_grad():
                loss = float(lm_loss(model, (inputs, targets)))
            rows.append({"d_model": width, "N": non_embedding_parameters(model), "D": steps * batch_size * context_length,
                         "loss": loss})
            bar.update(1)
    return rows
