"""Chapter 7's diagrams: a right-padded batch and where the classification head reads it, and LoRA's two paths.

``padded_batch``: each row is one message's tokens, padding shaded; the head reads the last real token
(outlined), which with causal attention is the only position that has seen the whole message.
``lora_paths``: the frozen weight ``W`` beside the trainable low-rank path ``A`` then ``B``, scaled by α / r.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from slm_course.diagrams.drawing import INK, MUTED, arrow, box, canvas, colour, finish


def padded_batch(messages: Sequence[Sequence[str]] = (("Free", "entry", "now", "!"), ("ok",), ("see", "you", "at", "8")),
                 *, width: int = 5, show: bool = False):
    """A Figure: ``messages`` (lists of token strings) right-padded to ``width``; mask 1/0 under each cell,
    the last real token outlined and an arrow to the head's (ham, spam) scores."""
    fig, ax = plt.subplots(figsize=(7.5, 0.9 * len(messages) + 1.0))
    for row, tokens in enumerate(messages):
        y = len(messages) - 1 - row
        for col in range(width):
            real = col < len(tokens)
            ax.add_patch(Rectangle((col, y), 0.95, 0.8, facecolor="#cfe3f7" if real else "#eeeeee",
                                   edgecolor="#555555", lw=0.8))
            ax.text(col + 0.47, y + 0.48, tokens[col] if real else "<pad>", ha="center", va="center",
                    fontsize=9, color="black" if real else "#999999")
            ax.text(col + 0.47, y + 0.1, "mask 1" if real else "mask 0", ha="center", fontsize=6, color="#666666")
        last = min(len(tokens), width) - 1
        ax.add_patch(Rectangle((last, y), 0.95, 0.8, fill=False, edgecolor="#d62728", lw=2.2))
        ax.annotate("", xy=(width + 0.6, y + 0.4), xytext=(last + 0.95, y + 0.4),
                    arrowprops=dict(arrowstyle="->", color="#d62728", lw=1.2))
        ax.text(width + 0.7, y + 0.4, "head → (ham, spam)", va="center", fontsize=9)
    ax.set_xlim(-0.2, width + 3.2)
    ax.set_ylim(-0.3, len(messages))
    ax.set_xticks([i + 0.47 for i in range(width)], [f"pos {i}" for i in range(width)])
    ax.set_yticks([])
    ax.set_title("The head reads each message's last real token, not the last position")
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.tight_layout()
    if show:
        plt.show()
    return fig


def lora_paths(d_in: int = 576, d_out: int = 576, r: int = 8, alpha: float = 16, *, show: bool = True):
    """Draw ``y = x Wᵀ + (α / r) · x Aᵀ Bᵀ``: the frozen ``W`` (``d_out × d_in``) on one path, ``A`` (``r × d_in``)
    then ``B`` (``d_out × r``, zero at the start) on the other, their sum, and the parameter counts
    (``W``: ``d_out · d_in`` frozen; ``A`` and ``B``: ``r · (d_in + d_out)`` trained). Gids: ``"frozen"``,
    ``"lora-A"``, ``"lora-B"``, ``"scale"``."""
    if min(d_in, d_out, r) < 1 or r > min(d_in, d_out):
        raise ValueError(f"need 1 <= r <= min(d_in, d_out); got d_in={d_in}, d_out={d_out}, r={r}.")
    scale = alpha / r
    frozen, trained = d_out * d_in, r * (d_in + d_out)
    figure, ax = canvas(11, 5.0, title=f"LoRA: the frozen W beside a rank-{r} path A·B, scaled by α/r = "
                                       f"{alpha:g}/{r} = {scale:g}")
    box(ax, 0.2, 1.9, 1.2, 0.9, f"x\n(…, {d_in})", fill="#E8EEF7", fontsize=10, gid="input")
    # the frozen path, on top
    box(ax, 3.0, 3.1, 2.8, 1.0, f"W  {d_out} × {d_in}\nfrozen: {frozen:,} weights", fill="#D6D6D6", fontsize=10,
        gid="frozen")
    ax.text(4.4, 4.25, "pretrained, unchanged", ha="center", fontsize=9, color=MUTED)
    # the low-rank path, below
    box(ax, 2.4, 0.5, 1.7, 1.0, f"A  {r} × {d_in}\nrandom init", fill=colour(0), text_colour="white", fontsize=10,
        gid="lora-A")
    box(ax, 4.7, 0.5, 1.7, 1.0, f"B  {d_out} × {r}\nstarts at 0", fill=colour(1), text_colour="white", fontsize=10,
        gid="lora-B")
    arrow(ax, (4.1, 1.0), (4.7, 1.0), text=f"(…, {r})", fontsize=9)
    box(ax, 6.9, 0.55, 1.3, 0.9, f"× α/r\n= {scale:g}", fill="#FFF3B0", fontsize=10, gid="scale")
    arrow(ax, (6.4, 1.0), (6.9, 1.0))
    ax.text(4.4, 0.15, f"trained: r·(in + out) = {trained:,} weights ({100 * trained / frozen:.1f} % of W)",
            ha="center", fontsize=9, color=INK)
    # the sum
    box(ax, 8.7, 1.95, 0.8, 0.8, "+", fill="white", fontsize=16, gid="sum")
    box(ax, 9.8, 1.9, 1.1, 0.9, f"y\n(…, {d_out})", fill="#E8EEF7", fontsize=10, gid="output")
    arrow(ax, (1.4, 2.5), (3.0, 3.6), text="x Wᵀ", fontsize=9)
    arrow(ax, (1.4, 2.2), (2.4, 1.0), colour=colour(0))
    arrow(ax, (5.8, 3.6), (8.75, 2.6))
    arrow(ax, (8.2, 1.0), (8.75, 2.1), colour=colour(1))
    arrow(ax, (9.5, 2.35), (9.8, 2.35))
    return finish(figure, show)
