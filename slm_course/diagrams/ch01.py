"""Chapter 1's diagrams: sliding windows over token ids, and one step of byte-pair encoding.

Both draw from the package's own code (``data.SlidingWindowDataset``'s window rule, the tokenizer's
``count_pairs`` and ``merge_pair``), so the picture is what the chapter computes.
"""
from __future__ import annotations

from typing import Sequence

import regex

from slm_course.diagrams.drawing import INK, MUTED, arrow, box, canvas, colour, finish, token_strip

_CELL = 0.62


def window_starts(n_ids: int, context_length: int, stride: int) -> list[int]:
    """Where windows start: every ``stride`` ids while an input and its shifted target both fit
    (the rule of ``data.SlidingWindowDataset``)."""
    if context_length < 1 or stride < 1:
        raise ValueError(f"context_length and stride must be at least 1, got {context_length} and {stride}.")
    return list(range(0, n_ids - context_length, stride))


def sliding_windows(ids: Sequence[int], context_length: int, stride: int, *, show: bool = True):
    """Draw the token ``ids`` and, under them, every (input, target) window cut from them.

    Window ``k`` starts at ``k × stride``: its input is ``context_length`` ids, its target the same
    span shifted one id to the right. Each window has its own colour (input cells solid, target
    cells pale); input cells carry the gid ``"input-k"``, target cells ``"target-k"``.
    Returns the ``Figure`` when ``show`` is False, otherwise displays it.
    """
    ids = [int(i) for i in ids]
    starts = window_starts(len(ids), context_length, stride)
    if not starts:
        raise ValueError(f"{len(ids)} ids are too few for one window of {context_length} inputs plus a shifted target; "
                         "pass more ids or a smaller context_length.")
    left = 2.3  # room for the row labels
    width = left + _CELL * len(ids) + 0.3
    height = 1.6 + 1.45 * len(starts)
    title = (f"Sliding windows: context_length={context_length}, stride={stride} → "
             f"{len(starts)} (input, target) pairs from {len(ids)} ids")
    figure, ax = canvas(width, height, title=title)
    top = height - 1.0
    ax.text(left - 0.15, top + _CELL / 2, "token ids", ha="right", va="center", fontsize=10, color=INK)
    token_strip(ax, ids, left, top, cell=_CELL, gid="id")
    for position in range(len(ids)):
        ax.text(left + (position + 0.5) * _CELL, top + _CELL + 0.08, str(position), ha="center", va="bottom",
                fontsize=8, color=MUTED)
    for k, start in enumerate(starts):
        y = top - 0.75 - k * 1.45
        shade = colour(k)
        ax.text(left - 0.15, y + _CELL / 2, f"window {k}: input", ha="right", va="center", fontsize=10, color=shade)
        token_strip(ax, ids[start:start + context_length], left + start * _CELL, y, cell=_CELL,
                    fills=shade, gid=f"input-{k}", text_colour="white")
        ty = y - 0.66
        ax.text(left - 0.15, ty + _CELL / 2, "target", ha="right", va="center", fontsize=10, color=shade)
        cells = token_strip(ax, ids[start + 1:start + context_length + 1], left + (start + 1) * _CELL, ty,
                            cell=_CELL, fills="white", gid=f"target-{k}")
        for cell in cells:
            cell.set_edgecolor(shade)
            cell.set_linewidth(1.8)
    ax.text(left, 0.15, "each target cell is the id that follows the input cell above-left of it: "
                        "the next token to predict", fontsize=9, color=MUTED, style="italic")
    return finish(figure, show)


def _chunks(text: str) -> list[str]:
    from slm_course.tokenizers import GPT2_SPLIT_PATTERN

    return regex.findall(GPT2_SPLIT_PATTERN, text)


def _label(byte_ids: Sequence[int], vocabulary: dict[int, bytes]) -> str:
    text = b"".join(vocabulary[i] for i in byte_ids).decode("utf-8", errors="replace")
    return text.replace(" ", "␣")


def bpe_merge(text: str = "low lower lowest", *, new_id: int = 256, show: bool = True):
    """Draw one BPE merge on ``text``: count adjacent pairs inside each chunk, merge the most
    frequent (ties: the pair with the smaller ids, as in training) into token ``new_id``.

    Cells of the winning pair carry the gid ``"pair"`` before the merge, the merged tokens ``"merged"``
    after it. Returns the ``Figure`` when ``show`` is False, otherwise displays it.
    """
    from slm_course.tokenizers.training import count_pairs, merge_pair

    chunks = [list(chunk.encode("utf-8")) for chunk in _chunks(text)]
    if not any(len(c) > 1 for c in chunks):
        raise ValueError(f"{text!r} has no two adjacent bytes inside one chunk, so there is no pair to merge.")
    counts: dict[tuple[int, int], int] = {}
    for chunk in chunks:
        count_pairs(chunk, counts)
    best = min(counts, key=lambda pair: (-counts[pair], pair))
    merged = [merge_pair(chunk, best, new_id) for chunk in chunks]
    vocabulary = {b: bytes([b]) for b in range(256)}
    vocabulary[new_id] = bytes(best)
    n_before = sum(len(c) for c in chunks)
    gap = 0.3
    left = 1.7
    width = left + n_before * _CELL + gap * len(chunks) + 3.6
    height = 4.4
    pair_text = f"({_label([best[0]], vocabulary)!r}, {_label([best[1]], vocabulary)!r})"
    figure, ax = canvas(width, height, title=f"One BPE merge: the most frequent pair {pair_text} becomes token {new_id}")

    def draw_row(rows: list[list[int]], y: float, highlight: str) -> None:
        x = left
        for chunk in rows:
            i = 0
            while i < len(chunk):
                is_pair = highlight == "pair" and i + 1 < len(chunk) and (chunk[i], chunk[i + 1]) == best
                for j in range(2 if is_pair else 1):
                    token = chunk[i + j]
                    chosen = is_pair or (highlight == "merged" and token == new_id)
                    box(ax, x, y, _CELL * (1.6 if token == new_id else 1), _CELL, _label([token], vocabulary),
                        fill=colour(1) if chosen else "#F4F4F4", text_colour="white" if chosen else INK,
                        rounded=False, fontsize=11, gid=highlight if chosen else "token")
                    x += _CELL * (1.6 if token == new_id else 1)
                i += 2 if is_pair else 1
            x += gap

    top = height - 1.2
    ax.text(left - 0.15, top + _CELL / 2, "before", ha="right", va="center", fontsize=11)
    draw_row(chunks, top, "pair")
    ax.text(left - 0.15, top - 1.9 + _CELL / 2, "after", ha="right", va="center", fontsize=11)
    draw_row(merged, top - 1.9, "merged")
    arrow(ax, (left + 1.0, top - 0.15), (left + 1.0, top - 1.9 + _CELL + 0.1),
          text=f"replace every {pair_text} with {new_id}", colour=colour(1))
    # the pair counts, largest first
    tx = width - 3.3
    ax.text(tx, top + _CELL + 0.05, "pair counts (inside chunks)", fontsize=10, weight="bold")
    ranked = sorted(counts, key=lambda pair: (-counts[pair], pair))[:5]
    for r, pair in enumerate(ranked):
        ax.text(tx, top + 0.1 - r * 0.36, f"{_label([pair[0]], vocabulary)!r} + {_label([pair[1]], vocabulary)!r}: "
                f"{counts[pair]}", fontsize=10, color=colour(1) if pair == best else INK,
                weight="bold" if pair == best else "normal")
    ax.text(left, 0.2, f"{n_before} tokens → {sum(len(c) for c in merged)}; gaps mark GPT-2's chunks, "
                       "which merges never cross", fontsize=9, color=MUTED, style="italic")
    return finish(figure, show)
