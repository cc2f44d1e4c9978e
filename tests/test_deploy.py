"""Deployment: hardware report, memory calculator, compression demos, GGUF export read back by SLM,
transformers and llama.cpp's server."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from slm_course.deploy import (
    BYTES, activation_bytes, bf16_native_on_cpu, count_nonzero, deployment_memory, distill, distillation_loss,
    export_gguf, fast_precisions, fp16_native_on_cpu, hardware_report, llama_cpp_available, low_rank,
    low_rank_factors, magnitude_prune,
    prune_mlp_units, what_fits,
)
from slm_course.model import SLM, SLMConfig, count_parameters, kv_cache_bytes
from slm_course.quantize import mean_nll, weight_bytes


def llama_tiny(seed: int = 0, scale: float = 1.0) -> SLM:
    """A 2-layer random SmolLM2-layout model; ``scale`` multiplies its matrices (10: greedy decoding
    that wanders over the vocabulary instead of repeating one token)."""
    torch.manual_seed(seed)
    config = SLMConfig.from_name("smollm2-135m", n_layers=2, d_model=64, n_heads=4, n_kv_heads=2, d_ff=128,
                                 context_length=256)
    model = SLM(config).eval()
    with torch.no_grad():
        for param in model.parameters():
            if param.dim() == 2:
                param.mul_(scale)
    return model


def gpt_tiny(**kw) -> SLM:
    torch.manual_seed(0)
    return SLM(SLMConfig.from_name("tiny", n_layers=2, vocab_size=256, **kw)).eval()


# ---------------------------------------------------------------- hardware and memory
def test_hardware_report_and_precisions():
    report = hardware_report()
    assert report["device"] in ("cpu", "cuda", "mps") and report["fast_precisions"][0] == "fp32"
    assert report["cpu_capability"] == str(torch.backends.cpu.get_cpu_capability())
    if report["cpu_capability"] == "AVX2":
        assert fast_precisions("cpu") == ["fp32"]  # never a slow bf16 or fp16 path on AVX2
    cpu = fast_precisions("cpu")
    assert ("bf16" in cpu) == bf16_native_on_cpu() and ("fp16" in cpu) == fp16_native_on_cpu()


@pytest.mark.parametrize("capability, flags, machine, os_name, bf16, fp16", [
    ("AVX2", {"avx2", "f16c", "fma"}, "x86_64", "linux", False, False),          # F16C converts, it does not compute
    ("AVX512", {"avx512f", "avx512bw"}, "x86_64", "linux", False, False),       # AVX-512 without BF16/FP16
    ("AVX512", {"avx512f", "avx512_bf16"}, "x86_64", "linux", True, False),
    ("AVX512", {"avx512f", "avx512_bf16", "amx_bf16", "avx512_fp16"}, "x86_64", "linux", True, True),
    ("AVX512", {"avx512f", "amx_fp16"}, "x86_64", "linux", False, True),
    ("AVX2", {"avx2", "avx512_fp16"}, "x86_64", "linux", False, False),         # PyTorch not on its AVX-512 path
    ("AVX512", set(), "x86_64", "win32", True, False),                           # no flags to read
    ("DEFAULT", {"fp", "asimd", "fphp", "asimdhp"}, "aarch64", "linux", False, True),   # ARMv8.2 FP16
    ("DEFAULT", {"fp", "asimd"}, "aarch64", "linux", False, False),                     # ARMv8.0
    ("DEFAULT", set(), "arm64", "darwin", False, True),                                 # Apple silicon
])
def test_reduced_precisions_need_the_cpu_feature(capability, flags, machine, os_name, bf16, fp16):
    assert bf16_native_on_cpu(capability, flags) is bf16
    assert fp16_native_on_cpu(capability, flags, machine, os_name) is fp16


def test_cpu_flags_reads_x86_and_arm_cpuinfo(monkeypatch, tmp_path):
    import builtins

    import slm_course.deploy.hardware as hardware

    real_open = builtins.open
    for text, expected in [("processor\t: 0\nflags\t\t: fpu avx2 f16c\n", {"fpu", "avx2", "f16c"}),
                           ("processor\t: 0\nFeatures\t: fp asimd fphp asimdhp\n", {"fp", "asimd", "fphp", "asimdhp"})]:
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(text)
        redirect = lambda path, *a, **k: real_open(cpuinfo if path == "/proc/cpuinfo" else path, *a, **k)  # noqa: E731
        monkeypatch.setattr(builtins, "open", redirect)
        assert hardware.cpu_flags() == expected


def test_memory_calculator_extends_chapter_3():
    c = SLMConfig.from_name("smollm2-135m")
    m = deployment_memory(c, "bf16", batch=2, context=1024)
    assert m["weights"] == count_parameters(c) * 2
    assert m["kv_cache"] == kv_cache_bytes(c, 1024, batch=2, precision="bf16")
    assert m["activations"] == activation_bytes(c, batch=2, context=1024, precision="bf16")
    assert m["total"] == pytest.approx(m["weights"] + m["kv_cache"] + m["activations"])
    assert deployment_memory(c, "int4")["weights"] < deployment_memory(c, "int8")["weights"] < deployment_memory(c, "fp32")["weights"]
    assert deployment_memory(c, "fp32", context=4096)["kv_cache"] == 2 * deployment_memory(c, "fp32", context=2048)["kv_cache"]
    assert BYTES["fp16"] == 2.0
    rows = what_fits(SLMConfig.from_name("llama3-8b"), devices={"small": 8.0, "big": 80.0})
    fits = {r["precision"]: (r["small"], r["big"]) for r in rows}
    assert fits["fp32"] == (False, True) and fits["int4"] == (True, True)
    with pytest.raises(ValueError, match="precision"):
        deployment_memory(c, "fp8")


# ---------------------------------------------------------------- compression
def test_magnitude_pruning():
    model = gpt_tiny()
    pruned = magnitude_prune(model, 0.5)
    w, p = model.blocks[0].mlp.fc.weight, pruned.blocks[0].mlp.fc.weight
    assert (p == 0).float().mean().item() == pytest.approx(0.5, abs=0.01)
    kept = p != 0
    assert w[kept].abs().min() >= w[~kept].abs().max()  # the smallest went
    assert torch.equal(pruned.lm_head.weight, model.lm_head.weight)  # tied head skipped
    assert count_nonzero(pruned) < count_nonzero(model)
    with pytest.raises(ValueError, match="sparsity"):
        magnitude_prune(model, 1.0)


def test_structured_pruning_keeps_the_strongest_units():
    model = gpt_tiny()
    pruned = prune_mlp_units(model, 0.25)
    assert pruned.blocks[0].mlp.fc.out_features == 384 and pruned.blocks[0].mlp.proj.in_features == 384
    assert weight_bytes(pruned) < weight_bytes(model)
    ids = torch.randint(0, 256, (1, 10))
    assert pruned(ids).shape == model(ids).shape
    zero = prune_mlp_units(model, 0.0)
    torch.testing.assert_close(zero(ids), model(ids))
    llama = prune_mlp_units(llama_tiny(), 0.5)
    assert llama.blocks[0].mlp.gate.out_features == llama.blocks[0].mlp.down.in_features == 64


def test_low_rank():
    w = torch.randn(40, 30, generator=torch.Generator().manual_seed(0))
    B, A = low_rank_factors(w, 30)
    torch.testing.assert_close(B @ A, w, rtol=1e-4, atol=1e-4)
    errors = [torch.linalg.matrix_norm(w - torch.matmul(*low_rank_factors(w, r))).item() for r in (5, 15, 25)]
    assert errors[0] > errors[1] > errors[2]
    model = gpt_tiny()
    ids = torch.randint(0, 256, (1, 12))
    full = low_rank(model, 1.0)
    torch.testing.assert_close(full(ids), model(ids), rtol=1e-3, atol=1e-3)
    half = low_rank(model, 0.25)
    assert isinstance(half.blocks[0].attn.q_proj, nn.Sequential)
    assert weight_bytes(half) < weight_bytes(model)
    with pytest.raises(ValueError, match="rank"):
        low_rank_factors(w, 0)


def test_distillation_loss_and_a_student_that_learns():
    t = torch.randn(2, 5, 11)
    assert distillation_loss(t, t).abs().item() < 1e-6
    assert distillation_loss(torch.zeros_like(t), t).item() > 0
    teacher = gpt_tiny()
    student = SLM(SLMConfig.from_name("tiny", n_layers=1, d_model=64, n_heads=2, vocab_size=256)).eval()
    data = torch.randint(0, 256, (64, 33), generator=torch.Generator().manual_seed(0))
    batches = lambda i: data[(i * 8) % 64:(i * 8) % 64 + 8]
    losses = distill(teacher, student, batches, steps=30)
    assert len(losses) == 30 and sum(losses[-5:]) < sum(losses[:5])


# ---------------------------------------------------------------- export
@pytest.mark.parametrize("kind,tolerance", [("F16", 1e-3), ("Q8_0", 1e-2), ("Q4_0", 0.15)])
def test_export_reads_back_into_slm(tmp_path, kind, tolerance):
    from slm_course.weights import load_gguf

    model = llama_tiny()
    path = export_gguf(model, tmp_path / f"m-{kind}.gguf", kind)
    back, info = load_gguf(path)
    assert info["tensor_types"].get(kind, 0) == 2 * 7 + 1  # every matrix; the norms stay F32
    ids = torch.randint(0, model.config.vocab_size, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = model(ids)
        relative = ((back(ids) - reference).abs().max() / reference.abs().max()).item()
    assert relative < tolerance  # of the largest logit
    assert not list(tmp_path.glob("*.tmp"))


def test_export_refuses_gpt2_layout(tmp_path):
    with pytest.raises(ValueError, match="llama"):
        export_gguf(gpt_tiny(), tmp_path / "x.gguf")
    with pytest.raises(ValueError, match="kind"):
        export_gguf(llama_tiny(), tmp_path / "x.gguf", "Q5_K")


@pytest.mark.asset
@pytest.mark.slow
def test_export_read_by_transformers(tmp_path):
    """transformers (an independent GGUF reader) gives the same logits as SLM reading the same file."""
    from transformers import AutoModelForCausalLM

    from slm_course.weights import load_gguf, smollm2_gguf_path

    path = export_gguf(llama_tiny(), tmp_path / "m.gguf", "Q8_0", tokenizer_from=smollm2_gguf_path())
    ours, _ = load_gguf(path)
    theirs = AutoModelForCausalLM.from_pretrained(str(tmp_path), gguf_file="m.gguf").eval()
    ids = torch.randint(0, 49152, (1, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(theirs(ids).logits, ours(ids), rtol=1e-4, atol=1e-4)


@pytest.mark.asset
@pytest.mark.slow
def test_served_by_llama_cpp_gives_the_same_greedy_tokens(tmp_path):
    """F16: llama.cpp multiplies F16 weights with float activations, so its greedy path matches ours
    token for token. (With Q8_0 it also rounds the activations to 8 bits; on this random, chaotic model
    the paths part after ~9 tokens, so Q8_0 is checked on SmolLM2 in benchmarks/quantization.py.)"""
    kind = "F16"
    if not llama_cpp_available():
        pytest.skip("llama-cpp-python[server] is not installed (optional extra: make serve-extra)")
    from slm_course.deploy import complete, llama_server
    from slm_course.weights import load_gguf, smollm2_gguf_path
    from slm_course.weights.tokenizer import GGUFTokenizer

    path = export_gguf(llama_tiny(scale=10), tmp_path / "m.gguf", kind, tokenizer_from=smollm2_gguf_path())
    model, info = load_gguf(path)
    tokenizer = GGUFTokenizer.from_metadata(info["meta"])
    prompt = "To be, or not to be"
    ids = torch.tensor([tokenizer.encode(prompt)])
    with torch.no_grad():
        for _ in range(12):
            ids = torch.cat([ids, model(ids)[:, -1].argmax(-1, keepdim=True)], dim=1)
    new = ids[0, -12:].tolist()
    assert len(set(new)) > 2  # not a degenerate repetition: the check could fail
    with llama_server(path) as url:
        assert url.startswith("http://127.0.0.1:")
        response = complete(url, prompt, max_tokens=12)
    assert response["usage"]["completion_tokens"] == 12
    assert response["choices"][0]["text"] == tokenizer.decode(new)
