"""Training (chapter 4): the loop every chapter uses, checkpoints, bits per byte, the tiny pretrained model.

>>> from slm_course.train import TrainConfig, train, History, lm_loss, bits_per_byte
"""
from __future__ import annotations

from slm_course.train.loop import (
    History,
    TrainConfig,
    clip_grad_norm,
    evaluate,
    lm_loss,
    lr_at,
    make_optimizer,
    param_groups,
    train,
)
from slm_course.train.metrics import bits_per_byte, token_batches

__all__ = ["TrainConfig", "train", "History", "lm_loss", "bits_per_byte", "lr_at", "param_groups",
           "make_optimizer", "clip_grad_norm", "evaluate", "token_batches"]
