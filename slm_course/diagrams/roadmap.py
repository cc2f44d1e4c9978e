"""The course map: five steps, ten chapters, one highlighted (shown at the top of every chapter)."""
from __future__ import annotations

STEPS: tuple[str, ...] = ("Prepare", "Build", "Finetune", "Evaluate", "Deploy")

# chapter number -> (step, short title)
CHAPTERS: dict[int, tuple[str, str]] = {
    1: ("Prepare", "Data & tokenizers"),
    2: ("Prepare", "Attention"),
    3: ("Prepare", "Architecture"),
    4: ("Build", "Pretraining"),
    5: ("Build", "Evaluation & decoding"),
    6: ("Build", "Pretrained weights"),
    7: ("Finetune", "Classification"),
    8: ("Finetune", "Instruct, DPO, merge"),
    9: ("Evaluate", "Benchmarks & Elo"),
    10: ("Deploy", "Quantize & serve"),
}

_COLOURS = {"Prepare": "#4C72B0", "Build": "#55A868", "Finetune": "#C44E52", "Evaluate": "#8172B2", "Deploy": "#CCB974"}


def step_of(chapter: int) -> str:
    """The map step (``"Prepare"`` … ``"Deploy"``) a chapter belongs to."""
    if chapter not in CHAPTERS:
        raise ValueError(f"chapter must be one of {min(CHAPTERS)}–{max(CHAPTERS)}, got {chapter!r}.")
    return CHAPTERS[chapter][0]


def roadmap(chapter: int | None = None, *, show: bool = True):
    """Draw the course map; ``chapter`` (1–10) and its step are highlighted, the rest greyed.

    With ``show=True`` (the default) the map is displayed once in the notebook (a PNG) and nothing is
    returned; with ``show=False`` the matplotlib ``Figure`` is returned (to save or test it).
    """
    from matplotlib.figure import Figure
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    from slm_course.diagrams.drawing import finish

    current = step_of(chapter) if chapter is not None else None
    fig = Figure(figsize=(11, 2.7), dpi=90)
    ax = fig.add_axes((0, 0, 1, 0.86))
    ax.set_xlim(0, 10.1)
    ax.set_ylim(0, 2.6)
    ax.axis("off")
    width = 1.7
    for index, step in enumerate(STEPS):
        x = 0.15 + index * 2.0
        active = current is None or step == current
        colour = _COLOURS[step] if active else "#D0D0D0"
        ax.add_patch(FancyBboxPatch((x, 1.55), width, 0.7, boxstyle="round,pad=0.04", fc=colour, ec="none"))
        ax.text(x + width / 2, 1.9, step, ha="center", va="center", fontsize=13, weight="bold",
                color="white" if active else "#707070")
        if index < len(STEPS) - 1:
            ax.add_patch(FancyArrowPatch((x + width + 0.05, 1.9), (x + 2.0 - 0.05, 1.9),
                                         arrowstyle="-|>", mutation_scale=14, color="#909090"))
        members = [n for n, (s, _) in CHAPTERS.items() if s == step]
        for row, number in enumerate(members):
            here = number == chapter
            y = 1.25 - row * 0.42
            ax.text(x + width / 2, y, f"{number}  {CHAPTERS[number][1]}", ha="center", va="center", fontsize=9.5,
                    weight="bold" if here else "normal", color="black" if (here or current is None) else "#909090",
                    bbox=dict(boxstyle="round,pad=0.25", fc="#FFF3B0", ec=_COLOURS[step]) if here else None)
    title = "The course map" if chapter is None else f"The course map — you are here: chapter {chapter}, {current}"
    fig.suptitle(title, fontsize=12, x=0.01, ha="left")
    return finish(fig, show)
