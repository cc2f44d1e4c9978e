"""Chapter 4's diagrams: one optimizer step, the learning-rate schedule's phases, checkpoint and resume.

The schedule is drawn from ``slm_course.train.lr_at`` and the step's numbers (rate, gradient norm)
from a run's ``History``, so each picture shows what the course's loop computes.
"""
from __future__ import annotations

from slm_course.diagrams.drawing import INK, MUTED, PAPER, arrow, box, canvas, colour, finish


def optimizer_step(grad_accum_steps: int = 3, *, step: int = 0, lr: float | None = None,
                   grad_norm: float | None = None, grad_clip: float | None = 1.0, show: bool = True):
    """Draw optimizer step ``step`` of the training loop, left to right: ``grad_accum_steps`` micro-batches
    (``batches(step·N + i)``), each loss divided by N and backpropagated, their gradients summed in
    ``.grad``, the global norm clipped to ``grad_clip``, then one AdamW step at the step's rate.

    ``lr`` and ``grad_norm`` (a run's ``History.lr[step]`` and ``History.grad_norm[step]``) are written
    on the clip and AdamW boxes when given. Micro-batch boxes carry the gid ``"micro-i"``, the others
    ``"sum"``, ``"clip"``, ``"adamw"``. Returns the ``Figure`` when ``show`` is False, else displays it.
    """
    n = grad_accum_steps
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"grad_accum_steps must be a whole number ≥ 1, got {n!r}.")
    rows = min(n, 4)  # at most four rows drawn; "…" stands for the rest
    width, height = 11.6, 1.0 + 1.0 * rows
    figure, ax = canvas(width, height, title=f"One optimizer step (step {step}): {n} micro-batches → one update")
    top = height - 1.2
    mid = top - (rows - 1) * 0.5
    shown = list(range(rows - 1)) + [n - 1] if n > rows else list(range(n))
    for row, i in enumerate(shown):
        y = top - row * 1.0
        box(ax, 0.1, y, 2.0, 0.75, f"batches({step * n + i})", fill=colour(0), text_colour="white",
            gid=f"micro-{i}", fontsize=10)
        arrow(ax, (2.1, y + 0.37), (2.6, y + 0.37))
        box(ax, 2.6, y, 2.3, 0.75, f"(loss{_sub(i)} / {n}).backward()", fill=PAPER, fontsize=9, gid=f"backward-{i}")
        arrow(ax, (4.9, y + 0.37), (5.6, mid + 0.37), curve=0.0)
        if n > rows and row == rows - 2:
            ax.text(1.1, y - 0.15, "…", ha="center", va="center", fontsize=14, color=MUTED)
    box(ax, 5.6, mid - 0.1, 1.8, 0.95, "summed\ngradient\nin .grad", fill=colour(2), text_colour="white",
        gid="sum", fontsize=10)
    arrow(ax, (7.4, mid + 0.37), (7.8, mid + 0.37))
    clip = "no clipping" if grad_clip is None else f"clip ‖g‖ to ≤ {grad_clip:g}"
    if grad_norm is not None:
        after = grad_norm if grad_clip is None else min(grad_norm, grad_clip)
        clip += f"\n‖g‖ {grad_norm:.2f} → {after:.2f}"
    box(ax, 7.8, mid - 0.1, 1.7, 0.95, clip, fill=colour(1), text_colour="white", gid="clip", fontsize=9)
    arrow(ax, (9.5, mid + 0.37), (9.9, mid + 0.37))
    rate = "AdamW step\nat lr_at(step)" if lr is None else f"AdamW step\nlr = {lr:.2e}"
    box(ax, 9.9, mid - 0.1, 1.6, 0.95, rate, fill=colour(3), text_colour="white", gid="adamw", fontsize=9)
    ax.text(0.1, 0.15, "the N scaled losses' gradients add up to the gradient of one batch N times larger; "
            "then zero_grad()", fontsize=9, color=MUTED, style="italic")
    return finish(figure, show)


def _sub(i: int) -> str:
    return str(i).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def schedule_phases(config, *, show: bool = True):
    """Draw the learning rate of every step of ``config`` (a ``TrainConfig``) from ``lr_at``, with its three
    phases shaded: linear warmup (step 0 already gets ``lr / warmup_steps``), the half cosine from the
    peak, and the floor ``min_lr`` the cosine ends on. The curve carries the gid ``"lr"``, the shaded
    phases ``"phase-warmup"`` and ``"phase-cosine"``, the floor line ``"floor"``. Returns the ``Figure``
    when ``show`` is False, else displays it.
    """
    from matplotlib.figure import Figure

    from slm_course.train import lr_at

    steps = list(range(config.max_steps))
    rates = [lr_at(s, config) for s in steps]
    figure = Figure(figsize=(7.5, 3.0), dpi=100)
    ax = figure.add_axes((0.11, 0.17, 0.86, 0.68))
    warm = config.warmup_steps
    if warm:
        ax.axvspan(-0.5, warm - 0.5, color=colour(1), alpha=0.18, gid="phase-warmup")
        ax.text((warm - 1) / 2, config.lr * 1.04, "warmup", ha="center", va="bottom", fontsize=10, color=colour(1))
    ax.axvspan(warm - 0.5, config.max_steps - 0.5, color=colour(0), alpha=0.08, gid="phase-cosine")
    ax.text((warm + config.max_steps) / 2, config.lr * 1.04, "cosine decay", ha="center", va="bottom", fontsize=10,
            color=colour(0))
    ax.axhline(config.min_lr, color=MUTED, linestyle="--", lw=1.0, gid="floor")
    ax.text((warm + config.max_steps) / 2, config.min_lr, f"floor {config.min_lr:.1e}", ha="center", va="bottom", fontsize=9,
            color=MUTED)
    (line,) = ax.plot(steps, rates, color=INK, lw=1.8)
    line.set_gid("lr")
    ax.annotate(f"step 0: {rates[0]:.1e}, not 0", (0, rates[0]), xytext=(warm + 0.06 * config.max_steps,
                rates[0] + 0.12 * config.lr), fontsize=9, arrowprops=dict(arrowstyle="->", color=INK, lw=0.8))
    ax.set(xlabel="optimizer step", ylabel="learning rate", ylim=(0, config.lr * 1.2),
           xlim=(-0.5, config.max_steps - 0.5))
    figure.suptitle(f"The schedule of a {config.max_steps}-step run: {warm} warmup steps, peak {config.lr:.1e}",
                    fontsize=13, x=0.01, ha="left", y=0.98)
    return finish(figure, show)


def checkpoint_resume(stop: int = 30, max_steps: int = 60, *, show: bool = True):
    """Draw an uninterrupted run of ``max_steps`` steps above one stopped after ``stop`` steps, saved,
    dropped, loaded into a fresh model and optimizer and finished; what the checkpoint holds is listed
    beside it. The runs' bars carry the gids ``"run-whole"``, ``"run-first"``, ``"run-rest"``, the
    checkpoint ``"checkpoint"``. Returns the ``Figure`` when ``show`` is False, else displays it.
    """
    if not 0 < stop < max_steps:
        raise ValueError(f"stop must lie strictly between 0 and max_steps ({max_steps}), got {stop!r}.")
    width, height = 11.6, 4.4
    figure, ax = canvas(width, height, title=f"Stop after step {stop}, resume, and end on the same weights")
    x0, span = 1.9, 6.2
    at = x0 + span * stop / max_steps
    ax.text(x0 - 0.15, 3.35, "uninterrupted", ha="right", va="center", fontsize=10)
    box(ax, x0, 3.05, span, 0.6, f"steps 0 … {max_steps - 1}", fill=colour(0), text_colour="white",
        rounded=False, gid="run-whole")
    ax.text(x0 - 0.15, 1.75, "interrupted", ha="right", va="center", fontsize=10)
    box(ax, x0, 1.45, at - x0 - 0.35, 0.6, f"steps 0 … {stop - 1}", fill=colour(0), text_colour="white",
        rounded=False, gid="run-first")
    box(ax, at + 0.35, 1.45, x0 + span - at - 0.35, 0.6, f"steps {stop} … {max_steps - 1}", fill=colour(2),
        text_colour="white", rounded=False, gid="run-rest")
    ax.text(at, 2.3, "save · drop model and\noptimizer · load", ha="center", va="bottom", fontsize=9, color=INK)
    ax.plot([at, at], [1.3, 2.2], color=colour(3), lw=2.2)
    for y in (3.35, 1.75):
        ax.text(x0 + span + 0.12, y, "→ weights", ha="left", va="center", fontsize=10)
    ax.text(x0 + span + 0.55, 2.55, "equal", ha="center", va="center", fontsize=11, weight="bold", color=colour(3))
    box(ax, 0.2, 0.1, 11.2, 0.95, "", fill=PAPER, gid="checkpoint")
    ax.text(0.35, 0.57, f"the checkpoint (step {stop}): model weights · AdamW's moments and step counts · "
            f"the step, {stop} · the history so far · the random state · the run's config",
            ha="left", va="center", fontsize=9.5)
    ax.text(0.35, 0.25, f"micro-batch i is batches(i), a function of i alone: the resumed run reads from "
            f"batches({stop}·N) on, as the uninterrupted one did", ha="left", va="center", fontsize=9, color=MUTED,
            style="italic")
    return finish(figure, show)
