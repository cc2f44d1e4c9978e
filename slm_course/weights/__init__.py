"""Real pretrained weights in the course's own model (chapter 6).

``smollm2()`` gives SmolLM2-135M-Instruct (from the course's GGUF asset, dequantized and cached);
``load_gguf(path)`` builds an ``SLM`` from any Llama-architecture GGUF file; ``load_hf_folder`` and
``save_hf`` read and write Hugging Face safetensors folders (GPT-2 and Llama families); the
``dequantize_*`` functions are the course's readable GGUF dequantizers.

>>> from slm_course.weights import smollm2
>>> model, tokenizer = smollm2()  # doctest: +SKIP
"""
from __future__ import annotations

from slm_course.weights.dequantize import (
    dequantize,
    dequantize_f16,
    dequantize_f32,
    dequantize_q4_0,
    dequantize_q4_1,
    dequantize_q8_0,
)
from slm_course.weights.hf_files import from_hub, load_hf_folder, save_hf
from slm_course.weights.gguf_load import load_gguf, permute_rows, unpermute_rows
from slm_course.weights.smollm2 import smollm2, smollm2_gguf_path
from slm_course.weights.tokenizer import GGUFTokenizer

__all__ = [
    "smollm2", "smollm2_gguf_path", "save_hf", "load_hf_folder", "from_hub", "load_gguf", "GGUFTokenizer", "permute_rows", "unpermute_rows",
    "dequantize", "dequantize_q4_0", "dequantize_q4_1", "dequantize_q8_0", "dequantize_f16", "dequantize_f32",
]
