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
    Every point is labelled with where it comes from. Returns the figure.
    """
    import matplotlib.pyplot as plt

    column = TASKS.index(task)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), dpi=80)
    for ax, key, label in ((axes[0], "params_b", "parameters (billions, log)"), (axes[1], "tokens_t", "training tokens (trillions, log)")):
        for row in OPENELM_TABLE:
            family = row["model"].split("-")[0]
            ax.scatter(row[key], row["scores"][column], label=family, marker="o")
            ax.annotate(row["model"], (row[key], row["scores"][column]), fontsize=7, xytext=(3, 3), textcoords="offset points")
        card = SMOLLM2_CARD["SmolLM2-135M (base)"].get(task)
        if card is not None:
            x = SMOLLM2_PARAMS_B if key == "params_b" else SMOLLM2_TOKENS_T
            ax.scatter(x, card, marker="*", s=140, color="black", label="SmolLM2 (model card)")
            ax.annotate("SmolLM2-135M (card)", (x, card), fontsize=7, xytext=(3, -10), textcoords="offset points")
        for name, (params, tokens, accuracy) in (measured or {}).items():
            x = params if key == "params_b" else tokens
            ax.scatter(x, accuracy, marker="D", s=60, color="crimson", label="measured here")
            ax.annotate(name, (x, accuracy), fontsize=7, xytext=(3, -10), textcoords="offset points", color="crimson")
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel(f"{task} accuracy (%)")
        handles, labels = ax.get_legend_handles_labels()
        unique = dict(zip(labels, handles))
        ax.legend(unique.values(), unique.keys(), fontsize=7, loc="lower right")
    fig.suptitle(f"{task}: quality against size and data (published: {OPENELM_SOURCE}; SmolLM2: its model card)", fontsize=9)
    fig.tight_layout()
    return fig
