"""Chapter 3's diagrams: the pre-norm transformer block, RoPE's rotations, grouped-query attention.

RoPE's angles come from ``slm_course.model.rope_frequencies`` and the query→K/V-head assignment from
``slm_course.model.repeat_kv``, so each picture shows what the model computes.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from slm_course.diagrams.drawing import INK, MUTED, PAPER, arrow, box, canvas, colour, finish


def prenorm_block(norm: str = "LayerNorm", mlp: str = "GELU feed-forward", *, show: bool = True):
    """Draw one pre-norm transformer block, bottom to top: the residual stream ``x`` goes straight up;
    each sub-layer reads a normalised copy and adds its result back (``x + attention(norm1(x))``, then
    ``x + feed_forward(norm2(x))``). The sub-layers carry the gids ``"norm"``, ``"attention"``,
    ``"mlp"``, the additions ``"add"``. Returns the ``Figure`` when ``show`` is False, else displays it.
    """
    from matplotlib.patches import Circle

    width, height = 7.2, 8.4
    figure, ax = canvas(width, height, title=f"A pre-norm transformer block ({norm}, {mlp})")
    stream_x = 1.6
    ax.plot([stream_x, stream_x], [0.55, 7.6], color=INK, lw=2.4, gid="residual")
    ax.text(stream_x - 0.15, 0.45, "x  (B, T, d_model)", ha="center", va="top", fontsize=11)
    ax.text(stream_x - 0.12, 7.7, "to the next block  (B, T, d_model)", ha="left", va="bottom", fontsize=11)
    ax.text(stream_x - 0.2, 2.4, "residual\nstream", ha="right", va="center", fontsize=10, color=MUTED)
    parts = [(1.0, colour(4), "attention", "causal multi-head\nself-attention"), (4.2, colour(2), "mlp", mlp)]
    for base, shade, name, label in parts:
        branch_x = 4.4
        arrow(ax, (stream_x, base + 0.2), (branch_x - 1.1, base + 0.55), curve=-0.2)
        box(ax, branch_x - 1.1, base + 0.3, 2.2, 0.55, norm, fill="#EDEDED", gid="norm", fontsize=11)
        arrow(ax, (branch_x, base + 0.85), (branch_x, base + 1.2))
        box(ax, branch_x - 1.4, base + 1.2, 2.8, 0.95, label, fill=shade, text_colour="white", gid=name,
            fontsize=11, weight="bold")
        add_y = base + 2.75
        arrow(ax, (branch_x, base + 2.15), (stream_x + 0.25, add_y), curve=0.25)
        circle_patch = Circle((stream_x, add_y), 0.24, fc="white", ec=INK, lw=1.6)
        circle_patch.set_gid("add")
        ax.add_patch(circle_patch)
        ax.text(stream_x, add_y, "+", ha="center", va="center", fontsize=16, weight="bold")
    ax.text(0.2, 0.05, "norm first, then the sub-layer, then add back: the stream itself is never normalised",
            fontsize=9, color=MUTED, style="italic")
    return finish(figure, show)


def rope_rotations(head_dim: int = 8, positions: tuple[int, ...] = (0, 1, 2, 3, 4), *, theta: float = 10_000.0,
                   show: bool = True):
    """Draw RoPE as rotations: one panel per feature pair ``i`` (``head_dim / 2`` panels), the same
    2-D vector turned by ``p × theta^(-2i/head_dim)`` at each position ``p``. Early pairs spin fast,
    late pairs barely move. Each drawn vector carries the gid ``"pair-i-position-p"``. Returns the
    ``Figure`` when ``show`` is False, otherwise displays it.
    """
    from matplotlib.figure import Figure

    from slm_course.model import rope_frequencies

    if head_dim < 2 or head_dim % 2:
        raise ValueError(f"head_dim must be an even number of at least 2 (features come in pairs), got {head_dim}.")
    if head_dim > 16:
        raise ValueError(f"head_dim={head_dim} would draw {head_dim // 2} panels; pass at most 16.")
    n_pairs = head_dim // 2
    cos, sin = rope_frequencies(head_dim, max(positions) + 1, theta=theta)  # (T, head_dim), halves repeated
    angles = torch.atan2(sin, cos)[:, :n_pairs].numpy()  # (T, pairs), wrapped to (-π, π]
    speeds = theta ** (-np.arange(0, head_dim, 2) / head_dim)  # radians per position, per pair
    figure = Figure(figsize=(2.6 * n_pairs, 3.4), dpi=100, layout="constrained")
    axes = figure.subplots(1, n_pairs, squeeze=False)[0]
    start = np.array([1.0, 0.0])
    for i, ax in enumerate(axes):
        circle = np.linspace(0, 2 * math.pi, 200)
        ax.plot(np.cos(circle), np.sin(circle), color="#DDDDDD", lw=1)
        for k, p in enumerate(positions):
            a = float(angles[p, i])
            x, y = start[0] * math.cos(a) - start[1] * math.sin(a), start[0] * math.sin(a) + start[1] * math.cos(a)
            line = ax.annotate("", xy=(x, y), xytext=(0, 0),
                               arrowprops=dict(arrowstyle="-|>", color=colour(k), lw=2, mutation_scale=12))
            line.set_gid(f"pair-{i}-position-{p}")
            ax.text(1.2 * x, 1.2 * y, str(p), ha="center", va="center", fontsize=9, color=colour(k))
        ax.set_xlim(-1.4, 1.4)
        ax.set_ylim(-1.4, 1.4)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_title(f"pair {i}: features {i}, {i + n_pairs}\n{speeds[i]:.3g} rad per position", fontsize=10)
    figure.suptitle(f"RoPE turns each feature pair by position × its own speed (head_dim={head_dim}, "
                    f"theta={theta:g}); numbers are positions", fontsize=12)
    return finish(figure, show)


def grouped_query_attention(n_heads: int = 9, n_kv_heads: int = 3, *, show: bool = True):
    """Draw which key/value head each query head reads, for multi-head (one K/V head per query head),
    grouped-query (``n_kv_heads``) and multi-query attention (one K/V head for all).

    Query heads carry the gid ``"query-<panel>"``, K/V heads ``"kv-<panel>"``, links ``"link-<panel>"``
    (one per query head). Returns the ``Figure`` when ``show`` is False, otherwise displays it.
    """
    from slm_course.model import repeat_kv

    if n_heads < 1 or n_kv_heads < 1 or n_heads % n_kv_heads:
        raise ValueError(f"n_heads ({n_heads}) must be a positive multiple of n_kv_heads ({n_kv_heads}).")
    if n_heads > 16:
        raise ValueError(f"n_heads={n_heads} is too many to draw legibly; pass at most 16.")
    panels = [("multi-head", n_heads), (f"grouped-query ({n_heads // n_kv_heads} per group)", n_kv_heads),
              ("multi-query", 1)]
    cell = 0.55
    width = 1.2 + n_heads * cell + 0.6
    height = 0.9 + 2.5 * len(panels)
    figure, ax = canvas(width, height, title=f"Grouped-query attention: {n_heads} query heads share "
                                           f"{n_kv_heads} key/value heads")
    for row, (name, kv) in enumerate(panels):
        top = height - 0.9 - row * 2.5
        ax.text(0.2, top + 0.05, f"{name}: {kv} K/V head{'s' if kv > 1 else ''}, KV cache × {kv}/{n_heads}",
                fontsize=11, weight="bold", va="bottom")
        owner = repeat_kv(torch.arange(kv, dtype=torch.float32).view(1, kv, 1, 1), n_heads).flatten().long().tolist()
        qy, ky = top - 0.75, top - 1.95
        ax.text(0.95, qy + cell / 2, "Q", ha="right", va="center", fontsize=11)
        ax.text(0.95, ky + cell / 2, "K, V", ha="right", va="center", fontsize=11)
        kv_width = n_heads * cell / kv
        for h in range(n_heads):
            x = 1.2 + h * cell
            box(ax, x, qy, cell, cell, str(h), fill=colour(owner[h]), text_colour="white", rounded=False,
                fontsize=9, gid=f"query-{row}")
            kx = 1.2 + (owner[h] + 0.5) * kv_width
            ax.plot([x + cell / 2, kx], [qy, ky + cell], color=colour(owner[h]), lw=1.2, gid=f"link-{row}")
        for g in range(kv):
            box(ax, 1.2 + (g + 0.5) * kv_width - cell / 2 - 0.05 * (kv_width > cell), ky, cell + 0.1 * (kv_width > cell),
                cell, str(g), fill=PAPER, edge=colour(g), rounded=False, fontsize=9, gid=f"kv-{row}")
    return finish(figure, show)
