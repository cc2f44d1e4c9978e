"""Chapter 10's figures in one run: SmolLM2-135M at fp32, int8 and int4 — size, perplexity, decode speed.

    .venv/bin/python benchmarks/quantization.py [--tokens 2048] [--new-tokens 64] [--no-llama] [--no-compile]

Prints one table: linear-weight bytes and the ratio to fp32, perplexity on held-out Shakespeare
(``--tokens`` tokens, windows of 256) and its change, decode tokens/s with the KV cache
(``slm_course.generate.generate``, greedy, ``--new-tokens`` after a 32-token prompt; the prompt's prefill
timed apart and left out, for llama.cpp too) and the ratio to fp32; the same decoding with its steps
through ``torch.compile`` (``generate(compile=True)``: fp32, int8, int4 g32 and ``quantize_dynamic``, the compiling
timed apart); then the library references: ``torch.ao.quantization.quantize_dynamic`` (int8; compared eager with
eager, and each at its fastest: the faster of its eager and compiled rates) and llama.cpp
(``llama-cpp-python``: F16 and Q8_0 files exported by ``slm_course.deploy.export_gguf``, and the asset's own Q4_1
file) on the same threads (each in a child process, so a llama.cpp crash is reported, not fatal); then the serving
check (llama.cpp's OpenAI-compatible server, same greedy tokens as SLM reading the same F16 file). Size targets
(issue 13): int8 ≥ 3.5× smaller within 1 % perplexity, int4 (group 32) ≥ 6× within 10 %. Speed targets (issue 29),
printed last as ratios with the CPU capability (PyTorch's vector code: AVX2, AVX512, ...), each model at its
fastest (the faster of eager and compiled): int8 ≥ 2× fp32 and ≥ 1.0× quantize_dynamic, ≥ 0.5× llama.cpp Q8_0;
int4 ≥ 0.5× llama.cpp Q4_1; compiled int8 ≥ 1.3× eager int8 (where compiling int8 is not faster on a CPU kind,
``generate(compile=True)`` keeps the eager int8 kernel there: ``slm_course.quantize.compiled_int8_uses_loop``).
Timings on a machine that other work also loads are noisy: rerun on an idle one before quoting them.
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn


def linear_bytes(model: nn.Module) -> int:
    """Bytes of the stored linear layers (float weights+biases, or the int layers' saved buffers), a tied head once."""
    from slm_course.quantize import Int4Linear, Int8Linear

    seen, total = set(), 0
    for module in model.modules():
        if isinstance(module, nn.Linear):
            tensors = [module.weight] + ([module.bias] if module.bias is not None else [])
        elif isinstance(module, (Int8Linear, Int4Linear)):
            tensors = [b for n, b in module.named_buffers(recurse=False) if n not in module._non_persistent_buffers_set]
        else:
            continue
        for t in tensors:
            if t is not None and t.data_ptr() not in seen:
                seen.add(t.data_ptr())
                total += t.numel() * t.element_size()
    return total


def where_tokens_part(model: nn.Module, prompt: torch.Tensor, eager: list[int], compiled: list[int]) -> str:
    """Where two greedy continuations first differ, and how far apart the eager model's top two logits are there
    (a near-tie that float rounding decides, or a real difference)."""
    step = next(i for i, (a, b) in enumerate(zip(eager, compiled)) if a != b)
    with torch.no_grad():
        logits = model(torch.cat([prompt, torch.tensor([eager[:step]], dtype=prompt.dtype)], dim=1))[0, -1]
    top = logits.float().topk(2).values
    return f"from {step + 1} (gap {float(top[0] - top[1]):.2f})"


@contextlib.contextmanager
def quiet_dynamo():
    """Silence dynamo's recompile warnings (quantize_dynamic's graph breaks make a page of them) for a block."""
    import logging

    dynamo_log = logging.getLogger("torch._dynamo")
    level = dynamo_log.level
    dynamo_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        dynamo_log.setLevel(level)


def decode_speed(model: nn.Module, prompt: torch.Tensor, new_tokens: int, compile: bool = False) -> tuple[float, list[int]]:
    """Decode tokens/s, prefill left out (``slm_course.generate.decode_speed``; ``compile``: the steps through
    ``torch.compile``, its compiling left out too), and the tokens."""
    from slm_course.generate import decode_speed as rate

    with torch.no_grad():
        speed, out = rate(model, prompt, new_tokens, compile=compile)
    return speed, out[0].tolist()


def llama_speed_in_child(path: Path, prompt_ids: list[int], new_tokens: int, threads: int) -> float | str:
    """:func:`llama_speed` in a child process, so a crash of llama.cpp (e.g. an illegal instruction from a
    build whose CPU features this machine lacks) is reported instead of ending the benchmark."""
    import json
    import subprocess
    import sys

    code = ("import json, sys; sys.path.insert(0, %r); from quantization import llama_speed; "
            "print(json.dumps(llama_speed(*json.loads(sys.argv[1]))[0]))" % str(Path(__file__).parent))
    result = subprocess.run([sys.executable, "-c", code, json.dumps([str(path), prompt_ids, new_tokens, threads])],
                            capture_output=True, text=True)
    if result.returncode != 0:
        return f"crashed (exit code {result.returncode}{', illegal instruction' if result.returncode in (-4, 132) else ''})"
    return float(result.stdout.strip().splitlines()[-1])


def llama_speed(path: Path, prompt_ids: list[int], new_tokens: int, threads: int) -> tuple[float, list[int]]:
    """llama.cpp's decode tokens/s on ``path``: tokens after the first over the time after the first arrived
    (the prompt's prefill left out, as ``slm_course.generate.decode_speed`` does); best of 3."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_threads=threads, n_ctx=512, verbose=False, seed=0)
    best, tokens = 0.0, []
    for _ in range(3):
        llm.reset()
        tokens, first = [], None
        for token in llm.generate(prompt_ids, top_k=1, temp=0.0, repeat_penalty=1.0):
            tokens.append(token)
            if first is None:
                first = time.perf_counter()
            if len(tokens) == new_tokens:
                break
        best = max(best, (new_tokens - 1) / (time.perf_counter() - first))
    return best, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2048, help="held-out tokens for perplexity")
    parser.add_argument("--new-tokens", type=int, default=64, help="generated tokens per speed run")
    parser.add_argument("--no-llama", action="store_true", help="skip llama.cpp even when installed")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile decode rows")
    args = parser.parse_args()

    from slm_course.data import shakespeare_splits
    from slm_course.deploy import export_gguf, llama_cpp_available
    from slm_course.deploy.hardware import hardware_report
    from slm_course.generate import generate
    from slm_course.quantize import perplexity, quantize_model
    from slm_course.weights import smollm2, smollm2_gguf_path

    torch.manual_seed(0)
    from slm_course.quantize import compiled_int8_uses_loop

    report = hardware_report()
    capability = torch.backends.cpu.get_cpu_capability()
    product = "Inductor's loop (int8_product)" if compiled_int8_uses_loop() else "PyTorch's int8 kernel"
    print(f"machine: CPU capability {capability}, {report['threads']} threads; "
          f"torch {torch.__version__}; compiled int8 layers multiply with {product}")
    base, tokenizer = smollm2()
    _, val_text = shakespeare_splits()
    ids = tokenizer.encode(val_text[:40_000])[: args.tokens + 1]
    prompt = torch.tensor([ids[:32]])

    variants = {"fp32": base}
    for name, bits, group in [("int8 (Int8Linear)", 8, None), ("int4 g32 (Int4Linear)", 4, 32), ("int4 g64 (Int4Linear)", 4, 64)]:
        model = copy.deepcopy(base)
        quantize_model(model, bits, group_size=group or 32)
        variants[name] = model
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        variants["int8 quantize_dynamic"] = torch.ao.quantization.quantize_dynamic(copy.deepcopy(base), {nn.Linear}, dtype=torch.qint8)

    rows, base_ppl, base_bytes, base_speed = [], None, None, None
    for name, model in variants.items():
        ppl = perplexity(model, ids, context_length=256)
        speed, tokens = decode_speed(model, prompt, args.new_tokens)
        size = linear_bytes(model) if "dynamic" not in name else None
        if name == "fp32":
            base_ppl, base_bytes, base_speed, base_tokens = ppl, size, speed, tokens
        rows.append((name, size, ppl, speed, tokens))
    print(f"\n{'model':24} {'linear MiB':>10} {'× smaller':>9} {'perplexity':>10} {'Δ ppl':>7} {'tok/s':>7} {'× fp32':>7}")
    for name, size, ppl, speed, _ in rows:
        size_text = f"{size / 2**20:10.1f} {base_bytes / size:9.2f}" if size else f"{'-':>10} {'-':>9}"
        print(f"{name:24} {size_text} {ppl:10.3f} {100 * (ppl / base_ppl - 1):+6.2f}% {speed:7.1f} {speed / base_speed:7.2f}")
    print("(SmolLM2's file stores its matrices as Q4_1 in groups of 32, the grid Int4Linear uses: int4 g32 is exact on them "
          "and its loss is the tied embedding/output matrix's; g64 shows what coarser groups cost.)")
    speeds = {name: speed for name, _, _, speed, _ in rows}
    print(f"\nInt8Linear vs quantize_dynamic, both eager: {speeds['int8 (Int8Linear)'] / speeds['int8 quantize_dynamic']:.2f}×")

    compiled = {}
    if not args.no_compile:  # the same models, each decode step through torch.compile (generate(compile=True))
        print(f"\n{'compiled decode':24} {'tok/s':>7} {'× eager':>8} {'same tokens':>18} {'compiling s':>12}")
        for name, _, _, speed, tokens in rows:
            if name not in ("fp32", "int8 (Int8Linear)", "int4 g32 (Int4Linear)", "int8 quantize_dynamic"):
                continue
            start = time.perf_counter()
            try:
                with torch.no_grad(), quiet_dynamo():
                    generate(variants[name], prompt, 2, compile=True)  # the first compiled step compiles
                    seconds = time.perf_counter() - start
                    compiled[name], compiled_tokens = decode_speed(variants[name], prompt, args.new_tokens, compile=True)
            except Exception as error:  # noqa: BLE001 - a library model that does not compile is a result, not a crash
                print(f"{name:24} does not compile: {type(error).__name__}: {str(error).splitlines()[0][:80]}")
                continue
            same = "True" if compiled_tokens == tokens else where_tokens_part(variants[name], prompt, tokens, compiled_tokens)
            print(f"{name:24} {compiled[name]:7.1f} {compiled[name] / speed:8.2f} {same:>18} {seconds:12.1f}")
        print("(Eager, PyTorch's int8 kernel rounds activations and outputs to bfloat16; compiled, Int8Linear does too where it "
              "keeps the kernel, and multiplies float32 activations with AVX-512 code (int8_product). Logits that tie "
              "exactly can then part greedy tokens.)")
        # The library reference at its own fastest: quantize_dynamic's layers break torch.compile's graph at every
        # call (dynamo then recompiles per block and gives up), so compiled it may well be slower than eager.
        reference = max(speeds["int8 quantize_dynamic"], compiled.get("int8 quantize_dynamic", 0.0))
        ours = max(speeds["int8 (Int8Linear)"], compiled.get("int8 (Int8Linear)", 0.0))
        print(f"\nInt8Linear vs quantize_dynamic, each at its fastest (Int8Linear {ours:.1f}, quantize_dynamic "
              f"{reference:.1f} tok/s): {ours / reference:.2f}× (target >= 1.0)")

    llama: dict[str, float] = {}
    if args.no_llama or not llama_cpp_available():
        print("llama.cpp: not run (llama-cpp-python[server] not installed: make serve-extra)")
    else:
        with tempfile.TemporaryDirectory() as folder:
            paths = {kind: export_gguf(base, Path(folder) / f"smollm2-{kind}.gguf", kind, tokenizer_from=smollm2_gguf_path())
                     for kind in ("F16", "Q8_0")}
            paths["Q4_1"] = smollm2_gguf_path()  # the asset's own file: Q4_1 in groups of 32, Int4Linear's grid
            for kind, ours in [("F16", "fp32"), ("Q8_0", "int8 (Int8Linear)"), ("Q4_1", "int4 g32 (Int4Linear)")]:
                speed = llama_speed_in_child(paths[kind], ids[:32], args.new_tokens, report["threads"])
                if isinstance(speed, str):
                    print(f"llama.cpp {kind}: {speed}")
                    continue
                llama[kind] = speed
                line = f"llama.cpp {kind}: {speed:.1f} tok/s; {ours} / llama.cpp = {speeds[ours] / speed:.2f}×"
                if ours in compiled:
                    line += f" eager, {compiled[ours] / speed:.2f}× compiled"
                print(line)
            serving_check(paths["F16"], tokenizer)
    print_targets(capability, speeds, compiled, llama)


def fastest(name: str, speeds: dict[str, float], compiled: dict[str, float]) -> float:
    """A model's decode tokens/s at its fastest: the faster of its eager and compiled rates."""
    return max(speeds[name], compiled.get(name, 0.0))


def target_lines(capability: str, speeds: dict[str, float], compiled: dict[str, float],
                 llama: dict[str, float]) -> list[str]:
    """The speed targets as lines ``what: figure× (target ≥ t): pass|miss``, under a header naming the CPU capability;
    a target whose figures were not measured (llama.cpp not installed, compiling skipped) says so."""
    int8, int4 = "int8 (Int8Linear)", "int4 g32 (Int4Linear)"
    checks = [
        ("int8 / fp32, each at its fastest", fastest(int8, speeds, compiled), fastest("fp32", speeds, compiled), 2.0),
        ("int8 / quantize_dynamic, each at its fastest", fastest(int8, speeds, compiled),
         fastest("int8 quantize_dynamic", speeds, compiled), 1.0),
        ("int8 at its fastest / llama.cpp Q8_0", fastest(int8, speeds, compiled), llama.get("Q8_0"), 0.5),
        ("int4 at its fastest / llama.cpp Q4_1 (the asset's file)", fastest(int4, speeds, compiled), llama.get("Q4_1"), 0.5),
        ("int8 compiled / int8 eager", compiled.get(int8), speeds[int8], 1.3),
    ]
    lines = [f"speed targets, CPU capability {capability} (decode tok/s ratios, one run):"]
    for what, ours, reference, target in checks:
        if not ours or not reference:
            lines.append(f"  {what:56} not measured (target >= {target:.1f})")
            continue
        ratio = ours / reference
        lines.append(f"  {what:56} {ratio:5.2f}× (target >= {target:.1f}): {'pass' if ratio >= target else 'miss'}")
    return lines


def print_targets(capability: str, speeds: dict[str, float], compiled: dict[str, float], llama: dict[str, float]) -> None:
    print()
    print("\n".join(target_lines(capability, speeds, compiled, llama)))
    if capability != "AVX512":
        print("  (AVX-512 code not measured in this run: on an AVX-512 machine run this again, and once more with "
              "ATEN_CPU_CAPABILITY=avx2 for the AVX2 code path.)")


def serving_check(path: Path, tokenizer) -> None:
    """llama.cpp's server on loopback answers with the same greedy tokens as SLM reading the same file (F16:
    llama.cpp multiplies with float activations as SLM does; with Q8_0 it rounds them to 8 bits too)."""
    from slm_course.deploy import complete, llama_server
    from slm_course.generate import generate
    from slm_course.weights import load_gguf

    model, _ = load_gguf(path)
    prompt = "ROMEO:\nBut soft, what light through yonder window"
    ids = torch.tensor([tokenizer.encode(prompt)])
    with torch.no_grad():
        ours = tokenizer.decode(generate(model, ids, 16, temperature=0.0)[0, ids.shape[1]:].tolist())
    with llama_server(path) as url:
        theirs = complete(url, prompt, max_tokens=16)["choices"][0]["text"]
    print(f"serving (F16, 16 greedy tokens): {'same' if ours == theirs else 'DIFFERENT'}\n  SLM:       {ours!r}\n  llama.cpp: {theirs!r}")


if __name__ == "__main__":
    main()
