"""Log-likelihoods of continuations, the one measurement every multiple-choice benchmark needs (chapter 9).

A request is ``(context, continuation)``; its answer is ``(sum of log-probabilities of the
continuation's tokens given the context, whether every continuation token was the greedy choice)``.
Token boundaries follow ``lm-eval``'s rule exactly: trailing spaces of the context move to the
continuation, ``whole = encode(context + continuation)``, the context is ``encode(context)`` and
the continuation is what ``whole`` has beyond it. An empty context is scored after a prefix token.

:func:`loglikelihoods` groups requests that share a context and runs that context once: its keys
and values stay in a KV cache that every option continues from (a batch of options, right-padded,
since padding after a sequence cannot change what came before it under a causal mask).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch
import torch.nn.functional as F

from slm_course.device import model_device


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class Request:
    """One question to the model: how likely is ``continuation`` after ``context``?"""

    context: str
    continuation: str


def encode_pair(tokenizer: Tokenizer, context: str, continuation: str, prefix_id: int | None = None) -> tuple[list[int], list[int]]:
    """Context and continuation token ids, split the way ``lm-eval`` splits them.

    >>> # "Answer: " + "A" becomes context "Answer:" and continuation " A"
    """
    spaces = len(context) - len(context.rstrip())
    if spaces:
        continuation = context[-spaces:] + continuation
        context = context[:-spaces]
    if not context:
        if prefix_id is None:
            raise ValueError("an empty context needs a prefix token id (the tokenizer's BOS or end-of-text id).")
        return [prefix_id], list(tokenizer.encode(continuation))
    whole = list(tokenizer.encode(context + continuation))
    context_ids = list(tokenizer.encode(context))
    return context_ids, whole[len(context_ids):]


def _continuation_scores(logits: torch.Tensor, targets: torch.Tensor) -> tuple[float, bool]:
    """Sum of log-probabilities of ``targets`` (T,) under ``logits`` (T, vocab), and all-greedy."""
    log_probs = F.log_softmax(logits.double(), dim=-1)  # float64: sums over long options stay exact
    picked = log_probs.gather(-1, targets[:, None]).squeeze(-1)
    return float(picked.sum()), bool((logits.argmax(-1) == targets).all())


@torch.no_grad()
def loglikelihood_one(model: torch.nn.Module, context_ids: list[int], continuation_ids: list[int]) -> tuple[float, bool]:
    """Score one continuation with one plain forward pass over ``context + continuation`` (no cache).

    The reference the cached path is tested against; ``lm-eval``'s adapter uses it too.
    """
    if not continuation_ids:
        raise ValueError("the continuation is empty: there is nothing to score.")
    limit = model.config.context_length
    ids = (context_ids + continuation_ids)[-(limit + 1):]
    device = model_device(model)
    inputs = torch.tensor(ids[:-1], device=device)[None]
    logits = model(inputs)[0, -len(continuation_ids):]
    return _continuation_scores(logits, torch.tensor(continuation_ids, device=device))


@torch.no_grad()
def loglikelihood_shared(model: torch.nn.Module, context_ids: list[int], options: Sequence[list[int]]) -> list[tuple[float, bool]]:
    """Score several continuations of one context, running the context once (prefix KV cache)."""
    from slm_course.generate import KVCache

    if not options or any(not o for o in options):
        raise ValueError("every option needs at least one token to score.")
    longest = max(len(o) for o in options)
    if len(context_ids) + longest > model.config.context_length:  # too long to share: score one by one
        return [loglikelihood_one(model, context_ids, o) for o in options]
    cache = KVCache.for_model(model, batch_size=1, max_length=len(context_ids) + longest)
    device = model_device(model)
    prefix_logits = model(torch.tensor(context_ids, device=device)[None], cache=cache)[0, -1]  # (vocab,)
    batch = cache.repeat_batch(len(options))
    pad = 0
    padded = torch.tensor([o + [pad] * (longest - len(o)) for o in options], device=device)  # right padding: harmless
    logits = model(padded, cache=batch)  # (k, longest, vocab)
    results = []
    for row, option in enumerate(options):
        # The first option token is predicted by the context's last position, the rest by the option's own.
        option_logits = torch.cat([prefix_logits[None], logits[row, : len(option) - 1]], dim=0)
        results.append(_continuation_scores(option_logits, torch.tensor(option, device=device)))
    return results


def loglikelihoods(model: torch.nn.Module, tokenizer: Tokenizer, requests: Sequence[Request], *,
                   prefix_id: int | None = None, share_context: bool = True, progress: bool = False,
                   desc: str = "scoring") -> list[tuple[float, bool]]:
    """``(log-likelihood, is_greedy)`` for every request, in order.

    With ``share_context`` requests with the same context are scored together from one KV cache.
    ``progress`` shows a ``tqdm.auto`` bar (labelled ``desc``) over the contexts, one per question; a
    stored notebook keeps it finished.
    """
    from slm_course.train.progress import progress_bar

    model.eval()
    encoded = [encode_pair(tokenizer, r.context, r.continuation, prefix_id) for r in requests]
    results: list[tuple[float, bool] | None] = [None] * len(requests)
    groups: dict[tuple[int, ...], list[int]] = {}
    for index, (context_ids, _) in enumerate(encoded):
        groups.setdefault(tuple(context_ids), []).append(index)
    with progress_bar(len(groups), desc=desc, unit="question", enabled=progress) as bar:
        for context_ids, members in groups.items():
            options = [encoded[i][1] for i in members]
            if share_context:
                scores = loglikelihood_shared(model, list(context_ids), options)
            else:
                scores = [loglikelihood_one(model, list(context_ids), o) for o in options]
            for index, score in zip(members, scores):
                results[index] = score
            bar.update(1)
    return results  # type: ignore[return-value]
