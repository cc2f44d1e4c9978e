"""Checkpoints of a training run (chapter 4): a folder per save, written beside and renamed into place.

``checkpoint_dir/step-000120/`` holds ``model.safetensors`` and ``optimizer.safetensors`` (tensors)
and ``state.json`` (the step, the data position, the schedule, the random-generator states, the
history, the configs and a sha256 of each tensor file). ``checkpoint_dir/latest`` names the newest
folder and is itself replaced atomically, after that folder is complete: a run killed at any moment
leaves the previous checkpoint intact. Loading refuses a checkpoint from another model or run
config, or a damaged file, with a sentence naming what differs.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch
from torch import nn

from slm_course.paths import atomic_write_text

FORMAT = "slm-course-checkpoint-1"
# TrainConfig fields that change what a resumed run computes; the others (progress bar, where and how
# often to save or evaluate) may differ between the interrupted run and its resumption.
RUN_FIELDS = ("max_steps", "lr", "min_lr", "warmup_steps", "weight_decay", "betas", "grad_clip",
              "grad_accum_steps", "seed")


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside ``DistributedDataParallel`` and/or ``torch.compile`` wrappers."""
    while True:
        if isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod  # torch.compile's OptimizedModule: its keys carry "_orig_mod."
        else:
            return model


def _clean(name: str) -> str:
    return name.replace("_orig_mod.", "").removeprefix("module.")


def model_tensors(model: nn.Module) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """``(tensors, aliases)``: the state dict with wrapper prefixes gone and each shared tensor once
    (a tied output layer becomes an alias of the embedding)."""
    tensors, aliases, first = {}, {}, {}
    for name, value in unwrap(model).state_dict().items():
        name = _clean(name)
        key = (value.data_ptr(), tuple(value.shape), value.dtype) if value.numel() else None
        if key is not None and key in first:
            aliases[name] = first[key]
            continue
        if key is not None:
            first[key] = name
        tensors[name] = value.detach().cpu().contiguous()
    return tensors, aliases


def _param_names(model: nn.Module) -> dict[int, str]:
    return {id(p): _clean(n) for n, p in unwrap(model).named_parameters()}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _rng_state() -> dict[str, Any]:
    import numpy as np

    version, internal, gauss = random.getstate()
    np_state = np.random.get_state()
    state = {"python": [version, list(internal), gauss], "torch": torch.get_rng_state().tolist(),
             "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np

    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def _model_config(model: nn.Module) -> dict[str, Any] | None:
    config = getattr(unwrap(model), "config", None)
    return config.to_dict() if hasattr(config, "to_dict") else None


def save_checkpoint(checkpoint_dir: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer,
                    config, step: int, history) -> Path:
    """Write the state after ``step`` optimizer steps as ``checkpoint_dir/step-NNNNNN``; return that folder."""
    from safetensors.torch import save_file

    root = Path(checkpoint_dir)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:06d}"
    staging = root / f".{name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir()
    try:
        tensors, aliases = model_tensors(model)
        save_file(tensors, str(staging / "model.safetensors"))
        names = _param_names(model)
        opt_tensors, groups = {}, []
        for group in optimizer.param_groups:
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": [names[id(p)] for p in group["params"]]})
            for p in group["params"]:
                for key, value in optimizer.state.get(p, {}).items():
                    opt_tensors[f"{names[id(p)]}::{key}"] = torch.as_tensor(value).detach().cpu().contiguous()
        save_file(opt_tensors, str(staging / "optimizer.safetensors"))
        state = {
            "format": FORMAT, "step": step, "data_position": step * config.grad_accum_steps,
            "next_lr": None, "run_config": {k: getattr(config, k) for k in RUN_FIELDS},
            "model_config": _model_config(model), "aliases": aliases,
            "shapes": {k: list(v.shape) for k, v in tensors.items()}, "optimizer_groups": groups,
            "rng": _rng_state(), "history": history.to_dict(),
            "sha256": {f: _sha256(staging / f) for f in ("model.safetensors", "optimizer.safetensors")},
        }
        if step < config.max_steps:
            from slm_course.train.loop import lr_at

            state["next_lr"] = lr_at(step, config)
        atomic_write_text(staging / "state.json", json.dumps(state, indent=1))
        target = root / name
        if target.exists():  # the same step saved again: move the old one aside first
            shutil.rmtree(target)
        os.replace(staging, target)
        atomic_write_text(root / "latest", name)  # the switch to the new checkpoint is this one rename
        for old in root.glob("step-*"):
            if old.name != name:
                shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root / name


def latest_checkpoint(checkpoint_dir: str | os.PathLike) -> Path | None:
    """The folder ``checkpoint_dir/latest`` names, or None when no checkpoint was completed there."""
    pointer = Path(checkpoint_dir) / "latest"
    if not pointer.is_file():
        return None
    folder = Path(checkpoint_dir) / pointer.read_text().strip()
    if not folder.is_dir():
        raise ValueError(f"{pointer} names {folder.name}, which does not exist: the checkpoint folder is damaged; "
                         "delete it to start over.")
    return folder


def read_state(folder: str | os.PathLike) -> dict[str, Any]:
    """``state.json`` of a checkpoint folder, after checking that its tensor files are intact."""
    folder = Path(folder)
    try:
        state = json.loads((folder / "state.json").read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"The checkpoint {folder} is damaged: state.json cannot be read ({error}). "
                         "Delete the folder to start over.") from None
    if state.get("format") != FORMAT:
        raise ValueError(f"{folder} is not a checkpoint of this course (format {state.get('format')!r}, "
                         f"expected {FORMAT!r}).")
    for file, digest in state["sha256"].items():
        if not (folder / file).is_file() or _sha256(folder / file) != digest:
            raise ValueError(f"The checkpoint {folder} is damaged: {file} is missing or does not match the "
                             "checksum saved with it (a truncated or altered file). Delete the folder to start over.")
    return state


def _describe(name: str, saved: Any, current: Any) -> str:
    return f"{name} is {saved!r} in the checkpoint but {current!r} here"


def load_checkpoint(folder: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, config):
    """Restore model, optimizer and random state from ``folder``; return ``(step, history)``.

    Raises ``ValueError`` naming the difference when the checkpoint belongs to another model or run.
    """
    from safetensors.torch import load_file

    from slm_course.train.loop import History

    folder = Path(folder)
    state = read_state(folder)
    problems = []
    saved_model, current_model = state["model_config"], _model_config(model)
    if saved_model is not None and current_model is not None:
        problems += [_describe(f"model config field {k}", saved_model.get(k), current_model.get(k))
                     for k in sorted(set(saved_model) | set(current_model)) if saved_model.get(k) != current_model.get(k)]
    for key in RUN_FIELDS:
        saved, current = state["run_config"][key], getattr(config, key)
        if (list(saved) if isinstance(saved, (list, tuple)) else saved) != (list(current) if isinstance(current, (list, tuple)) else current):
            problems.append(_describe(f"TrainConfig.{key}", saved, current))
    tensors, _ = model_tensors(model)
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    if not problems and shapes != state["shapes"]:
        missing = sorted(set(state["shapes"]) ^ set(shapes)) or sorted(k for k in shapes if shapes[k] != state["shapes"].get(k))
        problems.append(f"the model's tensors differ from the checkpoint's (first: {missing[0]})")
    if problems:
        raise ValueError(f"The checkpoint {folder} belongs to another run: " + "; ".join(problems[:3]) +
                         ". Use a new checkpoint_dir for a new run, or the config the checkpoint was made with.")
    weights = load_file(str(folder / "model.safetensors"))
    for alias, original in state["aliases"].items():
        weights[alias] = weights[original]
    unwrap(model).load_state_dict(weights, strict=True)
    opt = load_file(str(folder / "optimizer.safetensors"))
    by_name = {n: p for n, p in unwrap(model).named_parameters()}
    for group, saved in zip(optimizer.param_groups, state["optimizer_groups"]):
        group.update({k: tuple(v) if k == "betas" else v for k, v in saved.items() if k != "params"})
        for name in saved["params"]:
            param = by_name[name]
            entries = {k.split("::", 1)[1]: v for k, v in opt.items() if k.split("::", 1)[0] == name}
            if entries:
                optimizer.state[param] = {k: v.to(param.device) if k != "step" else v for k, v in entries.items()}
    _set_rng_state(state["rng"])
    return state["step"], History.from_dict(state["history"])
