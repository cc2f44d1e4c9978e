"""Hugging Face safetensors folders ⇄ ``SLM`` (chapter 6): GPT-2 and Llama families, both ways.

A Hugging Face checkpoint folder holds ``config.json`` (the hyper-parameters) and
``model.safetensors`` (or shards listed in ``model.safetensors.index.json``). Loading reads the
config into an ``SLMConfig`` (``slm_course.model.hf.config_from_hf``), renames and transposes the
tensors with that family's name map, and checks every shape. ``save_hf`` writes the reverse: a
folder ``transformers.AutoModelForCausalLM.from_pretrained`` loads with the same logits.
"""
from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import torch

from slm_course.model.hf import GPT2_BLOCK_MAP, GPT2_TRANSPOSED, LLAMA_BLOCK_MAP, config_from_hf, \
    convert_gpt2_state_dict, convert_llama_state_dict, load_converted
from slm_course.model.slm import SLM
from slm_course.paths import atomic_write_text

# Defaults transformers assumes when a config.json leaves a field out.
_DEFAULTS = {
    "gpt2": {"activation_function": "gelu_new", "n_inner": None, "layer_norm_epsilon": 1e-5, "tie_word_embeddings": True},
    "llama": {"tie_word_embeddings": False, "rms_norm_eps": 1e-6, "rope_theta": 10_000.0, "attention_bias": False,
              "mlp_bias": False, "head_dim": None, "rope_scaling": None, "rope_parameters": None},
}


def read_hf_config(folder: str | os.PathLike) -> SimpleNamespace:
    """``config.json`` as an object with attributes (what ``config_from_hf`` reads), defaults filled in."""
    path = Path(folder) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"No config.json in {folder}: a Hugging Face checkpoint folder holds config.json and model.safetensors.")
    raw = json.loads(path.read_text())
    fields = {**_DEFAULTS.get(raw.get("model_type"), {}), **raw}
    if raw.get("model_type") == "llama":
        fields.setdefault("num_key_value_heads", raw["num_attention_heads"])
    return SimpleNamespace(**fields)


def read_safetensors_header(path: str | os.PathLike) -> tuple[int, dict[str, dict[str, Any]]]:
    """A ``.safetensors`` file's header, read by hand: ``(header_length, {name: {"dtype", "shape",
    "data_offsets"}})``. The file is 8 bytes (little-endian u64: the header's length), the JSON header,
    then the tensors' bytes; ``data_offsets`` are ``[start, end)`` counted from the end of the header.
    ``__metadata__`` (if present) is left out."""
    import struct

    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return length, header


def read_safetensors(folder: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Every tensor of ``model.safetensors`` or of the shards its index lists."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if (folder / "model.safetensors").is_file():
        return load_file(str(folder / "model.safetensors"))
    index = folder / "model.safetensors.index.json"
    if not index.is_file():
        raise FileNotFoundError(f"No model.safetensors (or model.safetensors.index.json) in {folder}.")
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(set(json.loads(index.read_text())["weight_map"].values())):
        tensors.update(load_file(str(folder / shard)))
    return tensors


def load_hf_folder(folder: str | os.PathLike, **overrides: Any) -> SLM:
    """An ``SLM`` (float32, eval mode) from a GPT-2 or Llama safetensors folder."""
    hf_config = read_hf_config(folder)
    config = config_from_hf(hf_config, **overrides)
    tensors = {k: v.float() for k, v in read_safetensors(folder).items()}
    convert = convert_gpt2_state_dict if config.norm == "layernorm" else convert_llama_state_dict
    return load_converted(SLM(config), convert(tensors, config)).eval()


def hf_config_dict(model: SLM) -> dict[str, Any]:
    """The ``config.json`` fields ``transformers`` needs to rebuild ``model`` (GPT-2 or Llama)."""
    c = model.config
    gpt2_like = (c.norm, c.positions, c.mlp) == ("layernorm", "learned", "gelu")
    llama_like = (c.norm, c.positions, c.mlp) == ("rmsnorm", "rope", "swiglu")
    if gpt2_like and c.qkv_bias and c.bias and c.n_kv_heads == c.n_heads:
        return {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": c.vocab_size,
                "n_positions": c.context_length, "n_embd": c.d_model, "n_layer": c.n_layers, "n_head": c.n_heads,
                "n_inner": c.d_ff, "activation_function": "gelu_new", "layer_norm_epsilon": c.norm_eps,
                "tie_word_embeddings": c.tie_embeddings, "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0,
                "dtype": "float32"}
    if llama_like and not c.bias and not c.qkv_bias:
        return {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "vocab_size": c.vocab_size,
                "max_position_embeddings": c.context_length, "hidden_size": c.d_model,
                "intermediate_size": c.d_ff, "num_hidden_layers": c.n_layers, "num_attention_heads": c.n_heads,
                "num_key_value_heads": c.n_kv_heads, "head_dim": c.head_dim, "hidden_act": "silu",
                "rms_norm_eps": c.norm_eps, "rope_theta": c.rope_theta,
                "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_theta},
                "tie_word_embeddings": c.tie_embeddings, "attention_bias": False, "mlp_bias": False,
                "dtype": "float32"}
    raise ValueError(
        f"save_hf writes GPT-2 (layernorm, learned, gelu, biases) or Llama (rmsnorm, rope, swiglu, no biases) "
        f"models; this one is norm={c.norm}, positions={c.positions}, mlp={c.mlp}, bias={c.bias}, qkv_bias={c.qkv_bias}."
    )


def hf_state_dict(model: SLM) -> dict[str, torch.Tensor]:
    """Our weights under ``transformers``' names and layouts (the inverse of the name maps)."""
    c, sd = model.config, model.state_dict()
    out: dict[str, torch.Tensor] = {}
    if hf_config_dict(model)["model_type"] == "gpt2":
        out.update({"transformer.wte.weight": sd["tok_emb.weight"], "transformer.wpe.weight": sd["pos_emb.weight"],
                    "transformer.ln_f.weight": sd["final_norm.weight"], "transformer.ln_f.bias": sd["final_norm.bias"]})
        for i in range(c.n_layers):
            p, src = f"blocks.{i}.", f"transformer.h.{i}."
            qkv = torch.cat([sd[p + f"attn.{n}.weight"] for n in ("q_proj", "k_proj", "v_proj")])  # (3·d, d)
            out[src + "attn.c_attn.weight"] = qkv.t()  # Conv1D stores (in, out)
            out[src + "attn.c_attn.bias"] = torch.cat([sd[p + f"attn.{n}.bias"] for n in ("q_proj", "k_proj", "v_proj")])
            for ours, theirs in GPT2_BLOCK_MAP.items():
                out[src + theirs] = sd[p + ours].t() if theirs in GPT2_TRANSPOSED else sd[p + ours]
    else:
        out.update({"model.embed_tokens.weight": sd["tok_emb.weight"], "model.norm.weight": sd["final_norm.weight"]})
        for i in range(c.n_layers):
            for ours, theirs in LLAMA_BLOCK_MAP.items():
                if f"blocks.{i}.{ours}" in sd:
                    out[f"model.layers.{i}.{theirs}"] = sd[f"blocks.{i}.{ours}"]
    if not c.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    return {k: v.detach().float().contiguous().clone() for k, v in out.items()}


def save_hf(model: SLM, folder: str | os.PathLike) -> Path:
    """Write ``model`` as a Hugging Face folder: ``config.json`` + ``model.safetensors`` (float32).

    Written in a staging folder beside ``folder`` and renamed into place (an existing folder is
    replaced). ``transformers.AutoModelForCausalLM.from_pretrained(folder)`` gives the same logits.
    """
    from safetensors.torch import save_file

    if not isinstance(model, SLM):
        raise TypeError(f"save_hf expects an SLM, got {type(model).__name__}.")
    folder = Path(folder)
    config = hf_config_dict(model)
    staging = folder.parent / f".{folder.name}.{uuid.uuid4().hex}.tmp"
    staging.mkdir(parents=True)
    try:
        save_file(hf_state_dict(model), str(staging / "model.safetensors"), metadata={"format": "pt"})
        atomic_write_text(staging / "config.json", json.dumps(config, indent=2))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


# Online checkpoints (chapter 6's optional cells; tests marked network).
HUB_MODELS = {"gpt2": "openai-community/gpt2", "smollm2-135m": "HuggingFaceTB/SmolLM2-135M"}


def from_hub(name: str, revision: str | None = None) -> SLM:
    """Download (once, into the Hugging Face cache) and load ``"gpt2"`` (124M) or ``"smollm2-135m"`` (base)."""
    from huggingface_hub import snapshot_download

    repo = HUB_MODELS.get(name, name)
    folder = snapshot_download(repo, revision=revision, allow_patterns=["config.json", "*.safetensors", "*.safetensors.index.json"])
    return load_hf_folder(folder)
