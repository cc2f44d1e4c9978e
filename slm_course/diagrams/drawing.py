"""Drawing helpers every chapter's diagrams share: boxes, arrows, token strips, coloured matrices.

Figures are built with ``matplotlib.figure.Figure`` (not ``pyplot``), so drawing one never leaves an
open pyplot figure behind and a notebook shows it exactly once (``finish``). Every drawn element that
a test may want to count gets a ``gid`` (``"window-0"``, ``"head-2"``, …): ``count_gids`` counts them.
Coordinates are data units of an axis with its frame switched off (``canvas``).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

# One palette for the whole course: the roadmap's step colours first, then more for heads and groups.
PALETTE: tuple[str, ...] = (
    "#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860", "#DA8BC3", "#8C8C8C", "#CCB974", "#64B5CD",
)
INK = "#222222"
MUTED = "#9A9A9A"
PAPER = "#F4F4F4"


def colour(index: int) -> str:
    """The ``index``-th colour of the course palette (cycles)."""
    return PALETTE[index % len(PALETTE)]


def canvas(width: float, height: float, *, title: str, xlim: tuple[float, float] | None = None,
           ylim: tuple[float, float] | None = None, dpi: int = 100):
    """A ``(Figure, Axes)`` pair: one frameless axis, ``title`` on top, equal aspect in data units.

    ``width``/``height`` are inches; ``xlim``/``ylim`` default to ``(0, width)`` and ``(0, height)``, so one
    data unit is one inch unless given otherwise.
    """
    from matplotlib.figure import Figure

    if not title:
        raise ValueError("every course diagram needs a title: pass title='...'.")
    figure = Figure(figsize=(width, height), dpi=dpi)
    ax = figure.add_axes((0.01, 0.01, 0.98, 0.88))
    ax.set_xlim(*(xlim or (0, width)))
    ax.set_ylim(*(ylim or (0, height)))
    ax.set_aspect("equal")
    ax.set_axis_off()
    figure.suptitle(title, fontsize=13, x=0.01, ha="left", y=0.98)
    return figure, ax


def box(ax, x: float, y: float, width: float, height: float, text: str = "", *, fill: str = PAPER,
        edge: str = INK, text_colour: str = INK, fontsize: float = 11, gid: str | None = None,
        rounded: bool = True, weight: str = "normal", alpha: float = 1.0):
    """A (rounded) rectangle with its lower-left corner at ``(x, y)`` and ``text`` centred in it."""
    from matplotlib.patches import FancyBboxPatch, Rectangle

    if rounded:
        pad = min(width, height) * 0.12
        patch = FancyBboxPatch((x + pad, y + pad), width - 2 * pad, height - 2 * pad,
                               boxstyle=f"round,pad={pad}", fc=fill, ec=edge, lw=1.2, alpha=alpha)
    else:
        patch = Rectangle((x, y), width, height, fc=fill, ec=edge, lw=1.0, alpha=alpha)
    if gid:
        patch.set_gid(gid)
    ax.add_patch(patch)
    if text:
        ax.text(x + width / 2, y + height / 2, text, ha="center", va="center", fontsize=fontsize,
                color=text_colour, weight=weight)
    return patch


def arrow(ax, start: tuple[float, float], end: tuple[float, float], *, text: str = "", colour: str = INK,
          style: str = "-|>", curve: float = 0.0, fontsize: float = 10, gid: str | None = None, lw: float = 1.4):
    """An arrow from ``start`` to ``end`` (optionally curved), with ``text`` beside its middle."""
    from matplotlib.patches import FancyArrowPatch

    patch = FancyArrowPatch(start, end, arrowstyle=style, mutation_scale=14, color=colour, lw=lw,
                            connectionstyle=f"arc3,rad={curve}", shrinkA=2, shrinkB=2)
    if gid:
        patch.set_gid(gid)
    ax.add_patch(patch)
    if text:  # above a horizontal arrow, to the right of a vertical one
        mx, my = (start[0] + end[0]) / 2, (start[1] + end[1]) / 2
        if abs(end[0] - start[0]) >= abs(end[1] - start[1]):
            ax.text(mx, my + 0.1, text, ha="center", va="bottom", fontsize=fontsize, color=colour, style="italic")
        else:
            ax.text(mx + 0.1, my, text, ha="left", va="center", fontsize=fontsize, color=colour, style="italic")
    return patch


def token_strip(ax, tokens: Sequence[object], x: float, y: float, *, cell: float = 0.6, height: float | None = None,
                fills: Sequence[str] | str = PAPER, gid: str | None = None, fontsize: float = 10,
                text_colour: str = INK):
    """A row of square cells, one per token, starting at ``(x, y)``; returns the patches.

    ``fills`` is one colour or one per token; each cell gets ``gid`` (if given) so tests can count them.
    """
    height = cell if height is None else height
    fills = [fills] * len(tokens) if isinstance(fills, str) else list(fills)
    if len(fills) != len(tokens):
        raise ValueError(f"token_strip got {len(tokens)} tokens but {len(fills)} colours; pass one colour per token.")
    return [box(ax, x + i * cell, y, cell, height, str(token), fill=fill, rounded=False, fontsize=fontsize,
                gid=gid, text_colour=text_colour)
            for i, (token, fill) in enumerate(zip(tokens, fills))]


def matrix(ax, values: np.ndarray, x: float, y: float, *, cell: float = 0.45, cmap: str = "viridis",
           vmin: float | None = None, vmax: float | None = None, annotate: bool = True, fmt: str = "{:.2f}",
           masked: np.ndarray | None = None, label: str = "", gid: str | None = None, fontsize: float = 8,
           tint: str | None = None):
    """A coloured grid of ``values`` (rows, columns) with its top-left corner at ``(x, y)``.

    Cells where ``masked`` is True are drawn grey with "−∞". ``tint`` colours every cell one colour whose
    strength follows the value (for a head's own colour); otherwise ``cmap``. ``label`` goes above.
    Returns the cell patches.
    """
    import matplotlib
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError(f"matrix draws a 2-D array (rows, columns); got shape {values.shape}.")
    masked = np.zeros(values.shape, dtype=bool) if masked is None else np.asarray(masked, dtype=bool)
    shown = values[~masked] if (~masked).any() else np.zeros(1)
    norm = Normalize(shown.min() if vmin is None else vmin, shown.max() if vmax is None else vmax)
    colours = (LinearSegmentedColormap.from_list("tint", ["#FFFFFF", tint]) if tint
               else matplotlib.colormaps[cmap])
    patches = []
    rows, columns = values.shape
    for i in range(rows):
        for j in range(columns):
            cx, cy = x + j * cell, y - (i + 1) * cell
            if masked[i, j]:
                patches.append(box(ax, cx, cy, cell, cell, "−∞" if annotate else "", fill="#D6D6D6", edge="white",
                                   rounded=False, fontsize=fontsize, text_colour=MUTED, gid=gid))
                continue
            level = float(norm(values[i, j])) if norm.vmax > norm.vmin else 0.5
            fill = colours(0.15 + 0.85 * level if tint else level)
            dark = level > 0.55 if tint else level < 0.6
            patches.append(box(ax, cx, cy, cell, cell, fmt.format(values[i, j]) if annotate else "", fill=fill,
                               edge="white", rounded=False, fontsize=fontsize,
                               text_colour="white" if dark else INK, gid=gid))
    if label:
        ax.text(x + columns * cell / 2, y + 0.12, label, ha="center", va="bottom", fontsize=10, color=INK)
    return patches


def finish(figure, show: bool):
    """Display ``figure`` once (as PNG, in a notebook) and return None, or return it when ``show`` is False."""
    if not show:
        return figure
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    if shell is not None:
        # A Figure made without pyplot is drawn as PNG only once the inline backend's formatter is set up;
        # a notebook that shows a diagram before touching pyplot would otherwise store only "<Figure …>".
        from matplotlib_inline.backend_inline import configure_inline_support

        png = shell.display_formatter.formatters["image/png"]
        if not any(t.__name__ == "Figure" for t in png.type_printers):
            configure_inline_support(shell, "inline")
    display(figure)
    return None


def count_gids(figure, prefix: str) -> int:
    """How many artists of ``figure`` carry a gid starting with ``prefix`` (tests count drawn parts)."""
    return sum(1 for ax in figure.axes for artist in _artists(ax) if (artist.get_gid() or "").startswith(prefix))


def gids(figure) -> set[str]:
    """Every gid in ``figure``."""
    return {artist.get_gid() for ax in figure.axes for artist in _artists(ax) if artist.get_gid()}


def texts(figure) -> list[str]:
    """All text drawn in ``figure``: its title and every label inside its axes."""
    found = [figure._suptitle.get_text()] if figure._suptitle is not None else []
    for ax in figure.axes:
        found += [ax.get_title()] + [t.get_text() for t in ax.texts]
    return [t for t in found if t]


def _artists(ax) -> Iterable:
    return list(ax.patches) + list(ax.lines) + list(ax.texts) + list(ax.collections)
