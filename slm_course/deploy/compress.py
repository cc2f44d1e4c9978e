"""Compression beyond quantization (chapter 10): pruning, low-rank factorisation, distillation.

Each returns a smaller (or sparser) model to be judged like the quantized ones, by size and by
perplexity (``slm_course.quantize.perplexity``):

- :func:`magnitude_prune` *unstructured*: zero the smallest-magnitude weights of each linear layer.
  Same shapes: it only saves memory with a sparse format (or sparse hardware), so we count nonzeros.
- :func:`prune_mlp_units` *structured*: remove whole hidden units of every feed-forward (the rows of
  ``fc``/``gate``/``up`` and the columns of ``proj``/``down`` with the smallest norm): smaller dense layers.
- :func:`low_rank` replaces a linear layer ``W (out, in)`` by two, ``B (out, r) · A (r, in)``, from the
  truncated SVD ``W ≈ U_r Σ_r V_rᵀ``: ``r·(out + in)`` weights instead of ``out·in``.
- :func:`distill` trains a smaller *student* to match a *teacher*'s next-token distributions
  (Hinton et al.'s soft targets): ``KL(teacher_T ‖ student_T) · T²`` at temperature ``T``.
"""
from __future__ import annotations

import copy
from typing import Callable, Iterable

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.model.surgery import find_linears, replace_linears


def count_nonzero(model: nn.Module) -> int:
    """Nonzero entries over all distinct parameters of ``model``."""
    seen, total = set(), 0
    for p in model.parameters():
        if p.data_ptr() not in seen:
            seen.add(p.data_ptr())
            total += int((p != 0).sum())
    return total


def magnitude_prune(model: nn.Module, sparsity: float, targets: Iterable[str] | None = None,
                    skip: Iterable[str] = ("lm_head",)) -> nn.Module:
    """A copy of ``model`` with the ``sparsity`` fraction (0–1) of smallest-|w| weights of each selected
    linear layer set to zero (the tied output layer/embedding is skipped by default)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity is the fraction of weights removed, in [0, 1); got {sparsity!r}.")
    model = copy.deepcopy(model)
    for name in find_linears(model, targets, skip=skip):
        w = model.get_submodule(name).weight
        k = int(sparsity * w.numel())
        if k:
            threshold = w.detach().abs().reshape(-1).kthvalue(k).values
            with torch.no_grad():
                w.mul_((w.abs() > threshold).to(w.dtype))
    return model


def _shrink(linear: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    weight = linear.weight.detach().index_select(dim, keep)
    out = nn.Linear(weight.shape[1], weight.shape[0], bias=linear.bias is not None)
    with torch.no_grad():
        out.weight.copy_(weight)
        if linear.bias is not None:
            out.bias.copy_(linear.bias if dim == 1 else linear.bias[keep])
    return out


def prune_mlp_units(model: nn.Module, fraction: float) -> nn.Module:
    """A copy of ``model`` with ``fraction`` of every feed-forward's hidden units removed (structured):
    the units whose input rows × output column have the smallest norm go; the layers get narrower."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"fraction is the share of hidden units removed, in [0, 1); got {fraction!r}.")
    model = copy.deepcopy(model)
    for name, mlp in model.named_modules():
        inputs = [n for n in ("fc", "gate", "up") if isinstance(getattr(mlp, n, None), nn.Linear)]
        output = next((n for n in ("proj", "down") if isinstance(getattr(mlp, n, None), nn.Linear)), None)
        if not inputs or output is None:
            continue
        d_ff = getattr(mlp, inputs[0]).out_features
        score = getattr(mlp, output).weight.detach().norm(dim=0)        # (d_ff,)
        for n in inputs:
            score = score * getattr(mlp, n).weight.detach().norm(dim=1)
        keep = score.argsort(descending=True)[: d_ff - int(fraction * d_ff)].sort().values
        for n in inputs:
            setattr(mlp, n, _shrink(getattr(mlp, n), keep, 0))
        setattr(mlp, output, _shrink(getattr(mlp, output), keep, 1))
    return model


def low_rank_factors(weight: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, A)`` with ``B (out, rank)``, ``A (rank, in)`` and ``B @ A`` the best rank-``rank``
    approximation of ``weight`` (truncated SVD, √Σ given to each factor)."""
    if not 1 <= rank <= min(weight.shape):
        raise ValueError(f"rank must be between 1 and {min(weight.shape)} for a {tuple(weight.shape)} matrix, got {rank}.")
    U, S, Vh = torch.linalg.svd(weight.detach().float(), full_matrices=False)
    root = S[:rank].sqrt()
    return U[:, :rank] * root, root[:, None] * Vh[:rank]


def low_rank(model: nn.Module, rank_fraction: float, targets: Iterable[str] | None = None,
             skip: Iterable[str] = ("lm_head",)) -> nn.Module:
    """A copy of ``model`` whose selected linear layers are factorised at rank
    ``max(1, round(rank_fraction · min(out, in)))`` into ``nn.Sequential(A, B)``."""
    model = copy.deepcopy(model)

    def make(name: str, linear: nn.Linear) -> nn.Module:
        rank = max(1, round(rank_fraction * min(linear.weight.shape)))
        B, A = low_rank_factors(linear.weight, rank)
        first = nn.Linear(linear.in_features, rank, bias=False)
        second = nn.Linear(rank, linear.out_features, bias=linear.bias is not None)
        with torch.no_grad():
            first.weight.copy_(A)
            second.weight.copy_(B)
            if linear.bias is not None:
                second.bias.copy_(linear.bias)
        return nn.Sequential(first, second)

    replace_linears(model, make, targets, skip=skip)
    return model


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float = 2.0) -> torch.Tensor:
    """``KL(softmax(teacher / T) ‖ softmax(student / T)) · T²``, averaged over positions; logits ``(..., vocab)``."""
    t = temperature
    s = F.log_softmax(student_logits.flatten(0, -2) / t, dim=-1)
    p = F.log_softmax(teacher_logits.flatten(0, -2) / t, dim=-1)
    return F.kl_div(s, p, log_target=True, reduction="batchmean") * t * t


def distill(teacher: nn.Module, student: nn.Module, batches: Callable[[int], torch.Tensor], steps: int, *,
            lr: float = 3e-3, temperature: float = 2.0, alpha: float = 0.5, seed: int = 0) -> list[float]:
    """Train ``student`` (in place) for ``steps`` on ``batches(i)`` → ids ``(B, T + 1)``: loss
    ``alpha · distillation_loss + (1 - alpha) · cross-entropy``. Returns the loss per step."""
    torch.manual_seed(seed)
    teacher.eval()
    student.train()
    optimizer = torch.optim.AdamW(student.parameters(), lr=lr, weight_decay=0.0)
    losses = []
    for i in range(steps):
        ids = batches(i)
        x, y = ids[:, :-1], ids[:, 1:]
        with torch.no_grad():
            teacher_logits = teacher(x)
        logits = student(x)
        hard = F.cross_entropy(logits.flatten(0, 1), y.flatten())
        loss = alpha * distillation_loss(logits, teacher_logits, temperature) + (1 - alpha) * hard
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    student.eval()
    return losses
