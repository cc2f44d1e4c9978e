"""Helpers for the chapter-6 tests: tiny random transformers models and GGUF files written from them."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

import gguf
from gguf.quants import dequantize as gguf_dequantize, quantize as gguf_quantize

from slm_course.weights.gguf_load import GGUF_BLOCK_MAP, gguf_name, permute_rows


def tiny_llama(tie: bool = True, kv_heads: int = 2, theta: float = 500.0, eps: float = 1e-6, hidden: int = 64,
               heads: int = 4, ff: int = 96, vocab: int = 96, layers: int = 2):
    import transformers

    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden, intermediate_size=ff, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=64, rms_norm_eps=eps,
        tie_word_embeddings=tie, rope_theta=theta, bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(1.0, 0.2) if "norm" in name else param.normal_(0.0, 0.2)
    return model


def tiny_gpt2(tie: bool = True):
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=101, n_positions=32, n_embd=48, n_layer=2, n_head=4,
                                     tie_word_embeddings=tie, bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                param.normal_(0.0, 0.1).add_(1.0 if name.endswith("weight") else 0.0)
    return model


def write_llama_gguf(reference, path: Path, matrix_type: str = "F32", arch: str = "llama") -> None:
    """Write ``reference`` (a transformers Llama) as a GGUF file the way llama.cpp's converter does:
    GGUF names, Q/K rows permuted, matrices in ``matrix_type``; then set ``reference``'s weights to what
    gguf's own dequantization of the file gives, so its logits are the ones to match."""
    from slm_course.model.hf import config_from_hf, convert_llama_state_dict

    config = config_from_hf(reference.config)
    ours = convert_llama_state_dict(reference.state_dict(), config)
    writer = gguf.GGUFWriter(str(path), arch)
    c = reference.config
    writer.add_block_count(c.num_hidden_layers)
    writer.add_context_length(c.max_position_embeddings)
    writer.add_embedding_length(c.hidden_size)
    writer.add_feed_forward_length(c.intermediate_size)
    writer.add_head_count(c.num_attention_heads)
    writer.add_head_count_kv(c.num_key_value_heads)
    writer.add_rope_freq_base(float(config.rope_theta))
    writer.add_layer_norm_rms_eps(c.rms_norm_eps)
    writer.add_vocab_size(c.vocab_size)
    qtype = gguf.GGMLQuantizationType[matrix_type]
    dequantized = {}
    for name, tensor in ours.items():
        w = tensor.detach().float().numpy()
        if name.endswith("q_proj.weight"):
            w = permute_rows(torch.from_numpy(w), config.n_heads).numpy()
        elif name.endswith("k_proj.weight"):
            w = permute_rows(torch.from_numpy(w), config.n_kv_heads).numpy()
        kind = qtype if w.ndim == 2 else gguf.GGMLQuantizationType.F32
        data = gguf_quantize(w, kind) if kind != gguf.GGMLQuantizationType.F32 else w
        block_quant = kind.name.startswith("Q")  # raw bytes: the writer works the element shape out of the byte shape
        writer.add_tensor(gguf_name(name), data, raw_dtype=kind if block_quant else None)
        back = gguf_dequantize(data, kind).reshape(w.shape) if kind != gguf.GGMLQuantizationType.F32 else w
        dequantized[name] = torch.from_numpy(np.ascontiguousarray(back))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    # The reference gets the dequantized weights (in its own, un-permuted row order).
    from slm_course.weights.gguf_load import unpermute_rows

    sd = reference.state_dict()
    with torch.no_grad():
        for name, w in dequantized.items():
            if name.endswith("q_proj.weight"):
                w = unpermute_rows(w, config.n_heads)
            elif name.endswith("k_proj.weight"):
                w = unpermute_rows(w, config.n_kv_heads)
            theirs = {"tok_emb.weight": "model.embed_tokens.weight", "final_norm.weight": "model.norm.weight",
                      "lm_head.weight": "lm_head.weight"}.get(name)
            if theirs is None:
                _, i, rest = name.split(".", 2)
                from slm_course.model.hf import LLAMA_BLOCK_MAP

                theirs = f"model.layers.{i}.{LLAMA_BLOCK_MAP[rest]}"
            sd[theirs].copy_(w)


__all__ = ["tiny_llama", "tiny_gpt2", "write_llama_gguf", "GGUF_BLOCK_MAP"]
