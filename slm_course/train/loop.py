"""The training loop every chapter uses (chapter 4 teaches it): AdamW, warmup + cosine, clipping, accumulation.

``train(model, batches, config)`` runs ``config.max_steps`` optimizer steps. Step ``s`` reads the
micro-batches ``batches(s * N) … batches(s * N + N - 1)`` (``N = grad_accum_steps``), so the data
order is a function of the step alone and a resumed run sees exactly the data an uninterrupted one
would. It returns a :class:`History` to plot.

Four mistakes people keep reporting in well-known loops are ruled out here (each has a test):
the learning rate is never 0 at step 0, every step is clipped (the warmup boundary included), the
loss of each micro-batch is scaled by 1/N so N micro-batches give one big batch's gradient, and a
``torch.compile``-d model's ``_orig_mod.`` prefixes never reach a checkpoint.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TrainConfig:
    """What one training run does. Budgets are in optimizer steps (never seconds), so runs are deterministic."""

    max_steps: int                       # optimizer steps in the whole run
    lr: float = 1e-3                     # peak learning rate, reached at the end of warmup
    min_lr: float | None = None          # the cosine's floor at the last step (None → lr / 10)
    warmup_steps: int = 0                # linear warmup: step 0 already gets lr / warmup_steps, never 0
    weight_decay: float = 0.1            # AdamW decay, on weight matrices only (see param_groups)
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float | None = 1.0        # global-norm clipping on every step (None = off)
    grad_accum_steps: int = 1            # micro-batches per optimizer step, each loss scaled by 1/N
    eval_every: int = 0                  # call eval_fn every this many steps and at the end (0 = only at the end)
    seed: int = 0                        # seeds dropout and anything else random inside the loop
    progress: bool = True                # show a tqdm.auto progress bar
    checkpoint_dir: str | None = None    # folder for checkpoints; a run finding one there resumes from it
    checkpoint_every: int = 0            # save every this many steps (0 = only at the end, when checkpoint_dir is set)

    def __post_init__(self) -> None:
        if not isinstance(self.max_steps, int) or isinstance(self.max_steps, bool) or self.max_steps < 1:
            raise ValueError(f"max_steps must be a whole number ≥ 1, got {self.max_steps!r}.")
        for name in ("warmup_steps", "eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be a whole number ≥ 0, got {value!r}.")
        if not isinstance(self.grad_accum_steps, int) or self.grad_accum_steps < 1:
            raise ValueError(f"grad_accum_steps must be a whole number ≥ 1, got {self.grad_accum_steps!r}.")
        if self.warmup_steps > self.max_steps:
            raise ValueError(
                f"warmup_steps ({self.warmup_steps}) must not exceed max_steps ({self.max_steps}): "
                "the warmup is part of the run."
            )
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr!r}.")
        if self.min_lr is None:
            self.min_lr = self.lr / 10
        if not 0 <= self.min_lr <= self.lr:
            raise ValueError(f"min_lr must lie between 0 and lr ({self.lr}), got {self.min_lr!r}.")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None (off), got {self.grad_clip!r}.")
        self.betas = tuple(float(b) for b in self.betas)
        if self.checkpoint_dir is not None:
            self.checkpoint_dir = str(self.checkpoint_dir)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class History:
    """What a run did, one entry per optimizer step; ``evals`` holds one dict per evaluation (with "step")."""

    step: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)   # mean over the step's micro-batches (nats/token)
    lr: list[float] = field(default_factory=list)
    grad_norm: list[float] = field(default_factory=list)    # global norm before clipping
    evals: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict[str, list]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, list]) -> "History":
        return cls(**{k: list(v) for k, v in data.items()})


def lm_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean next-token cross-entropy (nats per token) of ``batch = (inputs, targets)``, both ``(B, T)`` ids."""
    inputs, targets = batch
    logits = model(inputs)  # (B, T, vocab)
    return F.cross_entropy(logits.flatten(0, 1), targets.flatten())


def lr_at(step: int, config: TrainConfig) -> float:
    """Learning rate of optimizer step ``step`` (0-based): linear warmup, then cosine down to ``min_lr``.

    Warmup gives step ``s < warmup`` the rate ``lr · (s + 1) / warmup``: step 0 already learns, and
    the last warmup step reaches ``lr``. The cosine then runs from ``lr`` (step ``warmup``) to
    ``min_lr`` (the last step, ``max_steps - 1``).
    """
    warmup, peak, floor = config.warmup_steps, config.lr, config.min_lr
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_steps = config.max_steps - 1 - warmup
    if decay_steps <= 0:
        return peak
    progress = min(1.0, (step - warmup) / decay_steps)
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (peak - floor)


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """AdamW groups: weight decay on the weight matrices of linear layers only.

    Decay pulls weights toward 0. For a matrix that only limits how large its outputs can grow,
    which regularizes. A norm's gain and a bias are one number per feature that sets a scale or an
    offset: pulling them toward 0 fights their job (a LayerNorm gain of 0 silences the feature) and
    regularizes nothing. An embedding row is updated only when its token appears, but decay shrinks
    every row on every step, so rare tokens would fade for lack of use. Only parameters with
    ``requires_grad`` are included, each once (a tied output layer is the embedding, so undecayed).
    """
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, nn.Embedding)}
    seen: set[int] = set()
    decay, no_decay = [], []
    for param in model.parameters():  # parameters() yields a shared tensor once
        if not param.requires_grad or id(param) in seen:
            continue
        seen.add(id(param))
        (decay if param.dim() >= 2 and id(param) not in embeddings else no_decay).append(param)
    if not decay and not no_decay:
        raise ValueError("The model has no parameter with requires_grad=True: there is nothing to train.")
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW over :func:`param_groups`; its rate is set per step by :func:`lr_at`."""
    return torch.optim.AdamW(param_groups(model, config.weight_decay), lr=lr_at(0, config), betas=config.betas)


def clip_grad_norm(parameters: list[torch.Tensor], max_norm: float | None) -> float:
    """Global L2 norm of the gradients; if it exceeds ``max_norm``, scale all of them so it equals ``max_norm``.

    Returns the norm before clipping (what a history records).
    """
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return 0.0
    # clip_grad_norm_ with an infinite bound measures without changing anything.
    return float(torch.nn.utils.clip_grad_norm_(with_grad, math.inf if max_norm is None else max_norm))


def to_device(batch: Any, device: torch.device) -> Any:
    """Move every tensor in ``batch`` (a tensor, tuple, list or dict of them) to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, (tuple, list)):
        return type(batch)(to_device(b, device) for b in batch)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _is_ddp(model: nn.Module) -> bool:
    return isinstance(model, torch.nn.parallel.DistributedDataParallel)


def _rank() -> int:
    dist = torch.distributed
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def train(
    model: nn.Module,
    batches: Callable[[int], Any],
    config: TrainConfig,
    *,
    loss_fn: Callable[[nn.Module, Any], torch.Tensor] = lm_loss,
    eval_fn: Callable[[nn.Module], dict[str, float]] | None = None,
) -> History:
    """Train ``model`` in place for ``config.max_steps`` steps; return the :class:`History`.

    ``batches(i)`` returns micro-batch ``i`` (a deterministic function of ``i``); ``loss_fn(model, batch)``
    returns a scalar loss tensor; ``eval_fn(model)`` returns a dict of floats, called in eval mode
    without gradients. With ``config.checkpoint_dir`` set, a checkpoint found there is resumed from
    and new ones are written every ``checkpoint_every`` steps and at the end. The model may be
    wrapped in ``DistributedDataParallel`` (see :mod:`slm_course.train.ddp`) or ``torch.compile``.
    """
    from slm_course.device import set_seed
    from slm_course.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
    from slm_course.train.progress import progress_bar

    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}.")
    if not callable(batches):
        raise TypeError("batches must be a function: batches(i) returns micro-batch number i.")
    params = [p for g in param_groups(model, config.weight_decay) for p in g["params"]]
    optimizer = make_optimizer(model, config)
    history = History()
    set_seed(config.seed)
    start = 0
    if config.checkpoint_dir and (found := latest_checkpoint(config.checkpoint_dir)) is not None:
        start, history = load_checkpoint(found, model, optimizer, config)
    rank, N = _rank(), config.grad_accum_steps
    bar_on = config.progress and rank == 0
    device = next(iter(params)).device
    model.train()
    with progress_bar(config.max_steps, desc="training", initial=start, enabled=bar_on) as bar:
        for step in range(start, config.max_steps):
            lr = lr_at(step, config)
            for group in optimizer.param_groups:
                group["lr"] = lr
            total = torch.zeros((), device=device)
            for micro in range(N):
                batch = to_device(batches(step * N + micro), device)
                # DDP averages gradients across processes at each backward; skip that until the last micro-batch.
                sync = model.no_sync() if _is_ddp(model) and micro < N - 1 else contextlib.nullcontext()
                with sync:
                    loss = loss_fn(model, batch)
                    (loss / N).backward()  # N micro-batches of mean losses → the mean over one big batch
                total += loss.detach()
            norm = clip_grad_norm(params, config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            mean_loss = total / N
            if _is_ddp(model):
                torch.distributed.all_reduce(mean_loss)
                mean_loss /= torch.distributed.get_world_size()
            history.step.append(step)
            history.train_loss.append(float(mean_loss))
            history.lr.append(lr)
            history.grad_norm.append(norm)
            last = step == config.max_steps - 1
            if eval_fn is not None and (last or (config.eval_every and (step + 1) % config.eval_every == 0)):
                history.evals.append({"step": step, **evaluate(model, eval_fn)})
            if config.checkpoint_dir and (last or (config.checkpoint_every and (step + 1) % config.checkpoint_every == 0)):
                if rank == 0:
                    save_checkpoint(config.checkpoint_dir, model, optimizer, config, step + 1, history)
            bar.set_postfix(loss=f"{history.train_loss[-1]:.3f}", lr=f"{lr:.2e}", refresh=False)
            bar.update(1)
    model.eval()
    return history


def evaluate(model: nn.Module, eval_fn: Callable[[nn.Module], dict[str, float]]) -> dict[str, float]:
    """``eval_fn(model)`` in eval mode without gradients, the model put back in training mode after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            result = eval_fn(model)
    finally:
        model.train(was_training)
    if not isinstance(result, dict):
        raise TypeError(f"eval_fn must return a dict of floats, got {type(result).__name__}.")
    return {k: float(v) for k, v in result.items()}
