"""Chapter 2's diagrams: attention's data flow, and the multi-head split and merge.

The numbers in the cells are computed by ``slm_course.attention`` on a small seeded example, so the
picture shows what the package computes: scaled scores, the causal mask, the softmax, the weighted sum.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from slm_course.diagrams.drawing import INK, MUTED, arrow, canvas, colour, finish, matrix

_CELL = 0.5
_WORDS = ("to", "be", "or", "not", "to", "be")


def _example(n_tokens: int, d_in: int, d_out: int, seed: int):
    from slm_course import attention

    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(n_tokens, d_in, generator=generator)
    w_q, w_k, w_v = (torch.randn(d_in, d_out, generator=generator) * 0.8 for _ in range(3))
    q, k, v = x @ w_q, x @ w_k, x @ w_v  # (T, d_out) each
    scores = attention.attention_scores(q, k)  # (T, T), divided by √d_out
    mask = attention.causal_mask(n_tokens)
    weights = attention.masked_softmax(scores, mask)
    return x, q, k, v, scores, mask, weights, weights @ v


def attention_flow(n_tokens: int = 4, *, d_in: int = 3, d_out: int = 2, seed: int = 0,
                   words: Sequence[str] = _WORDS, show: bool = True):
    """Draw one causal attention head step by step: inputs ``X`` → ``Q, K, V`` → scaled scores
    ``Q Kᵀ / √d`` → causal mask → softmax → weighted sum of the values (the context vectors).

    Every stage is a coloured matrix with its numbers; the stages carry the gids ``"stage-inputs"``,
    ``"stage-qkv"``, ``"stage-scores"``, ``"stage-masked"``, ``"stage-weights"``, ``"stage-context"``.
    Returns the ``Figure`` when ``show`` is False, otherwise displays it.
    """
    if not 2 <= n_tokens <= len(words):
        raise ValueError(f"n_tokens must be between 2 and {len(words)} (one word label each), got {n_tokens}.")
    x, q, k, v, scores, mask, weights, context = (t.numpy() for t in _example(n_tokens, d_in, d_out, seed))
    labels = list(words[:n_tokens])
    side = n_tokens * _CELL
    stages = 6
    gap = 0.95
    left = 0.8
    width = left + 2 * d_in * _CELL + 3 * side + d_out * _CELL + 2.6 + gap * (stages - 1)
    height = side + 2.4
    figure, ax = canvas(width, height, title=f"One causal attention head on {n_tokens} tokens: "
                                           "scores → mask → softmax → weighted sum of values")
    top = height - 1.3
    x0 = left
    matrix(ax, x, x0, top, cell=_CELL, cmap="coolwarm", label="inputs X (T, d_in)", gid="stage-inputs")
    for i, word in enumerate(labels):
        ax.text(x0 - 0.1, top - (i + 0.5) * _CELL, word, ha="right", va="center", fontsize=10)
    x1 = x0 + d_in * _CELL + gap
    arrow(ax, (x0 + d_in * _CELL + 0.05, top - side / 2), (x1 - 0.05, top - side / 2))
    # Q, K, V side by side, each (T, d_out)
    for j, (name, values) in enumerate((("Q", q), ("K", k), ("V", v))):
        matrix(ax, values, x1 + j * (d_out * _CELL + 0.15), top, cell=_CELL, cmap="coolwarm", fmt="{:.1f}",
               label=name, gid="stage-qkv")
    ax.text(x1, top - side - 0.3, "Q = X W_q, K = X W_k, V = X W_v", fontsize=9, color=MUTED)
    qkv_width = 3 * d_out * _CELL + 0.3
    x2 = x1 + qkv_width + gap
    arrow(ax, (x1 + qkv_width + 0.05, top - side / 2), (x2 - 0.05, top - side / 2), text="Q Kᵀ/√d")
    matrix(ax, scores, x2, top, cell=_CELL, cmap="coolwarm", fmt="{:.1f}", label="scores (T, T)", gid="stage-scores")
    x3 = x2 + side + gap
    arrow(ax, (x2 + side + 0.05, top - side / 2), (x3 - 0.05, top - side / 2), text="mask")
    matrix(ax, scores, x3, top, cell=_CELL, cmap="coolwarm", fmt="{:.1f}", masked=mask,
           label="future keys → −∞", gid="stage-masked")
    x4 = x3 + side + gap
    arrow(ax, (x3 + side + 0.05, top - side / 2), (x4 - 0.05, top - side / 2), text="softmax")
    matrix(ax, weights, x4, top, cell=_CELL, cmap="viridis", vmin=0, vmax=1, label="weights: rows sum to 1",
           gid="stage-weights")
    for i, word in enumerate(labels):
        ax.text(x4 + (i + 0.5) * _CELL, top - side - 0.12, word, ha="center", va="top", fontsize=9, color=MUTED)
    x5 = x4 + side + gap
    arrow(ax, (x4 + side + 0.05, top - side / 2), (x5 - 0.05, top - side / 2), text="× V")
    matrix(ax, context, x5, top, cell=_CELL, cmap="coolwarm", fmt="{:.1f}", label="context (T, d_out)",
           gid="stage-context")
    ax.text(left, 0.3, "row i = query token i, column j = key token j; a token sees itself and the tokens "
                        "before it, so the first row has a single weight of 1", fontsize=9, color=INK)
    return finish(figure, show)


def multi_head(n_heads: int = 3, head_dim: int = 2, n_tokens: int = 4, *, seed: int = 0, show: bool = True):
    """Draw multi-head attention's split and merge with each head in its own colour.

    The query projection ``(T, D)`` (``D = n_heads × head_dim``) is cut into ``n_heads`` slices of
    ``head_dim`` columns; each head attends on its own (its causal weights ``(T, T)``), the heads'
    contexts are put side by side again and the output projection mixes them. Per head the parts carry
    the gids ``"slice-h"``, ``"weights-h"``, ``"context-h"``. Returns the ``Figure`` when ``show`` is
    False, otherwise displays it.
    """
    from slm_course import attention

    if n_heads < 1 or head_dim < 1 or n_tokens < 2:
        raise ValueError(f"need n_heads >= 1, head_dim >= 1 and n_tokens >= 2; got {n_heads}, {head_dim}, {n_tokens}.")
    if n_heads > 6:
        raise ValueError(f"n_heads={n_heads} is too many heads to draw legibly; pass at most 6.")
    d_model = n_heads * head_dim
    torch.manual_seed(seed)
    layer = attention.MultiHeadAttention(d_in=d_model, d_out=d_model, context_length=n_tokens,
                                         num_heads=n_heads).eval()
    x = torch.randn(1, n_tokens, d_model, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        q = layer.qkv(x).chunk(3, dim=-1)[0][0]  # (T, D)
        output, weights = layer(x, return_weights=True)  # (1, T, D), (1, H, T, T)
        k, v = layer.qkv(x).chunk(3, dim=-1)[1:]
        v = v[0].view(n_tokens, n_heads, head_dim).transpose(0, 1)  # (H, T, hd)
        contexts = (weights[0] @ v).numpy()  # (H, T, hd)
    q, weights, output = q.numpy(), weights[0].numpy(), output[0].numpy()
    cell = 0.42
    side = n_tokens * cell
    gap = 1.3
    block_w = d_model * cell
    row_h = side + 0.75
    width = 0.6 + block_w + gap + head_dim * cell + 0.9 + side + 0.9 + head_dim * cell + gap + block_w + gap + block_w + 0.6
    height = 1.5 + n_heads * row_h + 0.4
    figure, ax = canvas(width, height, title=f"Multi-head attention: {n_heads} heads of {head_dim} features "
                                           f"split from D={d_model}, attend separately, merge again")
    top = height - 1.2
    mid = top - n_heads * row_h / 2
    x0 = 0.6
    # queries for all heads, columns coloured by head
    for h in range(n_heads):
        matrix(ax, q[:, h * head_dim:(h + 1) * head_dim], x0 + h * head_dim * cell, mid + side / 2, cell=cell,
               tint=colour(h), annotate=False, gid=f"query-{h}")
    ax.text(x0 + block_w / 2, mid + side / 2 + 0.15, "Q (T, D)", ha="center", va="bottom", fontsize=10)
    xs = x0 + block_w + gap
    xw = xs + head_dim * cell + 0.9
    xc = xw + side + 0.9
    xm = xc + head_dim * cell + gap
    for h in range(n_heads):
        y = top - h * row_h
        arrow(ax, (x0 + block_w + 0.05, mid - (h + 0.5) * side / n_heads + side / 2), (xs - 0.05, y - side / 2),
              colour=colour(h))
        matrix(ax, q[:, h * head_dim:(h + 1) * head_dim], xs, y, cell=cell, tint=colour(h), annotate=False,
               gid=f"slice-{h}")
        ax.text(xs - 0.08, y + 0.12, f"head {h}", ha="left", va="bottom", fontsize=10, color=colour(h), weight="bold")
        arrow(ax, (xs + head_dim * cell + 0.05, y - side / 2), (xw - 0.05, y - side / 2), colour=colour(h))
        matrix(ax, weights[h], xw, y, cell=cell, tint=colour(h), vmin=0, vmax=1, fmt="{:.1f}", fontsize=7,
               masked=np.triu(np.ones((n_tokens, n_tokens), dtype=bool), 1), gid=f"weights-{h}")
        arrow(ax, (xw + side + 0.05, y - side / 2), (xc - 0.05, y - side / 2), colour=colour(h))
        matrix(ax, contexts[h], xc, y, cell=cell, tint=colour(h), annotate=False, gid=f"context-{h}")
        arrow(ax, (xc + head_dim * cell + 0.05, y - side / 2), (xm - 0.05, mid - (h + 0.5) * side / n_heads + side / 2),
              colour=colour(h))
    ax.text(xw + side / 2, top + 0.45, "causal weights (T, T)", ha="center", fontsize=10)
    ax.text(xc + head_dim * cell / 2, top + 0.45, "context", ha="center", fontsize=10)
    for h in range(n_heads):
        matrix(ax, contexts[h], xm + h * head_dim * cell, mid + side / 2, cell=cell, tint=colour(h), annotate=False,
               gid=f"merged-{h}")
    ax.text(xm + block_w / 2, mid + side / 2 + 0.15, "concatenated (T, D)", ha="center", va="bottom", fontsize=10)
    xo = xm + block_w + gap
    arrow(ax, (xm + block_w + 0.05, mid), (xo - 0.05, mid), text="W_out")
    matrix(ax, output, xo, mid + side / 2, cell=cell, cmap="Greys", annotate=False, gid="output")
    ax.text(xo + block_w / 2, mid + side / 2 + 0.15, "output (T, D)", ha="center", va="bottom", fontsize=10)
    ax.text(0.6, 0.3, "in code: (B, T, D) → view (B, T, H, hd) → transpose (B, H, T, hd) → attend → "
                      "transpose back → reshape (B, T, D) → out_proj", fontsize=9, color=INK)
    return finish(figure, show)
