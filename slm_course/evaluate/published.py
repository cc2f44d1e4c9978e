"""Published benchmark results of small models, quoted (not measured here), with where each comes from.

Chapter 9 plots them against parameters and training tokens beside what the course measures.

- ``OPENELM_TABLE``: zero-shot accuracy (%) on ARC-c, ARC-e, BoolQ, HellaSwag, PIQA, SciQ and WinoGrande
  from the OpenELM paper (Mehta et al., 2024, arXiv:2404.14619, Table 4a), with each model's size and
  pre-training tokens as that table gives them. Each row's average is the mean of its seven tasks
  (a test checks the transcription against the averages printed in the paper).
- ``SMOLLM2_CARD``: SmolLM2-135M's figures from its model card (zero-shot unless stated, run with
  ``lighteval``), base and instruct.
"""
from __future__ import annotations

TASKS = ("ARC-c", "ARC-e", "BoolQ", "HellaSwag", "PIQA", "SciQ", "WinoGrande")

OPENELM_SOURCE = "OpenELM paper (arXiv:2404.14619), Table 4(a), zero-shot"

# (model, parameters in billions, pre-training tokens in trillions, seven accuracies, the paper's average)
OPENELM_TABLE: list[dict] = [
    {"model": "OpenELM-0.27B", "params_b": 0.27, "tokens_t": 1.5, "scores": (26.45, 45.08, 53.98, 46.71, 69.75, 84.70, 53.91), "average": 54.37},
    {"model": "MobiLlama-0.50B", "params_b": 0.50, "tokens_t": 1.3, "scores": (26.62, 46.04, 55.72, 51.06, 71.11, 83.60, 53.20), "average": 55.34},
    {"model": "OpenELM-0.45B", "params_b": 0.45, "tokens_t": 1.5, "scores": (27.56, 48.06, 55.78, 53.97, 72.31, 87.20, 58.01), "average": 57.56},
    {"model": "TinyLlama-1.10B", "params_b": 1.10, "tokens_t": 3.0, "scores": (30.12, 55.25, 57.83, 59.20, 73.29, 89.20, 59.12), "average": 60.57},
    {"model": "OpenLM-1.00B", "params_b": 1.00, "tokens_t": 1.6, "scores": (31.00, 56.65, 65.14, 61.73, 74.65, 91.40, 59.98), "average": 62.94},
    {"model": "MobiLlama-0.80B", "params_b": 0.80, "tokens_t": 1.3, "scores": (28.84, 49.62, 60.03, 52.45, 73.18, 85.90, 55.96), "average": 58.00},
    {"model": "MobiLlama-1.26B", "params_b": 1.26, "tokens_t": 1.3, "scores": (31.91, 56.65, 60.34, 62.18, 74.81, 89.10, 59.27), "average": 62.04},
    {"model": "OLMo-1.18B", "params_b": 1.18, "tokens_t": 3.0, "scores": (31.06, 57.28, 61.74, 62.92, 75.14, 87.00, 59.98), "average": 62.16},
    {"model": "OpenELM-1.08B", "params_b": 1.08, "tokens_t": 1.5, "scores": (32.34, 55.43, 63.58, 64.81, 75.57, 90.60, 61.72), "average": 63.44},
    {"model": "OpenELM-3.04B", "params_b": 3.04, "tokens_t": 1.5, "scores": (35.58, 59.89, 67.40, 72.44, 78.24, 92.70, 65.51), "average": 67.39},
]

SMOLLM2_SOURCE = "SmolLM2-135M model card (lighteval, zero-shot unless stated)"

SMOLLM2_CARD: dict[str, dict[str, float]] = {
    "SmolLM2-135M (base)": {"HellaSwag": 42.1, "ARC (average)": 43.9, "PIQA": 68.4, "MMLU (cloze)": 31.5,
                            "CommonsenseQA": 33.9, "TriviaQA": 4.1, "WinoGrande": 51.3, "OpenBookQA": 34.6,
                            "GSM8K (5-shot)": 1.4},
    "SmolLM2-135M-Instruct": {"HellaSwag": 40.9, "ARC (average)": 37.3, "PIQA": 66.3, "MMLU (cloze)": 29.3,
                              "BBH (3-shot)": 28.2, "GSM8K (5-shot)": 1.4},
}
SMOLLM2_PARAMS_B = 0.135
SMOLLM2_TOKENS_T = 2.0  # the card: trained on 2 trillion tokens


def plot_quality_vs_size(measured: dict[str, tuple[float, float, float]] | None = None, task: str = "HellaSwag"):
    """HellaSwag (or another shared task) against parameters and against training tokens, log axes.

    ``measured`` maps a label to ``(params_b, tokens_t, accuracy %)`` for the course's own points.
    Every point is labelled with where it comes from, each label placed where it overlaps no other
    label and no point (:func:`place_labels`). Returns the figure.
    """
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    column = TASKS.index(task)
    families = sorted({row["model"].split("-")[0] for row in OPENELM_TABLE})
    colours = {family: f"C{i}" for i, family in enumerate(families)}
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.6), dpi=90)
    for ax, key, label in ((axes[0], "params_b", "parameters (billions, log scale)"),
                           (axes[1], "tokens_t", "training tokens (trillions, log scale)")):
        points = []  # (x, y, text, colour)
        for row in OPENELM_TABLE:
            family = row["model"].split("-")[0]
            ax.scatter(row[key], row["scores"][column], label=family, marker="o", s=40, color=colours[family], zorder=3)
            points.append((row[key], row["scores"][column], row["model"], "#333333"))
        card = SMOLLM2_CARD["SmolLM2-135M (base)"].get(task)
        if card is not None:
            x = SMOLLM2_PARAMS_B if key == "params_b" else SMOLLM2_TOKENS_T
            ax.scatter(x, card, marker="*", s=180, color="black", label="SmolLM2 (model card)", zorder=3)
            points.append((x, card, "SmolLM2-135M (card)", "black"))
        for name, (params, tokens, accuracy) in (measured or {}).items():
            x = params if key == "params_b" else tokens
            ax.scatter(x, accuracy, marker="D", s=60, color="crimson", label="measured here", zorder=3)
            points.append((x, accuracy, name, "crimson"))
        ax.set_xscale("log")
        ticks = FuncFormatter(lambda value, _: f"{value:g}")
        ax.xaxis.set_major_formatter(ticks)
        ax.xaxis.set_minor_formatter(FuncFormatter(_minor_tick))
        ax.tick_params(axis="x", which="minor", labelsize=8)
        xs, ys = [p[0] for p in points], [p[1] for p in points]
        ax.set_xlim(min(xs) / 1.8, max(xs) * 1.8)
        ax.set_ylim(min(ys) - 4, max(ys) + 4)
        ax.set_xlabel(label, fontsize=10)
        ax.set_ylabel(f"{task} accuracy (%)", fontsize=10)
        ax.grid(alpha=0.3)
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=8, loc="lower right")
        place_labels(ax, points)
    fig.suptitle(f"{task}: quality against size and data (published: {OPENELM_SOURCE}; SmolLM2: its model card)",
                 fontsize=10)
    fig.tight_layout()
    for ax in axes:  # tight_layout moved the axes: place again on the final layout
        for text in list(ax.texts):
            text.remove()
        place_labels(ax, ax._course_points)
    return fig


# Offsets (points) tried for a label, nearest first: right, left, above, below, then further out.
_OFFSETS = [(6, -4), (-6, -4), (0, 8), (0, -16), (6, 8), (-6, 8), (6, -16), (-6, -16)]
_OFFSETS += [(dx * k, dy * k) for k in (2, 3, 4) for dx, dy in ((6, 6), (-6, 6), (6, -8), (-6, -8), (0, 10), (0, -12))]


def place_labels(ax, points: list[tuple[float, float, str, str]], fontsize: float = 8) -> None:
    """Write each ``(x, y, text, colour)`` beside its point, at the first offset of ``_OFFSETS`` where its
    box overlaps no label already placed, no marker and nothing outside the axes (a thin line joins a
    label placed further out to its point). Deterministic: points in the order given."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    to_pixels = ax.transData.transform
    scale = fig.dpi / 72  # points → pixels
    markers = [to_pixels((x, y)) for x, y, _, _ in points]
    inside = ax.get_window_extent(renderer)
    legend = ax.get_legend()
    placed = [legend.get_window_extent(renderer)] if legend is not None else []  # labels keep off the legend
    ax._course_points = points
    for (x, y, text, colour) in points:
        for dx, dy in _OFFSETS:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            far = abs(dx) > 6 or abs(dy) > 16
            label = ax.annotate(text, (x, y), xytext=(dx, dy), textcoords="offset points", fontsize=fontsize,
                                ha=ha, color=colour,
                                arrowprops=dict(arrowstyle="-", color="#999999", lw=0.6) if far else None)
            box = label.get_window_extent(renderer).padded(1.5)
            clash = any(box.overlaps(other) for other in placed)
            clash = clash or any(box.contains(mx, my) or _near(box, mx, my, 4 * scale) for mx, my in markers)
            clash = clash or not (inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1)
            if not clash:
                placed.append(box)
                break
            label.remove()
        else:  # nowhere free: keep the first place
            label = ax.annotate(text, (x, y), xytext=_OFFSETS[0], textcoords="offset points", fontsize=fontsize, color=colour)
            placed.append(label.get_window_extent(renderer))


def _minor_tick(value: float, _position=None) -> str:
    """A log axis's minor tick label only at 2, 3 and 5 times a power of ten, so the labels never crowd."""
    import math

    leading = round(value / 10 ** math.floor(math.log10(value)), 6)
    return f"{value:g}" if leading in (2, 3, 5) else ""


def _near(box, x: float, y: float, radius: float) -> bool:
    """Whether ``box`` comes within ``radius`` pixels of ``(x, y)``."""
    return box.x0 - radius <= x <= box.x1 + radius and box.y0 - radius <= y <= box.y1 + radius
