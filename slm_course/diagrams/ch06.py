"""Chapter 6's diagrams: the bytes of one Q4_1 block, and where a safetensors file keeps each tensor.

A Q4_1 block is 20 bytes: the step ``d`` (float16, 2 bytes), the minimum ``m`` (float16, 2 bytes),
then 16 bytes whose low nibbles are weights 0–15 and whose high nibbles are weights 16–31. Each
weight is ``d · q + m``. A safetensors file is 8 bytes giving the header's length, the JSON header,
then every tensor's raw bytes at the ``[start, end)`` offsets the header gives (``safetensors_layout``).
"""
from __future__ import annotations

import os
from typing import Mapping, Sequence

import matplotlib.pyplot as plt
from matplotlib.patches import Rectangle

from slm_course.diagrams.drawing import INK, MUTED, box, canvas, colour, finish

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


def safetensors_layout(path: str | os.PathLike, names: Sequence[str], ours: Mapping[str, str] | None = None, *,
                       show: bool = True):
    """Draw a ``.safetensors`` file as it lies on disk, from its own header (``read_safetensors_header``):
    the 8-byte length, the JSON header, and the data region with each tensor of ``names`` at its byte range
    (drawn to scale within the data, gid ``"tensor-<i>"``). Below, one line per tensor: its name, dtype,
    shape and ``[start, end)`` offsets, and (``ours``) the course's parameter it loads into."""
    from slm_course.weights.hf_files import read_safetensors_header

    length, header = read_safetensors_header(path)
    missing = [n for n in names if n not in header]
    if missing or not names:
        raise ValueError(f"give tensor names the file holds; not in it: {missing or 'none given'}.")
    data_bytes = max(entry["data_offsets"][1] for entry in header.values())
    height = 2.6 + 0.5 * len(names)
    figure, ax = canvas(12, height, title=f"A safetensors file: 8 + {length:,} header bytes, then "
                                          f"{data_bytes:,} bytes of tensors at the offsets the header gives")
    top = height - 1.5
    box(ax, 0.2, top, 1.5, 0.7, "8 bytes\nheader length", fill="#FFF3B0", fontsize=8, rounded=False, gid="length")
    box(ax, 1.7, top, 2.0, 0.7, f"JSON header\n{length:,} bytes", fill="#E8EEF7", fontsize=8, rounded=False, gid="header")
    left, width = 3.7, 8.1  # the data region, to scale
    box(ax, left, top, width, 0.7, "", fill="#F4F4F4", rounded=False, gid="data")
    ax.text(left + width / 2, top + 0.82, "tensor data (to scale)", ha="center", fontsize=8, color=MUTED)
    for i, name in enumerate(names):
        start, end = header[name]["data_offsets"]
        x0, x1 = left + width * start / data_bytes, left + width * end / data_bytes
        box(ax, x0, top, max(x1 - x0, 0.03), 0.7, "", fill=colour(i), rounded=False, gid=f"tensor-{i}", alpha=0.85)
        y = top - 0.7 - 0.5 * i
        entry = header[name]
        line = f"{name}  {entry['dtype']} {list(entry['shape'])}  bytes [{start:,}, {end:,})"
        box(ax, 0.2, y - 0.15, 0.3, 0.3, "", fill=colour(i), rounded=False, alpha=0.85)  # its colour in the bar
        ax.text(0.65, y, line, fontsize=8.5, color=INK, va="center", family="monospace", gid=f"row-{i}")
        if ours is not None and name in ours:
            ax.text(8.4, y, f"→ {ours[name]}", fontsize=8.5, color=INK, va="center")
    return finish(figure, show)
