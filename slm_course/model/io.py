"""Saving and loading a model (chapter 5): a folder with ``config.json`` and ``model.safetensors``.

``save_model(model, folder)`` writes both files into a staging folder beside ``folder`` and renames it
into place, so a crash mid-save never leaves half a model where a good one was. ``load_model(folder)``
rebuilds the ``SLM`` from the config and loads the tensors only after checking every name and shape:
weights from another config, or a truncated file, raise a ``ValueError`` saying so, and no model is
returned half-loaded. A tied output layer is stored once (it *is* the embedding matrix).
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import torch

from slm_course.model.config import SLMConfig
from slm_course.model.slm import SLM

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
FORMAT = "slm-course-model/1"


def _tensors(model: SLM) -> dict[str, torch.Tensor]:
    state = {name: t.detach().contiguous().cpu() for name, t in model.state_dict().items()}
    if model.config.tie_embeddings:
        state.pop("lm_head.weight", None)  # the same matrix as tok_emb.weight
    return state


def save_model(model: SLM, folder: str | os.PathLike) -> Path:
    """Write ``model`` (its config and tensors) to ``folder``, replacing what was there atomically."""
    from safetensors.torch import save_file

    if not isinstance(model, SLM):
        raise TypeError(f"save_model expects an SLM, got {type(model).__name__}.")
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    old = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.old"
    try:
        save_file(_tensors(model), str(staging / WEIGHTS_FILE), metadata={"format": FORMAT})
        size = (staging / WEIGHTS_FILE).stat().st_size
        (staging / CONFIG_FILE).write_text(
            json.dumps({"format": FORMAT, "weights_bytes": size, "config": model.config.to_dict()}, indent=2))
        if folder.exists():
            os.replace(folder, old)  # the old folder steps aside only once the new one is complete
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return folder


def load_model(folder: str | os.PathLike, device: torch.device | str = "cpu") -> SLM:
    """The ``SLM`` saved in ``folder`` by :func:`save_model`, in eval mode on ``device``."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    folder = Path(folder)
    config_path, weights_path = folder / CONFIG_FILE, folder / WEIGHTS_FILE
    for path in (config_path, weights_path):
        if not path.is_file():
            raise ValueError(f"{path} is missing: is {folder} a folder written by save_model(model, folder)?")
    try:
        saved = json.loads(config_path.read_text())
        config = SLMConfig.from_dict(saved["config"])
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise ValueError(f"{config_path} is not a config written by save_model ({error}).") from error
    size = weights_path.stat().st_size
    if size != saved.get("weights_bytes", size):
        raise ValueError(
            f"{weights_path} has {size} bytes but {saved['weights_bytes']} were written: the file is truncated "
            "or damaged; save the model again."
        )
    try:
        tensors = load_file(str(weights_path))
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights_path} cannot be read ({error}): the file is truncated or damaged.") from error
    model = SLM(config)
    expected = _tensors(model)
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    wrong = [f"{n}: file {tuple(tensors[n].shape)}, config {tuple(expected[n].shape)}"
             for n in sorted(set(expected) & set(tensors)) if tensors[n].shape != expected[n].shape]
    if missing or unexpected or wrong:
        parts = ([f"missing {missing[:5]}"] if missing else []) + ([f"unexpected {unexpected[:5]}"] if unexpected else []) \
            + ([f"wrong shapes {wrong[:5]}"] if wrong else [])
        raise ValueError(
            f"the weights in {weights_path} do not fit the config in {config_path} ({config.name!r}): "
            + "; ".join(parts) + ". Were they saved from another model?"
        )
    model.load_state_dict(tensors, strict=False)  # only lm_head.weight (tied) is absent, and it is shared
    return model.to(device).eval()
