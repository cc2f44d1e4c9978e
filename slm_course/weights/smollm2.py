"""SmolLM2-135M-Instruct as a float32 ``SLM`` (chapter 6; used by chapters 7–10).

The course asset ``smollm2-gguf`` is the Q4_1 GGUF file. The first call dequantizes it with
:func:`~slm_course.weights.gguf_load.load_gguf` and caches the float32 weights as safetensors, the
config and the tokenizer as JSON, under ``$SLM_COURSE_HOME/models/smollm2-135m-instruct/`` (written
in a staging folder, then renamed, so a reader never sees half a cache, with every file's size and sha256
recorded beside them). Later calls check those and read the cache; a damaged cache is rebuilt.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from slm_course.model.config import SLMConfig
from slm_course.model.slm import SLM
from slm_course.paths import atomic_write_text, cache_is_intact, models_dir, publish_folder
from slm_course.weights.tokenizer import GGUFTokenizer

ASSET = "smollm2-gguf"
KEY = "smollm2-135m-instruct"
FORMAT = "slm-course-smollm2/2"  # bump when the cache layout changes (2: the tokenizer keeps its pre-tokenizer type)


def smollm2_gguf_path() -> Path:
    """The GGUF file of the ``smollm2-gguf`` asset (fetched the first time)."""
    from slm_course.assets import asset_path

    return asset_path(ASSET) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    """``$SLM_COURSE_HOME/models/smollm2-135m-instruct/``: the cached float32 weights."""
    return models_dir() / KEY


def _cached(folder: Path) -> bool:
    try:
        return json.loads((folder / "meta.json").read_text()).get("format") == FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def build_smollm2() -> Path:
    """Dequantize the GGUF file into the cache (once); return the cache folder.

    A cache of another layout, or one whose files fail the checksums recorded when it was written (a flipped
    byte, half a file), is rebuilt from the asset, with a one-line note on stderr."""
    from safetensors.torch import save_file

    from slm_course.weights.gguf_load import load_gguf

    target = smollm2_dir()
    if _cached(target) and cache_is_intact(target, "float32 SmolLM2"):
        return target
    model, info = load_gguf(smollm2_gguf_path())
    tokenizer = GGUFTokenizer.from_metadata(info["meta"])

    def fill(staging: Path) -> None:
        weights = {k: v.contiguous() for k, v in model.state_dict().items()
                   if not (k == "lm_head.weight" and model.config.tie_embeddings)}  # tied: stored once
        save_file(weights, str(staging / "model.safetensors"))
        atomic_write_text(staging / "config.json", json.dumps(model.config.to_dict(), indent=1))
        atomic_write_text(staging / "tokenizer.json", json.dumps(tokenizer.to_dict()))
        atomic_write_text(staging / "meta.json", json.dumps(
            {"format": FORMAT, "source": smollm2_gguf_path().name, "tensor_types": info["tensor_types"],
             "metadata": {k: v for k, v in info["metadata"].items() if k != "tokenizer.chat_template"}}, indent=1))

    return publish_folder(target, fill, _cached)


def load_smollm2_cache(folder: str | os.PathLike) -> tuple[SLM, GGUFTokenizer]:
    """Read a cache folder written by :func:`build_smollm2` (no random init: weights assigned directly)."""
    from safetensors.torch import load_file

    folder = Path(folder)
    config = SLMConfig.from_dict(json.loads((folder / "config.json").read_text()))
    with torch.device("meta"):
        model = SLM(config)
    state = load_file(str(folder / "model.safetensors"))
    if config.tie_embeddings:
        state["lm_head.weight"] = state["tok_emb.weight"]
    model.load_state_dict(state, assign=True, strict=True)
    if config.tie_embeddings:
        model.lm_head.weight = model.tok_emb.weight
    tokenizer = GGUFTokenizer.from_dict(json.loads((folder / "tokenizer.json").read_text()))
    return model.eval(), tokenizer


def smollm2() -> tuple[SLM, GGUFTokenizer]:
    """SmolLM2-135M-Instruct: ``(model, tokenizer)``, a float32 ``SLM`` in eval mode and its tokenizer.

    >>> model, tokenizer = smollm2()  # doctest: +SKIP
    >>> tokenizer.apply_chat_template([{"role": "user", "content": "Hi"}])  # doctest: +SKIP
    """
    return load_smollm2_cache(build_smollm2())
