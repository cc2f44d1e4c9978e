"""Batches of a token stream and bits per byte (chapter 4; chapter 5 uses bits per byte to compare models).

Bits per byte divides the total information a model needs to encode a text (its summed cross-entropy,
in bits) by the text's length in UTF-8 bytes. Unlike loss per token, it does not depend on the
tokenizer, so a character model and a BPE model can be compared on the same text.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.device import model_device


def token_batches(ids: Sequence[int] | torch.Tensor, batch_size: int, context_length: int,
                  seed: int = 0) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """A function ``batches(i) -> (inputs, targets)``, both ``(batch_size, context_length)`` int64.

    Micro-batch ``i`` takes ``batch_size`` windows at offsets drawn from a generator seeded with
    ``(seed, i)``: the data order is a function of ``i`` alone, so a resumed run reads what an
    uninterrupted one would, whatever happened before.
    """
    data = torch.as_tensor(ids, dtype=torch.long)
    if data.dim() != 1:
        raise ValueError(f"expected a 1-D sequence of token ids, got shape {tuple(data.shape)}.")
    if len(data) < context_length + 2:
        raise ValueError(f"the text has {len(data)} tokens, too few for windows of {context_length} + 1 tokens.")
    positions = torch.arange(context_length + 1)

    def batches(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + int(i))
        starts = torch.randint(0, len(data) - context_length - 1, (batch_size,), generator=generator)
        windows = data[starts[:, None] + positions]  # (B, T + 1)
        return windows[:, :-1], windows[:, 1:]

    return batches


@torch.no_grad()
def bits_per_byte(model: nn.Module, tokenizer, text: str, *, context_length: int | None = None,
                  max_tokens: int | None = None, batch_size: int = 16) -> float:
    """Bits per UTF-8 byte the model needs for ``text`` (lower is better).

    The ids are cut into windows of ``context_length`` predictions (default: the model's context)
    that overlap by one token, so every token after the first is predicted exactly once, from the
    tokens before it in its window. Total nats / (ln 2 · UTF-8 bytes of the predicted tokens).
    ``max_tokens`` keeps only the first that many ids (a quicker estimate on a long text).
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}.")
    ids = list(tokenizer.encode(text))
    if max_tokens is not None:
        ids = ids[: max_tokens + 1]
    if len(ids) < 2:
        raise ValueError("the text encodes to fewer than 2 tokens: there is nothing to predict.")
    config = getattr(model, "config", None)
    T = context_length or getattr(config, "context_length", None)
    if not T:
        raise ValueError("give context_length: the model has no config.context_length.")
    device = model_device(model)
    data = torch.tensor(ids, dtype=torch.long)
    n_pred = len(ids) - 1
    starts = list(range(0, n_pred, T))
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        for b in range(0, len(starts), batch_size):
            group = starts[b:b + batch_size]
            full = [s for s in group if s + T <= n_pred]
            for rows in ([full] if full else []) + [[s] for s in group if s + T > n_pred]:
                length = min(T, n_pred - rows[0])
                windows = torch.stack([data[s:s + length + 1] for s in rows]).to(device)  # (B, length + 1)
                logits = model(windows[:, :-1])
                total += float(F.cross_entropy(logits.flatten(0, 1).float(), windows[:, 1:].flatten(), reduction="sum"))
    finally:
        model.train(was_training)
    n_bytes = len(tokenizer.decode(ids[1:]).encode("utf-8"))
    return total / (math.log(2) * n_bytes)
