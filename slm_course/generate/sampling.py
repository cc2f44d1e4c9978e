"""Turning next-token logits into a choice (chapter 5): temperature, top-k, top-p, sampling.

Every function takes logits ``(..., vocab)`` (the last dimension is the vocabulary) and returns
the same shape. Filters set the logits of removed tokens to ``-inf``, so a softmax gives them
probability 0 and the kept tokens share the whole mass. Order used by :func:`logits_to_probs`
(as in ``transformers``): temperature, then top-k, then top-p.
"""
from __future__ import annotations

import torch


def _check_logits(logits: torch.Tensor) -> None:
    if not isinstance(logits, torch.Tensor) or not logits.dtype.is_floating_point or logits.dim() == 0:
        raise TypeError("expected logits as a floating-point tensor (..., vocab), e.g. model(idx)[:, -1].")


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """``logits / temperature``: below 1 sharpens the distribution, above 1 flattens it.

    ``temperature`` must be > 0 (temperature 0 means greedy, which :func:`generate` handles by argmax).
    """
    _check_logits(logits)
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(f"temperature must be a number above 0, got {temperature!r}; use 0 in generate() for greedy.")
    return logits / temperature


def top_k_filter(logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """Keep the ``k`` highest logits of each row (and any tied with the k-th); the rest become ``-inf``.

    ``k=None`` or ``k ≥ vocab`` keeps everything. Ties at the boundary are kept, as in
    ``transformers``' ``TopKLogitsWarper``, so the result never depends on how a sort orders equals.
    """
    _check_logits(logits)
    if k is None:
        return logits
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"top_k must be a whole number of tokens ≥ 1 (or None to keep all), got {k!r}.")
    if k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # (..., 1) the k-th highest logit
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float | None) -> torch.Tensor:
    """Nucleus filter: keep the most probable tokens until their probability reaches ``p``.

    A token is kept when the tokens strictly more probable than it hold less than ``p`` of the mass,
    so the most probable token is always kept; tokens tied with the last kept one are kept too.
    ``p=None`` or ``p=1`` keeps everything; ``0 < p ≤ 1``.
    """
    _check_logits(logits)
    if p is None:
        return logits
    if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 < p <= 1:
        raise ValueError(f"top_p must be a probability in (0, 1] (or None to keep all), got {p!r}.")
    if p == 1:
        return logits
    sorted_logits, _ = torch.sort(logits, dim=-1, descending=True)
    probs = torch.softmax(sorted_logits.float(), dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (..., vocab) mass of the tokens ranked above
    keep = mass_before < p
    threshold = sorted_logits.masked_fill(~keep, float("inf")).amin(dim=-1, keepdim=True)  # last kept logit
    return logits.masked_fill(logits < threshold, float("-inf"))


def logits_to_probs(logits: torch.Tensor, temperature: float = 1.0, top_k: int | None = None,
                    top_p: float | None = None) -> torch.Tensor:
    """Probabilities ``(..., vocab)`` after temperature, top-k and top-p (each row sums to 1)."""
    logits = apply_temperature(logits.float(), temperature)
    logits = top_p_filter(top_k_filter(logits, top_k), top_p)
    return torch.softmax(logits, dim=-1)


def sample(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw one token id per row of ``probs`` ``(B, vocab)`` → ``(B, 1)`` int64.

    Pass a seeded ``torch.Generator`` (on ``probs``' device) for draws that repeat run after run.
    """
    if probs.dim() != 2:
        raise ValueError(f"sample expects probabilities (batch, vocab), got shape {tuple(probs.shape)}.")
    return torch.multinomial(probs, num_samples=1, generator=generator)


def greedy(logits: torch.Tensor) -> torch.Tensor:
    """The most likely token of each row of ``logits`` ``(B, vocab)`` → ``(B, 1)`` int64 (temperature 0)."""
    return logits.argmax(dim=-1, keepdim=True)


def min_p_filter(logits: torch.Tensor, min_p: float | None) -> torch.Tensor:
    """Min-p filter: keep the tokens at least ``min_p`` times as probable as the most probable one.

    Unlike top-p, the cut moves with the model's confidence: a sure model keeps few tokens, an
    unsure one many. ``min_p=None`` or 0 keeps everything; ``0 ≤ min_p ≤ 1``. Equal to
    ``transformers``' ``MinPLogitsWarper`` (tested).
    """
    _check_logits(logits)
    if min_p is None:
        return logits
    if isinstance(min_p, bool) or not isinstance(min_p, (int, float)) or not 0 <= min_p <= 1:
        raise ValueError(f"min_p must be a fraction in [0, 1] (or None to keep all), got {min_p!r}.")
    probs = torch.softmax(logits.float(), dim=-1)
    floor = min_p * probs.amax(dim=-1, keepdim=True)  # (..., 1)
    return logits.masked_fill(probs < floor, float("-inf"))
