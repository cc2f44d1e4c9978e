"""Deployment (chapter 10): hardware and memory, compression, GGUF export, serving with llama.cpp.

- ``slm_course.deploy.hardware``: device, CPU capability, fast precisions, the memory calculator.
- ``slm_course.deploy.compress``: magnitude pruning, structured pruning, low-rank factorisation, distillation.
- ``slm_course.deploy.export``: ``export_gguf(model, path, "Q8_0")`` (F16 / Q8_0 / Q4_0).
- ``slm_course.deploy.serve``: ``llama_server(path)`` (llama.cpp's OpenAI-compatible server) and ``complete``.
"""
from __future__ import annotations

from slm_course.deploy.compress import (
    count_nonzero, distill, distillation_loss, low_rank, low_rank_factors, magnitude_prune, prune_mlp_units,
)
from slm_course.deploy.export import check_exportable, export_gguf, gguf_tensors
from slm_course.deploy.hardware import (
    BYTES, DEVICES_GIB, activation_bytes, bf16_native_on_cpu, cpu_capability, deployment_memory, fast_precisions,
    fp16_native_on_cpu, hardware_report, matmul_gflops, what_fits,
)
from slm_course.deploy.serve import complete, free_port, llama_cpp_available, llama_server

__all__ = [
    "count_nonzero", "distill", "distillation_loss", "low_rank", "low_rank_factors", "magnitude_prune",
    "prune_mlp_units", "check_exportable", "export_gguf", "gguf_tensors", "BYTES", "DEVICES_GIB",
    "activation_bytes", "bf16_native_on_cpu", "cpu_capability", "deployment_memory", "fast_precisions",
    "fp16_native_on_cpu", "hardware_report",
    "matmul_gflops", "what_fits", "complete", "free_port", "llama_cpp_available", "llama_server",
]
