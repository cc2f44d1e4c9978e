"""Attention (chapter 2): from dot products by hand to batched multi-head causal attention.

Chapter 2 builds each piece inline, then checks it against the version here:

- ``simple_self_attention``: no trainable weights; scores are plain dot products of the inputs.
- ``SelfAttentionV1`` (weights as ``nn.Parameter``) and ``SelfAttentionV2`` (``nn.Linear``): trainable
  query, key and value projections, scores scaled by √d.
- ``CausalAttention``: one head, batched, with the causal mask and dropout on the weights.
- ``MultiHeadAttention``: one QKV projection split into heads, an explicit path that can return
  the weights (the attention explorer draws them) and a fused path through
  ``F.scaled_dot_product_attention`` (fast). Both give the same output.

The functions underneath (``causal_mask``, ``attention_scores``, ``masked_softmax``,
``split_heads``, ``merge_heads``, ``scaled_dot_product``) are the one implementation the classes,
the exercises' checks and ``slm_course.model`` share.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# --------------------------------------------------------------------------- functions


def causal_mask(num_tokens: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Boolean ``(T, T)`` mask, ``True`` above the diagonal: the future positions a token must not see."""
    return torch.triu(torch.ones(num_tokens, num_tokens, dtype=torch.bool, device=device), diagonal=1)


def simple_self_attention(inputs: torch.Tensor) -> torch.Tensor:
    """Self-attention with no trainable weights: ``softmax(X Xᵀ) X``.

    inputs: ``(..., T, d)`` token vectors. Returns the context vectors ``(..., T, d)``: row ``i``
    is the average of all input vectors, weighted by how similar (dot product) each is to token ``i``.
    """
    scores = inputs @ inputs.transpose(-2, -1)  # (..., T, T)
    weights = torch.softmax(scores, dim=-1)  # each row sums to 1
    return weights @ inputs  # (..., T, d)


def attention_scores(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Scaled scores ``Q Kᵀ / √d``: queries ``(..., T_q, d)``, keys ``(..., T_k, d)`` -> ``(..., T_q, T_k)``.

    Dividing by √d keeps the scores' spread near 1 whatever the head size, so the softmax
    does not saturate into a one-hot vector (whose gradients vanish).
    """
    return queries @ keys.transpose(-2, -1) / math.sqrt(queries.shape[-1])


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Softmax over the last dimension, with positions where ``mask`` is ``True`` given weight 0.

    scores: ``(..., T_q, T_k)``; mask: boolean, broadcastable to ``scores``, ``True`` = hidden.
    Hidden scores become ``-inf`` before the softmax, so the remaining weights of a row still sum to 1.
    A row whose every position is hidden has nothing to attend to: its weights are all NaN
    (``exp(-inf) / 0``). A causal mask never does this (each token sees itself); a padding mask can,
    so hide at most all but one key of a row, or replace such rows afterwards.
    """
    if mask is not None:
        if mask.dtype != torch.bool:
            raise TypeError(f"mask must be a boolean tensor (True = hidden), got dtype {mask.dtype}.")
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


def split_heads(x: torch.Tensor, num_heads: int) -> torch.Tensor:
    """``(B, T, D)`` -> ``(B, H, T, D // H)``: each head gets its own slice of the features."""
    batch, num_tokens, width = x.shape
    if width % num_heads:
        raise ValueError(f"The width {width} is not divisible by num_heads={num_heads}; choose a divisor of it.")
    x = x.view(batch, num_tokens, num_heads, width // num_heads)  # (B, T, H, hd)
    return x.transpose(1, 2)  # (B, H, T, hd)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """``(B, H, T, hd)`` -> ``(B, T, H * hd)``: the inverse of :func:`split_heads`."""
    batch, num_heads, num_tokens, head_dim = x.shape
    return x.transpose(1, 2).contiguous().view(batch, num_tokens, num_heads * head_dim)  # (B, T, D)


def scaled_dot_product(
    queries: torch.Tensor,
    keys: torch.Tensor,
    values: torch.Tensor,
    *,
    causal: bool = True,
    dropout_p: float = 0.0,
    training: bool = False,
    return_weights: bool = False,
    allowed: torch.Tensor | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """softmax(Q Kᵀ / √d) V over the last two dimensions.

    queries: ``(B, H, T_q, d)``; keys and values: ``(B, H, T_k, d)``. Returns ``(B, H, T_q, d)``,
    and with ``return_weights`` also the weights ``(B, H, T_q, T_k)`` (explicit path). Dropout on
    the weights applies only when ``training``. With ``causal`` and ``T_q < T_k`` (decoding with a
    cache) the queries are the last ``T_q`` positions; ``causal`` with ``T_q > T_k`` is a ValueError.
    ``allowed`` (boolean, broadcastable to ``(B, H, T_q, T_k)``, ``True`` = may attend) replaces the
    causal mask when the queries are not the last positions (one chosen position per row); give it
    with ``causal=False``. Keys and values may have fewer heads than the queries (grouped-query attention,
    ``H`` a multiple of theirs) on the fused path: each K/V head then serves its group of query heads,
    as if repeated in place (``slm_course.model.layers.repeat_kv``).
    """
    grouped = queries.dim() > 2 and keys.dim() > 2 and keys.shape[-3] != queries.shape[-3]  # (T, d) inputs: no heads
    if grouped and (return_weights or queries.shape[-3] % keys.shape[-3]):
        raise ValueError(f"{queries.shape[-3]} query heads and {keys.shape[-3]} key/value heads: the explicit path "
                         "needs as many K/V heads as queries (repeat_kv), the fused one a whole multiple.")
    if allowed is not None:
        if causal or allowed.dtype != torch.bool:
            raise ValueError("allowed must be a boolean mask (True = may attend), given with causal=False.")
        if not return_weights:
            return F.scaled_dot_product_attention(queries, keys, values, attn_mask=allowed,
                                                  dropout_p=dropout_p if training else 0.0, enable_gqa=grouped)
        weights = masked_softmax(attention_scores(queries, keys), ~allowed)
        if training and dropout_p > 0:
            weights = F.dropout(weights, p=dropout_p)
        return weights @ values, weights
    t_q, t_k = queries.shape[-2], keys.shape[-2]
    if causal and t_q > t_k:
        raise ValueError(
            f"Causal attention got {t_q} queries but only {t_k} keys; the queries must be the last positions "
            "of the keys, so pass at least as many keys as queries (or causal=False)."
        )
    if not return_weights:
        return F.scaled_dot_product_attention(
            queries, keys, values, is_causal=causal and 1 < t_q == t_k,
            attn_mask=None if not causal or t_q in (1, t_k) else _offset_mask(queries, keys),
            dropout_p=dropout_p if training else 0.0, enable_gqa=grouped,
        )
    scores = attention_scores(queries, keys)  # (B, H, T_q, T_k)
    weights = masked_softmax(scores, ~_offset_mask(queries, keys) if causal else None)
    if training and dropout_p > 0:
        weights = F.dropout(weights, p=dropout_p)
    return weights @ values, weights


def _offset_mask(queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Boolean ``(T_q, T_k)``, ``True`` where query i (the last T_q positions) may attend to key j."""
    t_q, t_k = queries.shape[-2], keys.shape[-2]
    return ~causal_mask(t_k, device=queries.device)[t_k - t_q :]


# --------------------------------------------------------------------------- modules


class SelfAttentionV1(nn.Module):
    """Trainable self-attention, weights held as plain ``nn.Parameter`` matrices (one sequence).

    inputs ``(T, d_in)`` -> context vectors ``(T, d_out)``. No mask: every token sees every token.
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.W_query = nn.Parameter(torch.rand(d_in, d_out))
        self.W_key = nn.Parameter(torch.rand(d_in, d_out))
        self.W_value = nn.Parameter(torch.rand(d_in, d_out))

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs ``(T, d_in)`` -> context vectors ``(T, d_out)``."""
        queries = inputs @ self.W_query  # (T, d_out)
        keys = inputs @ self.W_key  # (T, d_out)
        values = inputs @ self.W_value  # (T, d_out)
        weights = torch.softmax(attention_scores(queries, keys), dim=-1)  # (T, T)
        return weights @ values  # (T, d_out)


class SelfAttentionV2(nn.Module):
    """The same as :class:`SelfAttentionV1` with ``nn.Linear`` layers (better initialisation).

    ``nn.Linear`` stores its weight transposed, ``(d_out, d_in)``: copy ``W_query.T`` into
    ``query.weight`` to make the two give the same output. Works on ``(..., T, d_in)``.
    """

    def __init__(self, d_in: int, d_out: int, bias: bool = False) -> None:
        super().__init__()
        self.query = nn.Linear(d_in, d_out, bias=bias)
        self.key = nn.Linear(d_in, d_out, bias=bias)
        self.value = nn.Linear(d_in, d_out, bias=bias)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        """inputs ``(..., T, d_in)`` -> context vectors ``(..., T, d_out)``."""
        queries, keys, values = self.query(inputs), self.key(inputs), self.value(inputs)  # (..., T, d_out)
        weights = torch.softmax(attention_scores(queries, keys), dim=-1)  # (..., T, T)
        return weights @ values  # (..., T, d_out)


class CausalAttention(nn.Module):
    """One causal attention head over a batch, with dropout on the attention weights.

    inputs ``(B, T, d_in)`` -> ``(B, T, d_out)``; ``T`` at most ``context_length``. The mask is a
    buffer (it moves with ``.to(device)`` and is not trained). Dropout acts only in ``train()`` mode.
    """

    def __init__(self, d_in: int, d_out: int, context_length: int, dropout: float = 0.0, bias: bool = False) -> None:
        super().__init__()
        self.query = nn.Linear(d_in, d_out, bias=bias)
        self.key = nn.Linear(d_in, d_out, bias=bias)
        self.value = nn.Linear(d_in, d_out, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", causal_mask(context_length), persistent=False)

    def forward(
        self, inputs: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """inputs ``(B, T, d_in)`` -> context vectors ``(B, T, d_out)``.

        With ``return_weights`` also the attention weights ``(B, T, T)`` (after dropout, so in
        ``train()`` mode some are zero and the rest scaled up). ``T`` above ``context_length`` is a ValueError.
        """
        num_tokens = inputs.shape[1]
        if num_tokens > self.mask.shape[0]:
            raise ValueError(f"Got {num_tokens} tokens but context_length is {self.mask.shape[0]}; shorten the input.")
        queries, keys, values = self.query(inputs), self.key(inputs), self.value(inputs)  # (B, T, d_out)
        scores = attention_scores(queries, keys)  # (B, T, T)
        weights = masked_softmax(scores, self.mask[:num_tokens, :num_tokens])
        weights = self.dropout(weights)
        context = weights @ values  # (B, T, d_out)
        return (context, weights) if return_weights else context


class MultiHeadAttention(nn.Module):
    """Batched multi-head causal self-attention: one QKV projection, heads split, one output projection.

    inputs ``(B, T, d_in)`` -> ``(B, T, d_out)``. ``d_out`` must be divisible by ``num_heads``; each
    head works on ``head_dim = d_out // num_heads`` features. ``forward(x, return_weights=True)``
    takes the explicit path and also returns the weights ``(B, H, T, T)``; otherwise ``fused=True``
    uses ``F.scaled_dot_product_attention``. Dropout on the weights acts only in ``train()`` mode.
    ``bias`` adds biases to both the QKV and the output projection (GPT-2 has both; Llama-style
    models, and chapter 3's ``SLM`` by default, have neither).
    """

    def __init__(
        self,
        d_in: int,
        d_out: int,
        context_length: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = False,
        fused: bool = True,
    ) -> None:
        super().__init__()
        if d_out % num_heads:
            raise ValueError(f"d_out={d_out} must be divisible by num_heads={num_heads}; pick d_out = num_heads × head size.")
        self.num_heads = num_heads
        self.head_dim = d_out // num_heads
        self.context_length = context_length
        self.dropout_p = dropout
        self.fused = fused
        self.qkv = nn.Linear(d_in, 3 * d_out, bias=bias)  # queries, keys and values in one matrix multiply
        self.out_proj = nn.Linear(d_out, d_out, bias=bias)  # mixes what the heads found

    def forward(
        self, inputs: torch.Tensor, return_weights: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """inputs ``(B, T, d_in)`` -> output ``(B, T, d_out)``, causal (token i sees tokens 0..i).

        With ``return_weights`` (or ``fused=False``) the explicit path runs, and with
        ``return_weights`` the call returns ``(output, weights)``, weights ``(B, H, T, T)``.
        ``T`` above ``context_length`` is a ValueError.
        """
        num_tokens = inputs.shape[1]
        if num_tokens > self.context_length:
            raise ValueError(f"Got {num_tokens} tokens but context_length is {self.context_length}; shorten the input.")
        queries, keys, values = self.qkv(inputs).chunk(3, dim=-1)  # 3 × (B, T, d_out)
        queries = split_heads(queries, self.num_heads)  # (B, H, T, hd)
        keys = split_heads(keys, self.num_heads)  # (B, H, T, hd)
        values = split_heads(values, self.num_heads)  # (B, H, T, hd)
        weights = None
        if return_weights or not self.fused:
            context, weights = scaled_dot_product(
                queries, keys, values, causal=True, dropout_p=self.dropout_p, training=self.training, return_weights=True
            )  # (B, H, T, hd), (B, H, T, T)
        else:
            context = scaled_dot_product(queries, keys, values, causal=True, dropout_p=self.dropout_p, training=self.training)
        output = self.out_proj(merge_heads(context))  # (B, T, d_out)
        return (output, weights) if return_weights else output
