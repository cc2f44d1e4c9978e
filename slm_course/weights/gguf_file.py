"""Opening a GGUF file and reading what it says about the model (chapter 6).

A GGUF file is a header (magic ``GGUF``, a version, key/value metadata such as
``llama.attention.head_count``, the tokenizer's vocabulary and merges, the chat template), a table of
tensors (name, dimensions, type, offset), then the tensor bytes. The ``gguf`` package (llama.cpp's
own Python reader) parses the container; this module checks the file is one the course can load and
turns the metadata into an ``SLMConfig``. GGUF lists a tensor's dimensions fastest-varying first,
the reverse of PyTorch: a ``[576, 49152]`` GGUF tensor is a ``(49152, 576)`` PyTorch matrix.
"""
from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch

from slm_course.model.config import SLMConfig
from slm_course.weights.dequantize import SUPPORTED_TYPES, dequantize

MAGIC = b"GGUF"
SUPPORTED_ARCHITECTURES = ("llama",)  # the general.architecture values SLM can build
_BIG_ARRAYS = ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.ggml.token_type", "tokenizer.ggml.scores")


def open_gguf(path: str | os.PathLike) -> Any:
    """A ``gguf.GGUFReader`` for ``path``, after checking that it is a complete GGUF file.

    Raises ``ValueError`` with one sentence for a file that is not GGUF or is cut short, and
    ``FileNotFoundError`` for a missing path.
    """
    import gguf

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No GGUF file at {path}; for the course's SmolLM2 use slm_course.weights.smollm2_gguf_path().")
    with open(path, "rb") as handle:
        magic = handle.read(4)
    if magic != MAGIC:
        raise ValueError(f"{path.name} is not a GGUF file: it starts with {magic!r}, a GGUF file starts with b'GGUF'.")
    try:
        reader = gguf.GGUFReader(path)
    except Exception as err:  # the reader runs off the end of a cut-short header
        raise ValueError(
            f"{path.name} is truncated or damaged: its GGUF header could not be read ({type(err).__name__}); fetch it again."
        ) from None
    size = path.stat().st_size
    for tensor in reader.tensors:
        end = int(tensor.data_offset) + int(tensor.n_bytes)
        if end > size:
            raise ValueError(
                f"{path.name} is truncated: tensor {tensor.name} needs bytes up to {end:,} but the file has {size:,}; fetch it again."
            )
    return reader


def read_metadata(reader: Any) -> dict[str, Any]:
    """The header's key/value pairs as plain Python values (strings, numbers, lists).

    The four big tokenizer arrays come back as lists too; ``summarize`` leaves them out.
    """
    meta = {}
    for key, field in reader.fields.items():
        if key.startswith("GGUF."):
            continue
        value = field.contents()
        meta[key] = value.tolist() if isinstance(value, np.ndarray) else value
    return meta


def summarize(meta: dict[str, Any]) -> dict[str, Any]:
    """The metadata without the tokenizer's big arrays (their lengths instead): fit to print."""
    return {k: (f"<{len(v)} entries>" if k in _BIG_ARRAYS else v) for k, v in meta.items()}


def tensor_kinds(reader: Any) -> Counter:
    """How many tensors of each type (``Counter({'Q4_1': 210, 'F32': 61, 'Q8_0': 1})``)."""
    return Counter(t.tensor_type.name for t in reader.tensors)


def check_supported(reader: Any, path_name: str = "the file") -> None:
    """Raise ``ValueError`` if the architecture or any tensor type is one the course does not build."""
    arch = reader.fields["general.architecture"].contents() if "general.architecture" in reader.fields else None
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(
            f"{path_name} holds a {arch!r} model; the course builds {', '.join(map(repr, SUPPORTED_ARCHITECTURES))} "
            "models from GGUF (SmolLM2, Llama)."
        )
    for tensor in reader.tensors:
        if tensor.tensor_type.name not in SUPPORTED_TYPES:
            raise ValueError(
                f"{path_name}: tensor {tensor.name} is {tensor.tensor_type.name}, a quantization type the course does not "
                f"dequantize; supported: {', '.join(SUPPORTED_TYPES)}."
            )


def torch_shape(tensor: Any) -> tuple[int, ...]:
    """The PyTorch shape of a GGUF tensor: its dimensions reversed (GGUF lists the fastest first)."""
    return tuple(int(n) for n in reversed(tensor.shape.tolist()))


def raw_bytes(tensor: Any) -> torch.Tensor:
    """The tensor's bytes in the file as a flat ``uint8`` tensor (a copy; the file stays untouched)."""
    data = np.ascontiguousarray(tensor.data).reshape(-1).view(np.uint8)
    return torch.from_numpy(data.copy())


def read_tensor(tensor: Any) -> torch.Tensor:
    """One GGUF tensor dequantized to float32 in PyTorch's shape (see :func:`torch_shape`)."""
    return dequantize(raw_bytes(tensor), tensor.tensor_type.name).reshape(torch_shape(tensor))


def config_from_gguf(meta: dict[str, Any], has_output: bool) -> SLMConfig:
    """An ``SLMConfig`` from the header's hyper-parameters (never from constants).

    ``has_output``: the file has its own ``output.weight`` (else the embeddings are tied).
    """
    arch = meta.get("general.architecture")
    if arch not in SUPPORTED_ARCHITECTURES:
        raise ValueError(f"GGUF architecture {arch!r} is not supported; the course builds {', '.join(SUPPORTED_ARCHITECTURES)}.")

    def need(key: str) -> Any:
        full = f"{arch}.{key}"
        if full not in meta:
            raise ValueError(f"The GGUF header has no {full!r}, which SLM needs to build the model.")
        return meta[full]

    d_model, n_heads = int(need("embedding_length")), int(need("attention.head_count"))
    vocab = meta.get(f"{arch}.vocab_size") or len(meta.get("tokenizer.ggml.tokens", ()))
    rope_dims = meta.get(f"{arch}.rope.dimension_count", d_model // n_heads)
    if rope_dims != d_model // n_heads:
        raise ValueError(f"RoPE over {rope_dims} of {d_model // n_heads} head dimensions is not supported by SLM.")
    return SLMConfig(
        vocab_size=int(vocab), context_length=int(need("context_length")), d_model=d_model,
        n_layers=int(need("block_count")), n_heads=n_heads,
        n_kv_heads=int(meta.get(f"{arch}.attention.head_count_kv", n_heads)),
        d_ff=int(need("feed_forward_length")), norm="rmsnorm", positions="rope", mlp="swiglu",
        tie_embeddings=not has_output, norm_eps=float(need("attention.layer_norm_rms_epsilon")),
        rope_theta=float(meta.get(f"{arch}.rope.freq_base", 10_000.0)),
        name=str(meta.get("general.name", arch)),
    )
