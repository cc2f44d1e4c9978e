"""Hardware, precision and memory for deployment (chapter 10).

- :func:`hardware_report`: the device (``slm_course.device.pick_device``), the CPU's vector capability
  (``torch.backends.cpu.get_cpu_capability()``: ``AVX2``, ``AVX512``, …) and which reduced precisions
  run fast here. On an AVX2-only CPU bfloat16 matrix multiplies are emulated, dozens of times slower
  than float32 (benchmarks/README.md has measured rates); AVX-512 BF16 and AMX CPUs, CUDA GPUs and Apple's
  MPS run them natively. float16 likewise needs hardware: AVX512-FP16 or AMX-FP16 on x86, the ARMv8.2 FP16
  extension on Arm (every Apple silicon chip has it); elsewhere a CPU converts it to float32 and back.
  The course never runs a slow path by default.
- :func:`matmul_gflops`: measure it (a ``benchmarks``-style timing; never used in an assertion).
- :func:`deployment_memory` extends chapter 3's ``slm_course.model.counting`` from weights to a whole
  run: weights + KV cache + activations at a batch size and context length, per precision;
  :func:`what_fits` compares that with typical devices.
"""
from __future__ import annotations

import os
import platform
import sys
import time
from typing import Any

import torch

from slm_course.device import pick_device
from slm_course.model.config import SLMConfig
from slm_course.model.counting import GiB, PRECISION_BYTES, count_parameters, kv_cache_bytes

# Chapter 3's table plus fp16 (same size as bf16: 2 bytes, a 5-bit exponent instead of 8).
BYTES = {**PRECISION_BYTES, "fp16": 2.0}
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Memory budgets (GiB) of devices a small model might be deployed on: what is left for the model.
DEVICES_GIB: dict[str, float] = {
    "phone (8 GiB, ~3 usable)": 3.0,
    "Raspberry Pi 5 (8 GiB)": 7.0,
    "laptop, 16 GiB RAM": 14.0,
    "laptop GPU, 8 GiB": 8.0,
    "RTX 4090, 24 GiB": 24.0,
    "H100, 80 GiB": 80.0,
}


def cpu_capability() -> str:
    """PyTorch's name for this CPU's widest vector instructions: ``"AVX2"``, ``"AVX512"``, ``"DEFAULT"``…"""
    return str(torch.backends.cpu.get_cpu_capability())


def cpu_flags() -> set[str]:
    """The CPU feature flags the operating system reports: the ``flags`` line of Linux's ``/proc/cpuinfo`` on
    x86, its ``Features`` line on Arm (``fphp``, ``asimdhp``, …); an empty set where there is no such file."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _is_arm(machine: str | None) -> bool:
    return (machine if machine is not None else platform.machine()).lower() in ("aarch64", "arm64")


def bf16_native_on_cpu(capability: str | None = None, flags: set[str] | None = None) -> bool:
    """True when this CPU multiplies bfloat16 in hardware: PyTorch's capability is AVX-512 and the CPU
    has ``avx512_bf16`` or ``amx_bf16`` (where the flags cannot be read, AVX-512 alone is taken as yes).

    ``capability`` and ``flags`` default to this machine's (:func:`cpu_capability`, :func:`cpu_flags`)."""
    capability = capability if capability is not None else cpu_capability()
    if not capability.startswith(("AVX512", "AMX")):
        return False
    flags = cpu_flags() if flags is None else flags
    return not flags or bool(flags & {"avx512_bf16", "amx_bf16"})


def fp16_native_on_cpu(capability: str | None = None, flags: set[str] | None = None,
                       machine: str | None = None, os_name: str | None = None) -> bool:
    """True when this CPU computes in float16 in hardware, so a float16 matrix multiply need not go through
    float32: on x86, PyTorch's capability is AVX-512 and the CPU has ``avx512_fp16`` or ``amx_fp16``; on Arm
    (``machine`` ``aarch64``/``arm64``), the ARMv8.2 FP16 extension (flags ``fphp`` and ``asimdhp``; on macOS,
    where there are no flags to read, yes: every Apple silicon chip has it). Unreadable flags on x86 mean no.

    The arguments default to this machine's (:func:`cpu_capability`, :func:`cpu_flags`, ``platform.machine()``,
    ``sys.platform``); tests pass them to check each CPU kind."""
    flags = cpu_flags() if flags is None else flags
    if _is_arm(machine):
        if not flags:
            return (os_name if os_name is not None else sys.platform) == "darwin"
        return {"fphp", "asimdhp"} <= flags
    capability = capability if capability is not None else cpu_capability()
    return capability.startswith(("AVX512", "AMX")) and bool(flags & {"avx512_fp16", "amx_fp16"})


def fast_precisions(device: torch.device | str | None = None) -> list[str]:
    """The precisions whose matrix multiplies run at full speed on ``device`` (default: the course's).

    Always ``fp32`` first. CUDA: ``fp16``, and ``bf16`` when ``torch.cuda.is_bf16_supported()``. MPS: ``fp16``.
    CPU: ``bf16`` only with AVX-512 BF16 or AMX (:func:`bf16_native_on_cpu`; AVX2 emulates it), ``fp16`` only
    with AVX512-FP16/AMX-FP16 or Arm's FP16 extension (:func:`fp16_native_on_cpu`).
    """
    device = torch.device(device) if device is not None else pick_device()
    if device.type == "cuda":
        return ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    if device.type == "mps":
        return ["fp32", "fp16"]
    return ["fp32"] + (["bf16"] if bf16_native_on_cpu() else []) + (["fp16"] if fp16_native_on_cpu() else [])


def hardware_report() -> dict[str, Any]:
    """What this machine offers: device, CPU capability, cores PyTorch uses, fast precisions."""
    device = pick_device()
    return {"device": device.type, "cpu_capability": cpu_capability(), "threads": torch.get_num_threads(),
            "cpu_count": os.cpu_count(), "fast_precisions": fast_precisions(device)}


def matmul_gflops(precision: str = "fp32", size: int = 512, repeats: int = 5, device: str = "cpu") -> float:
    """Measured GFLOP/s of a ``size × size`` matrix multiply at ``precision`` (best of ``repeats``)."""
    if precision not in _DTYPES:
        raise ValueError(f"precision must be one of {', '.join(_DTYPES)}, got {precision!r}.")
    g = torch.Generator().manual_seed(0)
    a = torch.randn(size, size, generator=g).to(device=device, dtype=_DTYPES[precision])
    b = torch.randn(size, size, generator=g).to(device=device, dtype=_DTYPES[precision])
    a @ b  # warm up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def activation_bytes(config: SLMConfig, *, batch: int = 1, context: int = 2048, precision: str = "fp32",
                     all_logits: bool = False) -> float:
    """Bytes of the largest activations alive at once in a forward pass over ``context`` tokens:
    the residual stream and a normalised copy (2·d_model), queries/keys/values (d_model + 2·kv width),
    the feed-forward hidden (2·d_ff for SwiGLU's gate and up, d_ff for GELU), per token, plus the
    float32 logits — of the last position only when generating (``all_logits=False``), of every position
    when scoring a text. Fused attention keeps no T × T matrix, so none is counted."""
    kv_width = config.n_kv_heads * config.head_dim
    hidden = (2 if config.mlp == "swiglu" else 1) * config.d_ff
    per_token = 3 * config.d_model + 2 * kv_width + hidden
    logits = batch * (context if all_logits else 1) * config.vocab_size * 4
    return batch * context * per_token * BYTES[precision] + logits


def deployment_memory(config: SLMConfig, precision: str = "fp32", *, batch: int = 1, context: int = 2048,
                      kv_precision: str | None = None) -> dict[str, float]:
    """Bytes a run needs: ``weights`` (parameters × bytes at ``precision``), ``kv_cache`` (``batch`` × ``context``
    tokens at ``kv_precision``), ``activations`` (:func:`activation_bytes`) and their ``total``.

    The assumptions, which the chapter states beside its table: the KV cache is kept at ``kv_precision``,
    by default the weights' own precision for float weights and 16 bits (``bf16``) for int8/int4 weights
    (a weight-only quantized runtime such as llama.cpp keeps its cache in 16 bits by default); activations
    are at the weights' precision for float weights and float32 for int8/int4 weights (weight-only layers
    compute in float32)."""
    if precision not in BYTES:
        raise ValueError(f"precision must be one of {', '.join(BYTES)}, got {precision!r}.")
    kv_precision = kv_precision or (precision if precision in _DTYPES else "bf16")
    act_precision = precision if precision in _DTYPES else "fp32"
    weights = count_parameters(config) * BYTES[precision]
    kv = kv_cache_bytes(config, context, batch=batch, precision="bf16") * BYTES[kv_precision] / BYTES["bf16"]
    act = activation_bytes(config, batch=batch, context=context, precision=act_precision)
    return {"weights": weights, "kv_cache": kv, "activations": act, "total": weights + kv + act}


def what_fits(config: SLMConfig, *, batch: int = 1, context: int = 2048,
              precisions: tuple[str, ...] = ("fp32", "bf16", "int8", "int4"),
              devices: dict[str, float] | None = None) -> list[dict[str, Any]]:
    """One row per precision: total GiB and, per device in ``devices`` (default ``DEVICES_GIB``), whether it fits."""
    devices = devices or DEVICES_GIB
    rows = []
    for precision in precisions:
        total = deployment_memory(config, precision, batch=batch, context=context)["total"] / GiB
        rows.append({"precision": precision, "GiB": total, **{name: total <= gib for name, gib in devices.items()}})
    return rows
