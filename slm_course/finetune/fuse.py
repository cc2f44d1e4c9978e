"""Knowledge fusion: distil several teachers' next-token distributions into one student (chapter 8).

Weight merging (:mod:`slm_course.finetune.merge`) needs models of one architecture finetuned from
one base. Knowledge fusion does not: run every teacher on the same training text, combine their
next-token distributions, and train one student to match the combination (with the usual
cross-entropy on the true next token beside it). Two ways to combine, per sequence, here:

- ``"average"``: the plain mean of the teachers' probabilities (a baseline);
- ``"min_ce"``: FuseLLM's MinCE, the distribution of the teacher whose cross-entropy on the true
  answer is lowest for that sequence (the teacher that knows this example best).

FuseLLM (Wan et al., 2024) fuses with MinCE or its alternative AvgCE, an average of the teachers'
distributions weighted by their cross-entropy scores (not implemented here). FuseChat (Wan et al., 2024)
fuses pairwise — each source model distilled, with the pivot model, into a target of the pivot's
architecture — and then merges those fused targets in parameter space. Both align tokens across the
teachers' different vocabularies first; teachers here share the student's vocabulary (the course BPE),
so that alignment is the part left out.
"""
from __future__ import annotations

from typing import Callable, Literal, Sequence

import torch
import torch.nn.functional as F

from slm_course.finetune.instruct import IGNORE_INDEX

Fusion = Literal["average", "min_ce"]


@torch.no_grad()
def fused_targets(teachers: Sequence[torch.nn.Module], inputs: torch.Tensor, labels: torch.Tensor,
                  method: Fusion = "average", temperature: float = 1.0) -> torch.Tensor:
    """The fused next-token probabilities ``(B, T, vocab)`` of ``teachers`` on ``inputs`` ``(B, T)``.

    ``labels`` ``(B, T)`` (-100 where not learned) choose the teacher per sequence for ``"min_ce"``:
    its mean cross-entropy over the labelled positions is lowest.
    """
    if not teachers:
        raise ValueError("give at least one teacher model.")
    if method not in ("average", "min_ce"):
        raise ValueError(f"unknown fusion method {method!r}: use 'average' or 'min_ce'.")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature!r}.")
    logits = []
    for teacher in teachers:
        teacher.eval()
        logits.append(teacher(inputs).float())
    vocab = {lg.shape[-1] for lg in logits}
    if len(vocab) != 1:
        raise ValueError(f"teachers have vocabularies of sizes {sorted(vocab)}: fusion here needs one shared "
                         "vocabulary (FuseLLM aligns different tokenizers first).")
    probs = torch.stack([F.softmax(lg / temperature, dim=-1) for lg in logits])  # (K, B, T, V)
    if method == "average":
        return probs.mean(dim=0)
    ce = torch.stack([sequence_cross_entropy(lg, labels) for lg in logits])  # (K, B)
    best = ce.argmin(dim=0)  # (B,)
    return probs[best, torch.arange(inputs.shape[0], device=best.device)]


def sequence_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats) of ``logits`` ``(B, T, vocab)`` over each row's labelled positions: ``(B,)``.

    ``labels`` ``(B, T)`` hold -100 where nothing is learned; MinCE picks, per row, the teacher for which
    this is lowest."""
    mask = (labels != IGNORE_INDEX).float()  # (B, T)
    ce = F.cross_entropy(logits.float().transpose(1, 2), labels, ignore_index=IGNORE_INDEX, reduction="none")
    return (ce * mask).sum(1) / mask.sum(1).clamp(min=1)


def distillation_loss(student_logits: torch.Tensor, targets: torch.Tensor, labels: torch.Tensor,
                      alpha: float = 0.5, temperature: float = 1.0) -> torch.Tensor:
    """``(1 − alpha) · CE(true next token) + alpha · CE(fused targets)``, both averaged over labelled positions.

    ``student_logits`` and ``targets`` ``(B, T, vocab)``; the soft term is −Σ q log p_student(·/T),
    which differs from KL(q ‖ p) only by q's entropy (a constant for the student).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 (only true tokens) and 1 (only the teachers), got {alpha!r}.")
    mask = labels != IGNORE_INDEX
    if not bool(mask.any()):
        raise ValueError("no labelled position in the batch: every label is -100.")
    hard = F.cross_entropy(student_logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)
    log_p = F.log_softmax(student_logits.float() / temperature, dim=-1)
    soft = -(targets * log_p).sum(-1)[mask].mean()
    return (1 - alpha) * hard + alpha * soft


def fusion_loss_fn(teachers: Sequence[torch.nn.Module], method: Fusion = "average", alpha: float = 0.5,
                   temperature: float = 1.0) -> Callable[[torch.nn.Module, tuple], torch.Tensor]:
    """A ``loss_fn(model, (inputs, labels))`` for :func:`slm_course.train.train`: the student learns the
    teachers' fused distribution (see :func:`distillation_loss`); teachers are frozen."""
    for teacher in teachers:
        for p in teacher.parameters():
            p.requires_grad_(False)

    def loss_fn(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        inputs, labels = batch
        targets = fused_targets(teachers, inputs, labels, method, temperature)
        return distillation_loss(model(inputs), targets, labels, alpha, temperature)

    return loss_fn
