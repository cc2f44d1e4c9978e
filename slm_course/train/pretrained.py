"""The course's own tiny pretrained model (built by chapter 4's loop; chapters 5 and 7–10 load it).

``tiny_pretrained()`` returns the ``tiny`` preset trained on the Shakespeare training works
(``slm_course.data.shakespeare_splits``) with the course BPE (``course_bpe()``), in eval mode. The
first call trains it deterministically (fixed seed, fixed step and token budget, micro-batch ``i``
a function of ``i`` alone) and caches it under ``$SLM_COURSE_HOME/models/tiny-pretrained/``;
``slm-course build-shared`` does that ahead of time. ``SLM_COURSE_PROFILE=full`` trains 8× longer
into ``tiny-pretrained-full/``.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from slm_course.model import SLM, SLMConfig
from slm_course.paths import atomic_write_text, cache_is_intact, models_dir, publish_folder

FORMAT = "slm-course-tiny-pretrained-1"


def recipe() -> dict[str, Any]:
    """The whole recipe; a cached model built from another recipe is rebuilt."""
    from slm_course.device import by_profile

    steps = by_profile(500, 4000)
    return {"format": FORMAT, "preset": "tiny", "seed": 0, "data_seed": 0, "max_steps": steps,
            "batch_size": 8, "context_length": 256, "tokens": steps * 8 * 256, "lr": 3e-3, "min_lr": 3e-4,
            "warmup_steps": 50, "weight_decay": 0.1, "betas": [0.9, 0.95], "grad_clip": 1.0}


def train_config(max_steps: int | None = None, *, warmup_steps: int | None = None, progress: bool = False):
    """The recipe's ``TrainConfig`` (optimizer, schedule, clipping, seed); ``max_steps`` and ``warmup_steps``
    default to the recipe's (a benchmark that trains for another budget passes its own)."""
    from slm_course.train.loop import TrainConfig

    r = recipe()
    return TrainConfig(max_steps=r["max_steps"] if max_steps is None else max_steps, lr=r["lr"], min_lr=r["min_lr"],
                       warmup_steps=r["warmup_steps"] if warmup_steps is None else warmup_steps,
                       weight_decay=r["weight_decay"], betas=tuple(r["betas"]), grad_clip=r["grad_clip"],
                       seed=r["seed"], progress=progress)


def tiny_pretrained_dir() -> Path:
    """Where the model is cached: ``models/tiny-pretrained`` (``-full`` under the full profile)."""
    from slm_course.device import profile

    return models_dir() / ("tiny-pretrained" if profile() == "fast" else "tiny-pretrained-full")


def _cached(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return meta if meta.get("recipe") == recipe() else None


def build_tiny_pretrained(progress: bool = False) -> Path:
    """Train and cache the model unless an intact copy from the same recipe is there; return the folder.

    A copy whose files fail the checksums recorded when it was built is rebuilt, with a one-line note."""
    from safetensors.torch import save_file

    from slm_course.data import shakespeare_splits
    from slm_course.device import set_seed
    from slm_course.tokenizers import course_bpe
    from slm_course.train.checkpoint import model_tensors
    from slm_course.train.loop import train
    from slm_course.train.metrics import bits_per_byte, token_batches

    target = tiny_pretrained_dir()
    if _cached(target) is not None and cache_is_intact(target, "tiny pretrained model"):
        return target
    r = recipe()
    tokenizer = course_bpe()
    train_text, val_text = shakespeare_splits()
    ids = tokenizer.encode(train_text)
    set_seed(r["seed"])
    model = SLM(SLMConfig.from_name(r["preset"]))
    config = train_config(progress=progress)
    history = train(model, token_batches(ids, r["batch_size"], r["context_length"], seed=r["data_seed"]), config)
    val_bpb = bits_per_byte(model, tokenizer, val_text)
    def fill(staging: Path) -> None:
        tensors, aliases = model_tensors(model)
        save_file(tensors, str(staging / "model.safetensors"))
        atomic_write_text(staging / "config.json", json.dumps(model.config.to_dict(), indent=1))
        atomic_write_text(staging / "meta.json", json.dumps({
            "recipe": r, "aliases": aliases, "val_bits_per_byte": val_bpb,
            "final_train_loss": sum(history.train_loss[-20:]) / len(history.train_loss[-20:]),
            "history": history.to_dict()}, indent=1))

    return publish_folder(target, fill, lambda folder: _cached(folder) is not None)


def tiny_pretrained_info() -> dict[str, Any]:
    """The cached model's recipe, validation bits per byte and training history (builds it if needed)."""
    return json.loads((build_tiny_pretrained() / "meta.json").read_text())


def tiny_pretrained() -> SLM:
    """The course's tiny pretrained model, in eval mode (trained and cached on first use)."""
    from safetensors.torch import load_file

    folder = build_tiny_pretrained()
    meta = json.loads((folder / "meta.json").read_text())
    model = SLM(SLMConfig.from_dict(json.loads((folder / "config.json").read_text())))
    weights = load_file(str(folder / "model.safetensors"))
    for alias, original in meta["aliases"].items():
        weights[alias] = weights[original]
    model.load_state_dict(weights, strict=True)
    return model.eval()
