"""Export an ``SLM`` to a GGUF file (chapter 10): F16, Q8_0 or Q4_0, written with the ``gguf`` package.

The inverse of chapter 6's reader (``slm_course.weights.load_gguf``): our names become GGUF's
(``gguf_name``), the query and key rows are permuted into llama.cpp's RoPE order (``permute_rows``),
every matrix is stored in the chosen format — F16, or the block formats of
``slm_course.quantize.gguf_blocks`` — and the norms stay F32, as llama.cpp's own converter does.
The tokenizer (vocabulary, merges, special ids, chat template) is copied from a source GGUF such as
the SmolLM2 asset, so llama.cpp and ``transformers`` can both load the result. Only the Llama layout
(``norm="rmsnorm", positions="rope", mlp="swiglu"``, no biases) is written: GPT-2-layout models
would need GGUF's ``gpt2`` architecture, which chapter 6's reader does not read.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from slm_course.model.slm import SLM
from slm_course.quantize.gguf_blocks import quantize_block

Format = Literal["F16", "Q8_0", "Q4_0"]
FILE_TYPES = {"F32": 0, "F16": 1, "Q4_0": 2, "Q8_0": 7}  # llama.cpp's LLAMA_FTYPE_* numbers


def check_exportable(model: SLM) -> None:
    """Raise ``ValueError`` unless ``model`` has the Llama layout GGUF's ``llama`` architecture stores."""
    c = model.config
    if (c.norm, c.positions, c.mlp) != ("rmsnorm", "rope", "swiglu") or c.bias or c.qkv_bias:
        raise ValueError(
            "export_gguf writes GGUF's 'llama' architecture: the model needs norm='rmsnorm', positions='rope', "
            f"mlp='swiglu' and no biases; this one has norm={c.norm!r}, positions={c.positions!r}, mlp={c.mlp!r}, "
            f"bias={c.bias}, qkv_bias={c.qkv_bias}."
        )


def gguf_tensors(model: SLM) -> dict[str, torch.Tensor]:
    """The model's tensors under GGUF names, Q/K rows permuted for llama.cpp, float32 (PyTorch shapes)."""
    from slm_course.weights.gguf_load import gguf_name, permute_rows

    c = model.config
    out = {}
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and c.tie_embeddings:
            continue  # tied: llama.cpp reuses token_embd
        t = tensor.detach().float().cpu()
        if name.endswith("attn.q_proj.weight"):
            t = permute_rows(t, c.n_heads)
        elif name.endswith("attn.k_proj.weight"):
            t = permute_rows(t, c.n_kv_heads)
        out[gguf_name(name)] = t
    return out


def _copy_tokenizer(writer, source: str | os.PathLike) -> None:
    import gguf

    reader = gguf.GGUFReader(str(source))
    for name, fld in reader.fields.items():
        if not name.startswith("tokenizer."):
            continue
        vtype = fld.types[0]
        if vtype == gguf.GGUFValueType.ARRAY:
            sub = fld.types[1]
            if sub == gguf.GGUFValueType.STRING:
                value = [bytes(fld.parts[i]).decode("utf-8") for i in fld.data]
            else:
                value = [fld.parts[i][0].item() for i in fld.data]
            writer.add_key_value(name, value, vtype, sub_type=sub)
        elif vtype == gguf.GGUFValueType.STRING:
            writer.add_key_value(name, bytes(fld.parts[fld.data[0]]).decode("utf-8"), vtype)
        else:
            writer.add_key_value(name, fld.parts[fld.data[0]][0].item(), vtype)


def export_gguf(model: SLM, path: str | os.PathLike, kind: Format = "Q8_0", *,
                tokenizer_from: str | os.PathLike | None = None, name: str | None = None) -> Path:
    """Write ``model`` to ``path`` as GGUF with matrices in ``kind`` (F16, Q8_0, Q4_0); returns the path.

    ``tokenizer_from``: a GGUF file whose ``tokenizer.*`` entries are copied (needed by llama.cpp and
    ``transformers``; default: none, the file then holds weights only). Written beside and renamed.
    """
    import gguf

    if kind not in ("F16", "Q8_0", "Q4_0"):
        raise ValueError(f"kind must be 'F16', 'Q8_0' or 'Q4_0', got {kind!r}.")
    check_exportable(model)
    c = model.config
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    writer = gguf.GGUFWriter(str(tmp), "llama")
    writer.add_name(name or c.name)
    writer.add_context_length(c.context_length)
    writer.add_embedding_length(c.d_model)
    writer.add_block_count(c.n_layers)
    writer.add_feed_forward_length(c.d_ff)
    writer.add_head_count(c.n_heads)
    writer.add_head_count_kv(c.n_kv_heads)
    writer.add_rope_freq_base(float(c.rope_theta))
    writer.add_layer_norm_rms_eps(float(c.norm_eps))
    writer.add_rope_dimension_count(c.head_dim)
    writer.add_vocab_size(c.vocab_size)
    writer.add_file_type(FILE_TYPES[kind])
    if kind != "F16":
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    if tokenizer_from is not None:
        _copy_tokenizer(writer, tokenizer_from)
    for gname, t in gguf_tensors(model).items():
        t = t.contiguous()  # generation may have left weights input-major (same values)
        if t.dim() == 1:
            writer.add_tensor(gname, t.numpy().astype(np.float32))
        elif kind == "F16":
            writer.add_tensor(gname, t.numpy().astype(np.float16))
        else:
            data = quantize_block(t, kind).numpy()  # (rows, bytes), exactly gguf.quants.quantize's bytes
            writer.add_tensor(gname, data, raw_dtype=gguf.GGMLQuantizationType[kind])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    os.replace(tmp, path)
    return path
