"""Preference tuning with DPO, Direct Preference Optimization (chapter 8).

RLHF trains a reward model on human preference pairs and then optimizes the policy against it
with PPO, a KL penalty keeping it near a reference model. DPO (Rafailov et al., 2023) shows the
same objective has a closed form: with a frozen reference π_ref and sequence log-probabilities,

    loss = -log σ(β · [(log π(y_w|x) - log π_ref(y_w|x)) - (log π(y_l|x) - log π_ref(y_l|x))])

for a chosen answer y_w and a rejected one y_l. β · (log π - log π_ref) is the *implicit reward*;
the reward margin is chosen minus rejected, and the preference accuracy is the share of pairs with
a positive margin. No reward model, no sampling during training.

Pairs come from the chapter's own generators (:mod:`slm_course.finetune.instruct`): chosen is
the correct answer, rejected a plausible wrong one (an off-by-one sum, the list not reversed,
JSON with a swapped value, the story's other fact).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from slm_course.device import model_device
from slm_course.finetune.instruct import (
    COLOURS, FAMILIES, GENERATORS, IGNORE_INDEX, NAMES, TOWNS, Example, collate, format_alpaca,
)
from slm_course.synthetic import ANIMALS


@dataclass(frozen=True)
class PreferencePair:
    """A prompt (an :class:`Example`, whose ``output`` is the correct answer) with a chosen and a rejected reply."""

    example: Example
    chosen: str
    rejected: str


def plausible_wrong(example: Example, rng: random.Random) -> str:
    """A wrong answer a weak model might give to ``example`` (never equal to the right one)."""
    out, fam = example.output, example.family
    if fam == "arithmetic":
        wrong = str(int(out) + rng.choice((-2, -1, 1, 2)))
        return wrong if int(wrong) >= 0 else str(int(out) + 1)
    if fam == "reverse":
        items = out.split(", ")
        if rng.random() < 0.5:
            return ", ".join(reversed(items))  # the list as given: not reversed at all
        return ", ".join(items[1:] + items[:1])  # rotated instead of reversed
    if fam == "format":
        key, value = rng.choice([p.split('": "') for p in out[2:-2].split('", "')])
        pool = {"name": NAMES, "animal": ANIMALS, "colour": COLOURS, "town": TOWNS}[key]
        other = rng.choice([v for v in pool if v != value])
        return out.replace(f'"{key}": "{value}"', f'"{key}": "{other}"')
    if fam == "lookup":
        story = example.input.split("Story: ", 1)[1].split(" Question:")[0]
        candidates = [w for w in story.replace(",", "").replace(".", "").split() if w.islower() and w != out
                      and w not in ("is", "a", "who", "lives", "there", "called", "it", "living", "the", "by", "in",
                                    "on", "at", "of", "near", "top", "edge", "meet")]
        return rng.choice(candidates) if candidates else out + "s"
    raise ValueError(f"no wrong-answer rule for family {fam!r}; families: {list(FAMILIES)}.")


def generate_pairs(n: int, *, families: Sequence[str] = FAMILIES, seed: int = 0) -> list[PreferencePair]:
    """``n`` preference pairs cycling through ``families``, seeded like :func:`instruct.generate_examples`."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}.")
    rng = random.Random(seed)
    pairs = []
    for i in range(n):
        ex = GENERATORS[families[i % len(families)]](rng)
        pairs.append(PreferencePair(ex, ex.output, plausible_wrong(ex, rng)))
    return pairs


def dpo_batch(pairs: Sequence[PreferencePair], tokenizer, pad_id: int, max_length: int, *,
              formatter: Callable[[Example], str] = format_alpaca,
              eos_id: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``(inputs, labels)`` of ``2·len(pairs)`` rows: every chosen reply first, then every rejected one
    (the prompt masked with -100, as in :func:`instruct.collate`)."""
    end = [eos_id] if eos_id is not None else []
    prompts = [tokenizer.encode(formatter(p.example)) for p in pairs]
    rows = [(pr, tokenizer.encode(p.chosen) + end) for pr, p in zip(prompts, pairs)]
    rows += [(pr, tokenizer.encode(p.rejected) + end) for pr, p in zip(prompts, pairs)]
    return collate(rows, pad_id, max_length)


def sequence_logprobs(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log π(answer | prompt) per row ``(B,)``: the sum of the log-probabilities of every label that is not -100.

    ``inputs`` and ``labels`` move to the model's device (a no-op when they are there already)."""
    device = model_device(model)
    inputs, labels = inputs.to(device), labels.to(device)
    logp = F.log_softmax(model(inputs).float(), dim=-1)  # (B, T, vocab)
    mask = labels != IGNORE_INDEX
    picked = logp.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)  # (B, T)
    return (picked * mask).sum(dim=1)


@dataclass
class DPOOutput:
    """The DPO loss (mean over pairs) and, per pair ``(N,)``, the implicit rewards β·(log π − log π_ref)."""

    loss: torch.Tensor
    chosen_rewards: torch.Tensor
    rejected_rewards: torch.Tensor

    @property
    def margins(self) -> torch.Tensor:
        """Chosen reward minus rejected reward, per pair."""
        return self.chosen_rewards - self.rejected_rewards

    @property
    def accuracy(self) -> float:
        """Share of pairs whose chosen reward is above the rejected one (preference accuracy)."""
        return float((self.margins > 0).float().mean())


def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float = 0.1) -> DPOOutput:
    """The DPO loss from sequence log-probabilities, each ``(N,)`` (nats): see the module docstring."""
    if not isinstance(beta, (int, float)) or isinstance(beta, bool) or beta <= 0:
        raise ValueError(f"beta must be a positive number (typical 0.05-0.5), got {beta!r}.")
    shapes = {tuple(t.shape) for t in (policy_chosen, policy_rejected, reference_chosen, reference_rejected)}
    if len(shapes) != 1:
        raise ValueError(f"the four log-probability tensors must have one shape (N,), got {sorted(shapes)}.")
    chosen_logratio = policy_chosen - reference_chosen
    rejected_logratio = policy_rejected - reference_rejected
    loss = -F.logsigmoid(beta * (chosen_logratio - rejected_logratio)).mean()
    return DPOOutput(loss, beta * chosen_logratio.detach(), beta * rejected_logratio.detach())


@dataclass
class DPOLog:
    """What :func:`dpo_loss_fn` records at every step: loss, mean margin and preference accuracy."""

    loss: list[float] = field(default_factory=list)
    margin: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    chosen_reward: list[float] = field(default_factory=list)
    rejected_reward: list[float] = field(default_factory=list)


def dpo_loss_fn(reference: torch.nn.Module, beta: float = 0.1,
                log: DPOLog | None = None) -> Callable[[torch.nn.Module, tuple], torch.Tensor]:
    """A ``loss_fn(model, (inputs, labels))`` for :func:`slm_course.train.train` on :func:`dpo_batch`
    batches; ``reference`` is frozen (run without gradients); each call appends to ``log``."""
    for p in reference.parameters():
        p.requires_grad_(False)
    reference.eval()

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, labels = batch
        n = inputs.shape[0] // 2
        policy = sequence_logprobs(model, inputs, labels)
        with torch.no_grad():
            ref = sequence_logprobs(reference, inputs, labels)
        out = dpo_loss(policy[:n], policy[n:], ref[:n], ref[n:], beta)
        if log is not None:
            log.loss.append(float(out.loss.detach()))
            log.margin.append(float(out.margins.mean()))
            log.accuracy.append(out.accuracy)
            log.chosen_reward.append(float(out.chosen_rewards.mean()))
            log.rejected_reward.append(float(out.rejected_rewards.mean()))
        return out.loss

    return loss_fn


@torch.no_grad()
def preference_accuracy(model: torch.nn.Module, reference: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor],
                        beta: float = 0.1) -> DPOOutput:
    """DPO loss, rewards and accuracy of ``model`` against ``reference`` on one :func:`dpo_batch` (no gradients)."""
    inputs, labels = batch
    n = inputs.shape[0] // 2
    policy, ref = sequence_logprobs(model, inputs, labels), sequence_logprobs(reference, inputs, labels)
    return dpo_loss(policy[:n], policy[n:], ref[:n], ref[n:], beta)
