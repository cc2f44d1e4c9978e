"""Perplexity of a (quantized, pruned, distilled) model on held-out token ids (chapter 10).

Every compression demo of chapter 10 is judged the same way: the mean next-token cross-entropy over
non-overlapping windows of ``context_length`` tokens, and its exponential, the perplexity.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def mean_nll(model: nn.Module, ids: Sequence[int] | torch.Tensor, *, context_length: int = 128,
             max_tokens: int | None = None, batch_size: int = 8) -> float:
    """Mean negative log-likelihood (nats per token) of predicting ``ids[1:]`` in windows of
    ``context_length`` + 1 tokens (each window predicts ``context_length`` tokens; a ragged tail is dropped)."""
    ids = torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    n_windows = (ids.numel() - 1) // context_length
    if n_windows < 1:
        raise ValueError(f"need at least {context_length + 1} token ids for one window, got {ids.numel()}.")
    x = ids[: n_windows * context_length].reshape(n_windows, context_length)
    y = ids[1: n_windows * context_length + 1].reshape(n_windows, context_length)
    was_training = model.training
    model.eval()
    total = 0.0
    for start in range(0, n_windows, batch_size):
        logits = model(x[start:start + batch_size])                     # (b, T, vocab)
        total += F.cross_entropy(logits.flatten(0, 1).float(), y[start:start + batch_size].flatten(),
                                 reduction="sum").item()
    model.train(was_training)
    return total / (n_windows * context_length)


def perplexity(model: nn.Module, ids: Sequence[int] | torch.Tensor, **kwargs) -> float:
    """``exp(mean_nll(model, ids, ...))``: the model is as unsure as a uniform choice among this many tokens."""
    return math.exp(mean_nll(model, ids, **kwargs))
