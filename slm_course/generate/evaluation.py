"""Loss to perplexity (chapter 5): the numbers that say how well a model predicts held-out text.

The loss is the mean cross-entropy in nats per token; perplexity ``exp(loss)`` reads as "the model
is as unsure as a uniform choice among this many tokens". An untrained model over ``V`` tokens
scores about ``V``. To compare models with different tokenizers use bits per byte
(``slm_course.train.bits_per_byte``), which does not depend on how text is cut into tokens.
"""
from __future__ import annotations

import math
from typing import Sequence


def perplexity_from_losses(token_losses: Sequence[float]) -> float:
    """``exp`` of the mean of per-token losses (nats): the geometric mean of 1/p(token). A float ≥ 1."""
    losses = [float(x) for x in token_losses]
    if not losses:
        raise ValueError("perplexity needs at least one token's loss.")
    return math.exp(sum(losses) / len(losses))
