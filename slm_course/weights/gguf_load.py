"""GGUF → ``SLM`` (chapter 6): the name map, the Q/K un-permutation, the whole model.

llama.cpp's converter renames every tensor (``model.layers.0.self_attn.q_proj.weight`` becomes
``blk.0.attn_q.weight``) and reorders the rows of the query and key matrices: inside each head it
interleaves the two halves that the half-rotation RoPE pairs up, because llama.cpp rotates adjacent
pairs ``(x0, x1), (x2, x3), …``. Our RoPE pairs dimension ``i`` with ``i + head_dim/2`` (as
``transformers`` does), so the rows go back: :func:`unpermute_rows` by ``n_heads`` for Q and by
``n_kv_heads`` for K. V and every other matrix copy as they are.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import torch

from slm_course.model.hf import load_converted
from slm_course.model.slm import SLM
from slm_course.weights.gguf_file import (
    check_supported,
    config_from_gguf,
    open_gguf,
    read_metadata,
    read_tensor,
    summarize,
    tensor_kinds,
)

# Our names ← GGUF's, for the tensors outside the blocks.
GGUF_TOP_MAP = {"tok_emb.weight": "token_embd.weight", "final_norm.weight": "output_norm.weight",
                "lm_head.weight": "output.weight"}
# Our names ← GGUF's, inside block i (prefix ``blocks.{i}.`` ← ``blk.{i}.``).
GGUF_BLOCK_MAP = {
    "norm1.weight": "attn_norm.weight",
    "attn.q_proj.weight": "attn_q.weight", "attn.k_proj.weight": "attn_k.weight",
    "attn.v_proj.weight": "attn_v.weight", "attn.out_proj.weight": "attn_output.weight",
    "norm2.weight": "ffn_norm.weight",
    "mlp.gate.weight": "ffn_gate.weight", "mlp.up.weight": "ffn_up.weight", "mlp.down.weight": "ffn_down.weight",
}


def permute_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """What llama.cpp's converter does to Q/K rows ``(n_heads·head_dim, d_in)``: within each head,
    rows ``[0…hd/2)`` and ``[hd/2…hd)`` are interleaved (row ``i`` goes to ``2i``, row ``hd/2 + i`` to ``2i + 1``)."""
    rows = weight.shape[0]
    head_dim = rows // n_heads
    return weight.reshape(n_heads, 2, head_dim // 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def unpermute_rows(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Undo :func:`permute_rows`: per head, even rows back to the first half, odd rows to the second.

    ``weight`` ``(n_heads · head_dim, d_in)`` → same shape. ``unpermute_rows(permute_rows(w, h), h) == w``.
    """
    rows = weight.shape[0]
    if rows % n_heads or (rows // n_heads) % 2:
        raise ValueError(f"{rows} rows do not split into {n_heads} heads of an even head_dim.")
    head_dim = rows // n_heads
    return weight.reshape(n_heads, head_dim // 2, 2, *weight.shape[1:]).transpose(1, 2).reshape(weight.shape)


def gguf_name(ours: str) -> str:
    """The GGUF name of one of our parameter names (``blocks.3.attn.q_proj.weight`` → ``blk.3.attn_q.weight``)."""
    if ours in GGUF_TOP_MAP:
        return GGUF_TOP_MAP[ours]
    _, layer, rest = ours.split(".", 2)
    return f"blk.{layer}.{GGUF_BLOCK_MAP[rest]}"


def convert_gguf_tensors(tensors: dict[str, torch.Tensor], config: Any) -> dict[str, torch.Tensor]:
    """GGUF-named float tensors (PyTorch shapes) → our names, Q and K rows un-permuted.

    Names that are not in the map are kept under their GGUF name so the shape/key check reports them.
    """
    out: dict[str, torch.Tensor] = {}
    used = set()
    wanted = [k for k in GGUF_TOP_MAP if not (k == "lm_head.weight" and config.tie_embeddings)]
    wanted += [f"blocks.{i}.{k}" for i in range(config.n_layers) for k in GGUF_BLOCK_MAP]
    for ours in wanted:
        theirs = gguf_name(ours)
        if theirs not in tensors:
            continue  # reported as missing by load_converted
        tensor = tensors[theirs]
        if ours.endswith("attn.q_proj.weight"):
            tensor = unpermute_rows(tensor, config.n_heads)
        elif ours.endswith("attn.k_proj.weight"):
            tensor = unpermute_rows(tensor, config.n_kv_heads)
        out[ours] = tensor
        used.add(theirs)
    out.update({name: t for name, t in tensors.items() if name not in used})
    return out


def load_gguf(path: str | os.PathLike) -> tuple[SLM, dict[str, Any]]:
    """Build an ``SLM`` (float32, eval mode) from a Llama-architecture GGUF file.

    Returns ``(model, info)``; ``info`` holds ``metadata`` (the header without the big tokenizer
    arrays), ``tensor_types`` (a count per GGUF type), ``file_bytes``, ``seconds`` and ``meta``
    (the full header, tokenizer arrays included, for :class:`~slm_course.weights.tokenizer.GGUFTokenizer`).
    """
    start = time.perf_counter()
    path = Path(path)
    reader = open_gguf(path)
    check_supported(reader, path.name)
    meta = read_metadata(reader)
    names = {t.name for t in reader.tensors}
    config = config_from_gguf(meta, has_output="output.weight" in names)
    tensors = {t.name: read_tensor(t) for t in reader.tensors}
    with torch.device("meta"):
        model = SLM(config)  # no memory, no random init: the weights are assigned below
    model.to_empty(device="cpu")
    if config.tie_embeddings:
        model.lm_head.weight = model.tok_emb.weight
    load_converted(model, convert_gguf_tensors(tensors, config))
    info = {"metadata": summarize(meta), "tensor_types": dict(tensor_kinds(reader)), "file_bytes": path.stat().st_size,
            "seconds": time.perf_counter() - start, "meta": meta}
    return model.eval(), info


def transformers_from_gguf(path: str | os.PathLike, *, progress: bool = False):
    """``transformers``' own model for a GGUF file (float32, eval mode): the reference chapter 6 compares
    against. ``transformers`` reads the file with the ``gguf`` package, then dequantizes every tensor
    under a ``tqdm`` bar of its own; ``progress=False`` hides that bar (a stored notebook would keep it at 0 %)."""
    import functools

    import transformers
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    path = Path(path)
    bar = gguf_utils.tqdm
    if not progress:
        gguf_utils.tqdm = functools.partial(bar, disable=True)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                                  dtype=torch.float32)
    finally:
        gguf_utils.tqdm = bar
    return model.eval()
