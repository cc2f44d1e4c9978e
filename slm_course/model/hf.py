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


def convert_gpt2_state_dict(state_dict: Mapping[str, torch.Tensor], config: SLMConfig) -> dict[str, torch.Tensor]:
    """GPT-2 names and layouts → ours. Accepts keys with or without the ``transformer.`` prefix."""
    sd = _strip(state_dict, "transformer.")
    d = config.d_model
    out = {"tok_emb.weight": sd["wte.weight"], "pos_emb.weight": sd["wpe.weight"],
           "final_norm.weight": sd["ln_f.weight"], "final_norm.bias": sd["ln_f.bias"]}
    if not config.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(config.n_layers):
        src = f"h.{i}."
        qkv_w = sd[src + "attn.c_attn.weight"].t()  # (3·d, d) after the transpose
        qkv_b = sd[src + "attn.c_attn.bias"]  # (3·d,)
        for j, name in enumerate(("q_proj", "k_proj", "v_proj")):
            out[f"blocks.{i}.attn.{name}.weight"] = qkv_w[j * d:(j + 1) * d]
            out[f"blocks.{i}.attn.{name}.bias"] = qkv_b[j * d:(j + 1) * d]
        for ours, theirs in GPT2_BLOCK_MAP.items():
            tensor = sd[src + theirs]
            out[f"blocks.{i}.{ours}"] = tensor.t() if theirs in GPT2_TRANSPOSED else tensor
    return out


def convert_llama_state_dict(state_dict: Mapping[str, torch.Tensor], config: SLMConfig) -> dict[str, torch.Tensor]:
    """Llama (``transformers`` layout) names → ours. Accepts keys with or without ``model.``."""
    sd = _strip(state_dict, "model.")
    out = {"tok_emb.weight": sd["embed_tokens.weight"], "final_norm.weight": sd["norm.weight"]}
    if not config.tie_embeddings:
        out["lm_head.weight"] = sd["lm_head.weight"]
    for i in range(config.n_layers):
        for ours, theirs in LLAMA_BLOCK_MAP.items():
            key = f"layers.{i}.{theirs}"
            if key in sd:
                out[f"blocks.{i}.{ours}"] = sd[key]
    return out


def load_converted(model: SLM, converted: Mapping[str, torch.Tensor]) -> SLM:
    """Copy ``converted`` (our names) into ``model``, checking every shape and that no key is left over."""
    expected = {k: v for k, v in model.state_dict().items()}
    if model.config.tie_embeddings:
        expected.pop("lm_head.weight", None)
    missing = sorted(set(expected) - set(converted))
    extra = sorted(set(converted) - set(expected))
    if missing or extra:
        raise ValueError(f"weights do not match the model: missing {missing[:5]}, unexpected {extra[:5]}.")
    with torch.no_grad():
        for key, tensor in converted.items():
            if tuple(tensor.shape) != tuple(expected[key].shape):
                raise ValueError(
                    f"{key}: the checkpoint has shape {tuple(tensor.shape)}, the model {tuple(expected[key].shape)}."
                )
            expected[key].copy_(tensor)
    return model


def slm_from_hf(hf_model: Any, **overrides: Any) -> SLM:
    """An ``SLM`` with the weights of a ``transformers`` GPT2LMHeadModel or LlamaForCausalLM."""
    config = config_from_hf(hf_model.config, **overrides)
    model = SLM(config)
    state_dict = hf_model.state_dict()
    convert = convert_gpt2_state_dict if config.norm == "layernorm" else convert_llama_state_dict
    return load_converted(model, convert(state_dict, config)).eval()
