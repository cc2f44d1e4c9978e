"""Attention (chapter 2): masks, scaled dot-product attention with an explicit and a fused path.

The explicit path computes the weights by hand and can return them (the attention explorer
draws them); the fused path calls ``F.scaled_dot_product_attention`` (fast). Both give the same
output; chapter 2 and ``tests/test_attention.py`` check it.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def causal_mask(num_tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)`` mask, ``True`` above the diagonal: the future positions a token must not see."""
    return torch.triu(torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=device), diagonal=1)


def scaled_dot_product(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    causal: bool = True,
    dropout_p: float = 0.0,
    training: bool = False,
    return_weights: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q Kᵀ / √d) V over the last two dimensions.

    queries: ``(B, H, T_q, d)``; keys and values: ``(B, H, T_k, d)``. Returns ``(B, H, T_q, d)``,
    and with ``return_weights`` also the weights ``(B, H, T_q, T_k)`` (explicit path). Dropout on
    the weights applies only when ``training``. With ``causal`` and ``T_q < T_k`` (decoding with a
    cache) the queries are the last ``T_q`` positions.
    """
    if not return_weights:
        return F.scaled_dot_product_attention(
            queries, keys, values, is_causal=causal and queries.shape[-2] > 1 and queries.shape[-2] == keys.shape[-2],
            attn_mask=None if not causal or queries.shape[-2] in (1, keys.shape[-2]) else _offset_mask(queries, keys),
            dropout_p=dropout_p if training else 0.0,
        )
    scores = queries @ keys.transpose(-2, -1) / math.sqrt(queries.shape[-1])  # (B, H, T_q, T_k)
    if causal:
        scores = scores.masked_fill(~_offset_mask(queries, keys), float("-inf"))
    weights = torch.softmax(scores, dim=-1)
    if training and dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ values, weights


def _offset_mask(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Boolean ``(T_q, T_k)``, ``True`` where query i (the last T_q positions) may attend to key j."""
    t_q, t_k = queries.shape[-2], keys.shape[-2]
    return ~causal_mask(t_k, device=queries.device)[t_k - t_q :]
