"""Chapter 7's diagram: a right-padded batch and where the classification head reads it.

Each row is one message's tokens, padding shaded; the head reads the last real token (outlined),
which with causal attention is the only position that has seen the whole message.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle


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
