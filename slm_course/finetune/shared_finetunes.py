"""Chapter 8's longer finetunes, built once per machine and cached (``slm-course build-shared`` builds them).

The chapter trains its supervised finetune live for 600 steps, enough to teach the tiny model the lookup
family but not the families whose answers are copied from the prompt. The same recipe run four times longer
teaches those too, and that takes a couple of minutes, more than the chapter's budget. So, as chapter 4 does
for the pretrained model, the longer runs are built deterministically ahead of time and cached under
``$SLM_COURSE_HOME/models/instruct-finetunes/`` (``-full`` under ``SLM_COURSE_PROFILE=full``, four times longer
again):

- ``"sft"``: ``tiny_pretrained()`` finetuned on all four families (``sft.finetune``, the short prompt format);
- ``"a"`` and ``"b"``: that model trained further on arithmetic + reverse and on format + lookup only, the two
  specialists the chapter merges.

:func:`instruct_finetunes` returns the three models in eval mode; :func:`finetunes_recipe` is everything that
decides them (a cache built from another recipe, or another tiny model, is rebuilt).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from slm_course.paths import atomic_write_text, cache_is_intact, models_dir, publish_folder

FORMAT = "slm-course-instruct-finetunes-1"
NAMES = ("sft", "a", "b")


def finetunes_recipe() -> dict[str, Any]:
    """Steps, learning rates, data and the base model's recipe: the whole of what the cached models depend on."""
    from slm_course.device import by_profile
    from slm_course.train.pretrained import recipe as tiny_recipe

    steps = by_profile(2400, 9600)
    return {"format": FORMAT, "base": tiny_recipe(), "n_train": 2000, "n_test": 200, "split_seed": 0,
            "prompt_format": "format_short", "batch_size": 8, "seed": 0,
            "sft": {"steps": steps, "lr": 3e-3},
            "specialists": {"a": ["arithmetic", "reverse"], "b": ["format", "lookup"], "steps": steps // 4, "lr": 1e-3}}


def instruct_finetunes_dir() -> Path:
    """``models/instruct-finetunes`` (``-full`` under the full profile)."""
    from slm_course.device import profile

    return models_dir() / ("instruct-finetunes" if profile() == "fast" else "instruct-finetunes-full")


def _cached(folder: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, json.JSONDecodeError):
        return None
    complete = all((folder / name / "model.safetensors").is_file() for name in NAMES)
    return meta if complete and meta.get("recipe") == finetunes_recipe() else None


def build_instruct_finetunes(progress: bool = False) -> Path:
    """Train and cache the three models unless a copy from the same recipe is there; return the folder.

    Everything is written into a staging folder beside the target and renamed into place at the end, so an
    interrupted build leaves no half-written cache (the next call starts again); a copy whose files fail the
    checksums recorded when it was built is rebuilt, with a one-line note."""
    import copy

    from slm_course.device import set_seed
    from slm_course.finetune import instruct, sft
    from slm_course.model.io import save_model
    from slm_course.tokenizers import course_bpe
    from slm_course.train.pretrained import tiny_pretrained

    target = instruct_finetunes_dir()
    if _cached(target) is not None and cache_is_intact(target, "chapter 8 finetunes"):
        return target
    r = finetunes_recipe()
    tokenizer = course_bpe()
    eos_id = tokenizer.special_tokens["<|endoftext|>"]
    train_examples, _ = instruct.instruction_splits(r["n_train"], r["n_test"], seed=r["split_seed"])
    pairs = sft.encode_examples(train_examples, tokenizer, getattr(instruct, r["prompt_format"]), eos_id)
    set_seed(r["seed"])
    models, losses = {"sft": tiny_pretrained()}, {}
    history = sft.finetune(models["sft"], pairs, steps=r["sft"]["steps"], pad_id=eos_id, batch_size=r["batch_size"],
                           lr=r["sft"]["lr"], seed=r["seed"], progress=progress)
    losses["sft"] = history.train_loss
    spec = r["specialists"]
    for name in ("a", "b"):
        models[name] = copy.deepcopy(models["sft"])
        chosen = [p for p, e in zip(pairs, train_examples) if e.family in spec[name]]
        history = sft.finetune(models[name], chosen, steps=spec["steps"], pad_id=eos_id, batch_size=r["batch_size"],
                               lr=spec["lr"], seed=r["seed"], progress=progress)
        losses[name] = history.train_loss

    def fill(staging: Path) -> None:
        for name, model in models.items():
            save_model(model, staging / name)
        atomic_write_text(staging / "meta.json", json.dumps({"recipe": r, "train_loss": losses}, indent=1))

    return publish_folder(target, fill, lambda folder: _cached(folder) is not None)

def instruct_finetunes() -> dict[str, Any]:
    """``{"sft": model, "a": model, "b": model}`` (``SLM``, eval mode), built and cached on first use."""
    from slm_course.model.io import load_model

    folder = build_instruct_finetunes()
    return {name: load_model(folder / name) for name in NAMES}


def instruct_finetunes_info() -> dict[str, Any]:
    """The cached models' recipe and training losses (builds them if needed)."""
    return json.loads((build_instruct_finetunes() / "meta.json").read_text())
