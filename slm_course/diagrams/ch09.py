"""Chapter 9's diagram: how a multiple-choice item becomes requests, and the shared-prefix KV cache."""
from __future__ import annotations

from typing import Sequence

from slm_course.diagrams.drawing import INK, MUTED, arrow, box, canvas, colour, finish


def multiple_choice_scoring(options: Sequence[str] = (" A", " B", " C", " D"),
                            loglikelihoods: Sequence[float] | None = None, *, answer: int | None = None,
                            show: bool = True):
    """Draw one question's context run once into a KV cache, every option continuing from it, and each
    option's log-likelihood (the largest wins: ``acc``). Options carry the gid ``"option"``."""
    if not options:
        raise ValueError("give at least one option to draw.")
    if loglikelihoods is not None and len(loglikelihoods) != len(options):
        raise ValueError(f"got {len(options)} options but {len(loglikelihoods)} log-likelihoods.")
    n = len(options)
    height = 1.2 + 0.85 * n
    figure, ax = canvas(10.5, height, title="Multiple choice: the context runs once, every option continues from its KV cache")
    mid = height / 2 - 0.35
    box(ax, 0.2, mid - 0.45, 3.0, 0.9, "question + options\n…\"Answer:\"", fill="#E8EEF7", fontsize=10, gid="context")
    box(ax, 3.8, mid - 0.35, 1.6, 0.7, "KV cache", fill="#FFF3B0", fontsize=10, gid="cache")
    arrow(ax, (3.2, mid), (3.8, mid), text="once")
    best = None if loglikelihoods is None else max(range(n), key=lambda i: loglikelihoods[i])
    for i, option in enumerate(options):
        y = height - 1.05 - i * 0.85
        fill = colour(i)
        box(ax, 6.1, y, 1.2, 0.6, repr(option), fill=fill, text_colour="white", fontsize=10, gid="option", rounded=False)
        arrow(ax, (5.4, mid), (6.1, y + 0.3), colour=MUTED, curve=0.0)
        if loglikelihoods is not None:
            mark = "  ← picked" if i == best else ""
            mark += "  (right answer)" if answer is not None and i == answer else ""
            ax.text(7.5, y + 0.3, f"log P = {loglikelihoods[i]:.2f}{mark}", va="center", fontsize=10,
                    color=INK, weight="bold" if i == best else "normal")
    return finish(figure, show)
