"""Chapter 9's diagrams: how a multiple-choice item becomes requests with a shared-prefix KV cache, and one
MMLU item scored two ways (letter against cloze)."""
from __future__ import annotations

import textwrap
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


def _wrapped(text: str, width: int) -> str:
    return "\n".join(textwrap.fill(line, width) if line else "" for line in text.split("\n"))


def letter_vs_cloze(letter, cloze, letter_lls: Sequence[float], cloze_lls: Sequence[float], *, show: bool = True):
    """One MMLU item two ways, side by side: ``letter`` and ``cloze`` are ``MultipleChoiceItem``s of the same
    question (``benchmarks.mmlu_item``), each drawn as the prompt the model reads and the continuations it
    scores (``" " + option``) with their log-likelihoods; the picked one is bold, the right one marked.
    Gids: ``"letter-option"``, ``"cloze-option"``, ``"letter-context"``, ``"cloze-context"``."""
    from slm_course.evaluate.benchmarks import pick

    for name, item, lls in (("letter", letter, letter_lls), ("cloze", cloze, cloze_lls)):
        if len(lls) != len(item.options):
            raise ValueError(f"the {name} item has {len(item.options)} options but {len(lls)} log-likelihoods.")
    if letter.answer != cloze.answer or len(letter.options) != len(cloze.options):
        raise ValueError("letter and cloze must be the same question: same answer and number of options.")
    n = len(letter.options)
    contexts = [_wrapped(item.context, 46) for item in (letter, cloze)]
    lines = max(c.count("\n") + 1 for c in contexts)
    context_height = 0.165 * lines + 0.3
    height = context_height + 0.55 * n + 1.5
    figure, ax = canvas(13, height, title="One MMLU item two ways: letter scores \" A\" … \" D\"; cloze scores "
                                          "each option's own text")
    for column, (name, item, lls, context) in enumerate((("letter", letter, letter_lls, contexts[0]),
                                                         ("cloze", cloze, cloze_lls, contexts[1]))):
        x = 0.2 + 6.5 * column
        top = height - 0.95
        ax.text(x, top + 0.1, "letter (lm-eval's mmlu)" if name == "letter" else "cloze (lm-eval's mmlu_continuation)",
                fontsize=11, weight="bold", color=INK)
        box(ax, x, top - context_height, 6.2, context_height, "", fill="#E8EEF7", rounded=False, gid=f"{name}-context")
        ax.text(x + 0.12, top - 0.12, context, fontsize=8.5, family="monospace", va="top", color=INK)
        best = pick(lls)
        for i, option in enumerate(item.options):
            y = top - context_height - 0.6 - 0.55 * i
            label = textwrap.shorten(repr(" " + option), 30, placeholder="…'")
            box(ax, x, y, 2.6, 0.45, label, fill=colour(i), text_colour="white", fontsize=9, rounded=False,
                gid=f"{name}-option")
            mark = ("  ← picked" if i == best else "") + ("  ✓ right" if i == item.answer else "")
            ax.text(x + 2.75, y + 0.22, f"log P = {lls[i]:.2f}{mark}", va="center", fontsize=9.5, color=INK,
                    weight="bold" if i == best else "normal")
    return finish(figure, show)
