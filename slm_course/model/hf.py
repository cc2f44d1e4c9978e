"""Loading ``transformers`` weights into ``SLM`` (chapter 3's parity tests, reused by chapter 6).

A name map per architecture turns a ``transformers`` state dict into ours. GPT-2 stores its
linear layers as ``Conv1D`` with the matrix transposed (``(in, out)``) and Q, K, V fused in one
``c_attn``; those are transposed and split. Llama-family checkpoints (SmolLM2) in ``transformers``
already use the half-rotation RoPE layout ours uses, so their weights copy as they are. Every
key's shape is checked; a missing or left-over key is an error.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from slm_course.model.config import SLMConfig
from slm_course.model.slm import SLM

# GPT-2 Conv1D weights stored (in, out): transposed when copied into our nn.Linear (out, in).
GPT2_TRANSPOSED = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")

# Per-block names: ours ← GPT-2's (c_attn is split into q/k/v separately).
GPT2_BLOCK_MAP = {
    "norm1.weight": "ln_1.weight", "norm1.bias": "ln_1.bias",
    "attn.out_proj.weight": "attn.c_proj.weight", "attn.out_proj.bias": "attn.c_proj.bias",
    "norm2.weight": "ln_2.weight", "norm2.bias": "ln_2.bias",
    "mlp.fc.weight": "mlp.c_fc.weight", "mlp.fc.bias": "mlp.c_fc.bias",
    "mlp.proj.weight": "mlp.c_proj.weight", "mlp.proj.bias": "mlp.c_proj.bias",
}

# Per-block names: ours ← Llama's (transformers layout).
LLAMA_BLOCK_MAP = {
    "norm1.weight": "input_layernorm.weight",
    "attn.q_proj.weight": "self_attn.q_proj.weight", "attn.k_proj.weight": "self_attn.k_proj.weight",
    "attn.v_proj.weight": "self_attn.v_proj.weight", "attn.out_proj.weight": "self_attn.o_proj.weight",
    "attn.q_proj.bias": "self_attn.q_proj.bias", "attn.k_proj.bias": "self_attn.k_proj.bias",
    "attn.v_proj.bias": "self_attn.v_proj.bias", "attn.out_proj.bias": "self_attn.o_proj.bias",
    "norm2.weight": "post_attention_layernorm.weight",
    "mlp.gate.weight": "mlp.gate_proj.weight", "mlp.up.weight": "mlp.up_proj.weight",
    "mlp.down.weight": "mlp.down_proj.weight",
}


def _strip(state_dict: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {(k[len(prefix):] if k.startswith(prefix) else k): v for k, v in state_dict.items()}


def config_from_hf(hf_config: Any, **overrides: Any) -> SLMConfig:
    """An ``SLMConfig`` for a ``transformers`` GPT-2 or Llama config (``model.config``)."""
    kind = getattr(hf_config, "model_type", None)
    if kind == "gpt2":
        if hf_config.activation_function not in ("gelu_new", "gelu_pytorch_tanh"):
            raise ValueError(f"GPT-2 with activation {hf_config.activation_function!r}: SLM uses GELU's tanh form.")
        fields = dict(
            vocab_size=hf_config.vocab_size, context_length=hf_config.n_positions, d_model=hf_config.n_embd,
            n_layers=hf_config.n_layer, n_heads=hf_config.n_head, d_ff=hf_config.n_inner or 4 * hf_config.n_embd,
            norm="layernorm", positions="learned", mlp="gelu", qkv_bias=True, bias=True,
            tie_embeddings=bool(getattr(hf_config, "tie_word_embeddings", True)),
            norm_eps=hf_config.layer_norm_epsilon, name="gpt2",
        )
    elif kind == "llama":
        head_dim = getattr(hf_config, "head_dim", None) or hf_config.hidden_size // hf_config.num_attention_heads
        if head_dim * hf_config.num_attention_heads != hf_config.hidden_size:
            raise ValueError("SLM needs head_dim × n_heads = d_model; this Llama config differs.")
        rope = getattr(hf_config, "rope_parameters", None) or getattr(hf_config, "rope_scaling", None) or {}
        if rope.get("rope_type", "default") != "default":
            raise ValueError(f"RoPE scaling {rope.get('rope_type')!r} is not supported by SLM.")
        theta = rope.get("rope_theta", getattr(hf_config, "rope_theta", 10_000.0))
        fields = dict(
            vocab_size=hf_config.vocab_size, context_length=hf_config.max_position_embeddings,
            d_model=hf_config.hidden_size, n_layers=hf_config.num_hidden_layers,
            n_heads=hf_config.num_attention_heads, n_kv_heads=hf_config.num_key_value_heads,
            d_ff=hf_config.intermediate_size, norm="rmsnorm", positions="rope", mlp="swiglu",
            qkv_bias=bool(getattr(hf_config, "attention_bias", False)), bias=False,
            tie_embeddings=bool(hf_config.tie_word_embeddings), norm_eps=hf_config.rms_norm_eps,
            rope_theta=float(theta), name="llama",
        )
        if getattr(hf_config, "attention_bias", False) or getattr(hf_config, "mlp_bias", False):
            raise ValueError("Llama configs with attention or MLP biases are not supported by SLM.")
    else:
        raise ValueError(f"Unsupported architecture {kind!r}: SLM loads 'gpt2' and 'llama' configs.")
    fields.update(overrides)
    return SLMConfig(**fields)


# Buffers some GPT-2 checkpoints carry (the causal mask), which are not weights: dropped on load.
GPT2_IGNORED_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def _take(sd: dict[str, torch.Tensor], key: str, used: set[str]) -> torch.Tensor | None:
    """``sd[key]`` (marking it used), or None when absent (``load_converted`` then reports it missing)."""
    if key in sd:
        used.add(key)
        return sd[key]
    return None


def _leftovers(sd: Mapping[str, torch.Tensor], used: set[str], out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Add the checkpoint's unused keys to ``out`` under their own names, so they show as unexpected."""
    for key, tensor in sd.items():
        if key not in used:
            out[f"(checkpoint) {key}"] = tensor
    return {k: v for k, v in out.items() if v is not None}


def convert_gpt2_state_dict(state_dict: Mapping[str, torch.Tensor], config: SLMConfig) -> dict[str, torch.Tensor]:
    """GPT-2 names and layouts → ours. Accepts keys with or without the ``transformer.`` prefix.

    Absent keys are left out (``load_converted`` lists them); unused ones are kept as ``(checkpoint) name``.
    """
    sd = {k: v for k, v in _strip(state_dict, "transformer.").items() if not k.endswith(GPT2_IGNORED_SUFFIXES)}
    d, used = config.d_model, set()
    out = {"tok_emb.weight": _take(sd, "wte.weight", used), "pos_emb.weight": _take(sd, "wpe.weight", used),
           "final_norm.weight": _take(sd, "ln_f.weight", used), "final_norm.bias": _take(sd, "ln_f.bias", used)}
    if not config.tie_embeddings:
        out["lm_head.weight"] = _take(sd, "lm_head.weight", used)
    elif "lm_head.weight" in sd and sd["lm_head.weight"] is not None:
        used.add("lm_head.weight")  # a tied checkpoint may still list the shared matrix
    for i in range(config.n_layers):
        src = f"h.{i}."
        qkv_w, qkv_b = _take(sd, src + "attn.c_attn.weight", used), _take(sd, src + "attn.c_attn.bias", used)
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            if qkv_w is not None:  # Conv1D (d, 3·d): transpose to (3·d, d), then rows j·d … (j+1)·d
                out[f"blocks.{i}.attn.{name}.weight"] = qkv_w.t()[j * d:(j + 1) * d]
            if qkv_b is not None:
                out[f"blocks.{i}.attn.{name}.bias"] = qkv_b[j * d:(j + 1) * d]
        for ours, theirs in GPT2_BLOCK_MAP.items():
            tensor = _take(sd, src + theirs, used)
            out[f"blocks.{i}.{ours}"] = tensor.t() if tensor is not None and theirs in GPT2_TRANSPOSED else tensor
    return _leftovers(sd, used, out)


def convert_llama_state_dict(state_dict: Mapping[str, torch.Tensor], config: SLMConfig) -> dict[str, torch.Tensor]:
    """Llama (``transformers`` layout) names → ours. Accepts keys with or without ``model.``."""
    sd, used = _strip(state_dict, "model."), set()
    out = {"tok_emb.weight": _take(sd, "embed_tokens.weight", used), "final_norm.weight": _take(sd, "norm.weight", used)}
    if not config.tie_embeddings:
        out["lm_head.weight"] = _take(sd, "lm_head.weight", used)
    elif "lm_head.weight" in sd:
        used.add("lm_head.weight")
    for i in range(config.n_layers):
        for ours, theirs in LLAMA_BLOCK_MAP.items():
            if ours.endswith(".bias") and not config.qkv_bias:
                continue
            out[f"blocks.{i}.{ours}"] = _take(sd, f"layers.{i}.{theirs}", used)
    return _leftovers(sd, used, out)


def load_converted(model: SLM, converted: Mapping[str, torch.Tensor]) -> SLM:
    """Copy ``converted`` (our names) into ``model``: one shape check per tensor, and one ``ValueError``
    that lists every missing, unexpected and mis-shaped key at once."""
    expected = dict(model.state_dict())
    if model.config.tie_embeddings:
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(converted))
    unexpected = sorted(set(converted) - set(expected))
    misshaped = [f"{k} (checkpoint shape {tuple(converted[k].shape)}, model shape {tuple(expected[k].shape)})"
                 for k in sorted(set(converted) & set(expected))
                 if tuple(converted[k].shape) != tuple(expected[k].shape)]
    if missing or unexpected or misshaped:
        parts = [f"{len(missing)} missing: {', '.join(missing)}" if missing else "",
                 f"{len(unexpected)} unexpected: {', '.join(unexpected)}" if unexpected else "",
                 f"{len(misshaped)} with the wrong shape: {'; '.join(misshaped)}" if misshaped else ""]
        raise ValueError("The weights do not match the model's config; " + ". ".join(p for p in parts if p)
                         + ". Check that the config was built from the same checkpoint.")
    with torch.no_grad():
        for key, tensor in converted.items():
            expected[key].copy_(tensor)
    return model


def slm_from_hf(hf_model: Any, **overrides: Any) -> SLM:
    """An ``SLM`` with the weights of a ``transformers`` GPT2LMHeadModel or LlamaForCausalLM."""
    config = config_from_hf(hf_model.config, **overrides)
    model = SLM(config)
    state_dict = hf_model.state_dict()
    convert = convert_gpt2_state_dict if config.norm == "layernorm" else convert_llama_state_dict
    return load_converted(model, convert(state_dict, config)).eval()
