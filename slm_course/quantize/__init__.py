"""Quantization (chapter 10): quantizers, GGUF block formats, int8/int4 layers, quantization-aware training.

>>> import torch
>>> from slm_course.quantize import absmax_quantize
>>> absmax_quantize(torch.tensor([[0.5, -1.0, 0.25, 1.0]]), bits=8).q
tensor([[  64, -127,   32,  127]], dtype=torch.int8)
"""
from __future__ import annotations

from slm_course.quantize.basic import (
    Quantized,
    absmax_quantize,
    blocks,
    dequantize,
    minmax_quantize,
    pack_int4,
    quantize,
    reconstruction_error,
    unpack_int4,
    zeropoint_quantize,
)
from slm_course.quantize.gguf_blocks import (
    BLOCK,
    BYTES_PER_BLOCK,
    q8_0_block,
    quantize_block,
    quantize_q4_0,
    quantize_q4_1,
    quantize_q8_0,
    round_half_away,
)
from slm_course.quantize.layers import (
    FusedKernelCall,
    Int4Linear,
    Int8Linear,
    QuantizedEmbedding,
    compiled_int8_uses_loop,
    fuse_kernel_calls,
    int4_kernel_available,
    int8_kernel_available,
    memory_bytes_in_use,
    quantize_model,
    weight_bytes,
)
from slm_course.quantize.metrics import mean_nll, perplexity
from slm_course.quantize.qat import (
    FakeQuantEmbedding,
    FakeQuantLinear,
    convert_qat,
    fake_quantize,
    prepare_qat,
    straight_through,
)

__all__ = [
    "Quantized", "absmax_quantize", "zeropoint_quantize", "minmax_quantize", "quantize", "dequantize", "blocks", "pack_int4",
    "unpack_int4", "reconstruction_error", "BLOCK", "BYTES_PER_BLOCK", "quantize_q8_0", "quantize_q4_0",
    "quantize_q4_1", "quantize_block", "q8_0_block", "round_half_away", "Int8Linear", "Int4Linear",
    "FusedKernelCall", "fuse_kernel_calls", "QuantizedEmbedding", "quantize_model", "weight_bytes", "memory_bytes_in_use", "int8_kernel_available",
    "compiled_int8_uses_loop", "int4_kernel_available", "mean_nll", "perplexity", "fake_quantize", "straight_through", "FakeQuantLinear",
    "FakeQuantEmbedding", "prepare_qat", "convert_qat",
]
