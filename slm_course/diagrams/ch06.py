"""Chapter 6's diagram: the bytes of one Q4_1 block and the 32 weights they decode to.

A Q4_1 block is 20 bytes: the step ``d`` (float16, 2 bytes), the minimum ``m`` (float16, 2 bytes),
then 16 bytes whose low nibbles are weights 0–15 and whose high nibbles are weights 16–31. Each
weight is ``d · q + m``.
"""
from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

_D, _M, _LOW, _HIGH = "#f4b183", "#a9d18e", "#9dc3e6", "#c9b3e6"


def q4_1_block_layout(block: Sequence[int] | None = None, *, show: bool = False):
    """A Figure of one Q4_1 block: its 20 bytes on top (values written in hex when ``block`` is given),
    the 32 4-bit weights below, with arrows from byte ``j`` to weights ``j`` (low nibble) and ``j + 16``
    (high nibble) for the first bytes."""
    fig, ax = plt.subplots(figsize=(10, 3.4))
    for i in range(20):  # the bytes
        fill = _D if i < 2 else _M if i < 4 else "#dddddd"
        ax.add_patch(Rectangle((i, 3), 0.95, 0.8, facecolor=fill, edgecolor="#444444", lw=0.8))
        label = f"{block[i]:02x}" if block is not None else ("d" if i < 2 else "m" if i < 4 else f"q{i - 4}")
        ax.text(i + 0.47, 3.4, label, ha="center", va="center", fontsize=8)
    ax.text(1, 4.05, "d (f16)", ha="center", fontsize=9)
    ax.text(3, 4.05, "m (f16)", ha="center", fontsize=9)
    ax.text(12, 4.05, "16 bytes: two 4-bit weights each (low nibble, high nibble)", ha="center", fontsize=9)
    for j in range(32):  # the weights, in two rows of 16
        row, col = (1.4, j) if j < 16 else (0.2, j - 16)
        x = 2 + col * 1.0
        ax.add_patch(Rectangle((x, row), 0.95, 0.8, facecolor=_LOW if j < 16 else _HIGH, edgecolor="#444444", lw=0.6))
        ax.text(x + 0.47, row + 0.4, f"w{j}", ha="center", va="center", fontsize=7)
    for j in (0, 1, 15):  # a few bytes' two nibbles
        ax.annotate("", xy=(2 + j + 0.47, 2.2), xytext=(4 + j + 0.47, 3), arrowprops=dict(arrowstyle="->", color="#1f4e79", lw=0.9))
        ax.annotate("", xy=(2 + j + 0.47, 1.0), xytext=(4 + j + 0.3, 3),
                    arrowprops=dict(arrowstyle="->", color="#5b2c83", lw=0.9, linestyle="dashed"))
    ax.text(-0.3, 1.8, "low nibbles\nw0–w15", ha="right", va="center", fontsize=8)
    ax.text(-0.3, 0.6, "high nibbles\nw16–w31", ha="right", va="center", fontsize=8)
    ax.text(19, 1.2, "w = d · q + m\nq ∈ 0…15", ha="left", va="center", fontsize=10)
    ax.set_xlim(-2.5, 22)
    ax.set_ylim(0, 4.5)
    ax.set_axis_off()
    ax.set_title("One Q4_1 block: 20 bytes → 32 weights (5 bits per weight)")
    fig.tight_layout()
    if show:
        plt.show()
    return fig
