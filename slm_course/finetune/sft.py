"""Chapter 8's training runs: supervised finetuning (full or LoRA), DPO and fusion on the generated tasks.

Each run is chapter 4's :func:`slm_course.train.train` with another ``loss_fn`` and batches built
from the chapter's own data (:mod:`slm_course.finetune.instruct`):

- :func:`finetune` trains on ``(prompt_ids, answer_ids)`` pairs with :func:`instruct.sft_loss` by
  default; pass :func:`slm_course.finetune.fuse.fusion_loss_fn` to distil teachers instead;
- :func:`preference_tune` trains on :class:`slm_course.finetune.dpo.PreferencePair` batches with
  :func:`slm_course.finetune.dpo.dpo_loss_fn` against a frozen copy of the starting model;
- :func:`score_models` scores several models by greedy exact match per family, and
  :func:`format_scores` prints the table (one row per model, one column per family).

With ``progress=True`` a run shows a live ``tqdm.auto`` bar over its optimizer steps (:class:`StepProgress`, on
:func:`slm_course.train.progress.progress_bar`);
in a notebook the bar gives way to a one-line summary when the run ends, so a stored notebook never holds a
bar frozen part-way. Budgets are optimizer steps and batch sizes, never seconds, so a run repeats.
"""
from __future__ import annotations

import contextlib
import copy
import time
from typing import Callable, Mapping, Sequence

import torch
from torch import nn

from slm_course.finetune.dpo import DPOLog, PreferencePair, dpo_batch, dpo_loss_fn
from slm_course.finetune.instruct import (
    FAMILIES, Example, answer, encode_example, exact_match, format_chat, sft_batches, sft_loss, shuffled_batches,
)
from slm_course.train.loop import History, TrainConfig, train
from slm_course.train.progress import progress_bar


class StepProgress:
    """A live bar over a run's ``steps`` optimizer steps that leaves one line behind.

    :meth:`track` wraps a ``loss_fn`` so that each call (one per step: the runs here take one micro-batch
    per step) advances the bar and shows the step's loss; :meth:`close` ends the bar and returns
    :meth:`summary`. The bar is chapter 4's :func:`slm_course.train.progress.progress_bar` with a summary:
    in a notebook the finished line ("SFT: 600/600 steps in 41 s, loss 2.91 → 0.52") replaces the widget,
    so it is what a stored notebook keeps; elsewhere tqdm's text bar, then the line printed.
    ``enabled=False`` shows nothing and ``track`` returns ``loss_fn`` itself.
    """

    def __init__(self, steps: int, label: str = "training", *, enabled: bool = True):
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 0:
            raise ValueError(f"steps must be a non-negative int, got {steps!r}.")
        self.steps, self.label, self.enabled = steps, label, enabled
        self.losses: list[float] = []
        self._start = time.perf_counter()
        self._final: str | None = None
        self._stack = contextlib.ExitStack()
        self._bar = None
        if enabled:
            self._bar = self._stack.enter_context(
                progress_bar(steps, desc=label, unit="step", summary=lambda: self._final or self.summary()))

    def track(self, loss_fn: Callable[[nn.Module, tuple], torch.Tensor]) -> Callable[[nn.Module, tuple], torch.Tensor]:
        """``loss_fn`` that also advances the bar by one step and records the loss (its value is unchanged)."""
        if not self.enabled:
            return loss_fn

        def tracked(model: nn.Module, batch: tuple) -> torch.Tensor:
            loss = loss_fn(model, batch)
            self.losses.append(float(loss.detach()))
            self._bar.set_postfix(loss=f"{self.losses[-1]:.3f}", refresh=False)
            self._bar.update(1)
            return loss

        return tracked

    def summary(self) -> str:
        """``"<label>: <done>/<steps> steps in <s> s, loss <first> → <last>"`` (the loss part once a step ran)."""
        text = f"{self.label}: {len(self.losses)}/{self.steps} steps in {time.perf_counter() - self._start:.0f} s"
        if self.losses:
            text += f", loss {self.losses[0]:.3f} → {self.losses[-1]:.3f}"
        return text

    def close(self) -> str:
        """End the bar and leave :meth:`summary` in its place (nothing when disabled); returns the summary."""
        text = self._final = self.summary()
        self._stack.close()
        return text


def encode_examples(examples: Sequence[Example], tokenizer, formatter: Callable[[Example], str] = format_chat,
                    eos_id: int | None = None) -> list[tuple[list[int], list[int]]]:
    """``(prompt_ids, answer_ids)`` of every example (see :func:`instruct.encode_example`)."""
    return [encode_example(e, tokenizer, formatter, eos_id) for e in examples]


def finetune(model: nn.Module, pairs: Sequence[tuple[list[int], list[int]]], *, steps: int, pad_id: int,
             batch_size: int = 16, lr: float = 1e-3, warmup_steps: int = 10, max_length: int = 128,
             weight_decay: float = 0.0, seed: int = 0, progress: bool = False, label: str = "SFT",
             loss_fn: Callable[[nn.Module, tuple], torch.Tensor] = sft_loss) -> History:
    """Train ``model`` in place for ``steps`` optimizer steps on ``batch_size`` pairs each; return the history.

    Only parameters with ``requires_grad`` learn (so a LoRA-wrapped model trains its adapters).
    ``loss_fn`` defaults to the SFT loss (answer tokens only). ``progress`` shows a live bar named
    ``label`` that ends as a one-line summary (:class:`StepProgress`); it changes no number of the run.
    """
    config = TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(warmup_steps, steps), weight_decay=weight_decay,
                         seed=seed, progress=False)
    bar = StepProgress(steps, label, enabled=progress)
    try:
        return train(model, sft_batches(pairs, batch_size, pad_id, max_length, seed=seed), config,
                     loss_fn=bar.track(loss_fn))
    finally:
        bar.close()


def dpo_batches(pairs: Sequence[PreferencePair], tokenizer, batch_size: int, pad_id: int, max_length: int, *,
                formatter: Callable[[Example], str] = format_chat, eos_id: int | None = None,
                seed: int = 0) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """``batches(i)``: :func:`dpo.dpo_batch` of ``batch_size`` pairs from a seeded shuffle
    (:func:`instruct.shuffled_batches`), a deterministic function of ``i``."""
    indices = shuffled_batches(len(pairs), batch_size, seed, what="pairs")

    def batches(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        chosen = [pairs[j] for j in indices(i)]
        return dpo_batch(chosen, tokenizer, pad_id, max_length, formatter=formatter, eos_id=eos_id)

    return batches


def preference_tune(model: nn.Module, pairs: Sequence[PreferencePair], tokenizer, *, steps: int, pad_id: int,
                    beta: float = 0.1, batch_size: int = 8, lr: float = 1e-4, warmup_steps: int = 5,
                    max_length: int = 128, formatter: Callable[[Example], str] = format_chat,
                    eos_id: int | None = None, seed: int = 0, progress: bool = False, label: str = "DPO"
                    ) -> tuple[History, DPOLog, nn.Module]:
    """DPO-train ``model`` in place against a frozen copy of itself taken now (the reference).

    Returns ``(history, log, reference)``: ``log`` holds each step's loss, mean reward margin,
    preference accuracy and mean chosen / rejected rewards (:class:`dpo.DPOLog`). ``progress`` shows a
    live bar named ``label`` that ends as a one-line summary (:class:`StepProgress`).
    """
    reference = copy.deepcopy(model)
    log = DPOLog()
    config = TrainConfig(max_steps=steps, lr=lr, warmup_steps=min(warmup_steps, steps), weight_decay=0.0,
                         seed=seed, progress=False)
    batches = dpo_batches(pairs, tokenizer, batch_size, pad_id, max_length, formatter=formatter, eos_id=eos_id,
                          seed=seed)
    bar = StepProgress(steps, label, enabled=progress)
    try:
        history = train(model, batches, config, loss_fn=bar.track(dpo_loss_fn(reference, beta, log)))
    finally:
        bar.close()
    return history, log, reference


def score_models(models: Mapping[str, nn.Module], tokenizer, examples: Sequence[Example],
                 formatter: Callable[[Example], str] = format_chat, *, eos_id: int | None = None,
                 max_new_tokens: int = 48) -> dict[str, dict[str, float]]:
    """``{model name: {family: exact-match share, …, "all": share}}`` of greedy replies to ``examples``."""
    return {name: exact_match(examples, answer(model, tokenizer, examples, formatter, eos_id=eos_id,
                                               max_new_tokens=max_new_tokens))
            for name, model in models.items()}


def format_scores(scores: Mapping[str, Mapping[str, float]], families: Sequence[str] = FAMILIES) -> str:
    """A plain-text table: one row per model, one column per family and ``all`` (shares at 2 decimals)."""
    columns = [*families, "all"]
    width = max(12, *(len(name) for name in scores))
    lines = [f"{'model':<{width}}" + "".join(f"{c:>12}" for c in columns)]
    for name, row in scores.items():
        lines.append(f"{name:<{width}}" + "".join(f"{row[c]:>12.2f}" for c in columns))
    return "\n".join(lines)
