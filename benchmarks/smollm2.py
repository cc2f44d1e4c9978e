"""Benchmark (chapter 6): SmolLM2-135M-Instruct in slm_course against transformers, from the same GGUF file.

Prints, in one run:
1. Load time and peak memory (each loader in a fresh child process): ``slm_course.weights.smollm2()``
   from its float32 cache, ``slm_course.weights.load_gguf`` dequantizing the file, and
   ``transformers.AutoModelForCausalLM.from_pretrained(..., gguf_file=...)``.
2. Greedy decode tokens/s: ``SLM`` with its KV cache (``slm_course.generate.generate``) against
   ``transformers``' ``generate`` (ratio; target ≥ 1.0), and against the memory-bandwidth bound for
   float32 weights (read bandwidth measured here; each new token reads every weight once; target ≥ 50 %),
   and against the rate of PyTorch's own float32 matrix-vector products over the same weights, no other work;
   then the same decoding with each step's blocks through ``torch.compile`` (``generate(compile=True)``).
3. Logit differences against transformers: tiny random GPT-2, tiny random Llama, the real SmolLM2;
   tokenizer parity on the test strings; a few generated samples.

    python benchmarks/smollm2.py [--new-tokens 64] [--repeats 7] [--no-compile]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]

_LOADERS = {
    "slm_course smollm2() (float32 cache)": "from slm_course.weights import smollm2; m, t = smollm2()",
    "slm_course load_gguf (dequantize file)": "from slm_course.weights import load_gguf, smollm2_gguf_path; "
                                              "m, i = load_gguf(smollm2_gguf_path())",
    "transformers from_pretrained(gguf_file)": (
        "import torch, transformers; from slm_course.weights import smollm2_gguf_path; p = smollm2_gguf_path(); "
        "transformers.logging.set_verbosity_error(); transformers.utils.logging.disable_progress_bar(); "
        "m = transformers.AutoModelForCausalLM.from_pretrained(str(p.parent), gguf_file=p.name, dtype=torch.float32)"),
}


def load_in_child(code: str) -> tuple[float, float]:
    """(seconds, peak RSS MB) of running ``code`` in a fresh Python; imports are not timed."""
    imports = "import torch, transformers, gguf, safetensors, slm_course.weights"
    script = (f"import time, resource, json; {imports}\n_start = time.perf_counter()\n{code}\n"
              "print(json.dumps([time.perf_counter() - _start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3]))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT)
    seconds, peak = json.loads(out.stdout.strip().splitlines()[-1])
    return seconds, peak


def read_bandwidth(megabytes: int = 1024, repeats: int = 5) -> float:
    """Memory read bandwidth in GB/s: the best of ``repeats`` sums over a float32 tensor of ``megabytes``."""
    x = torch.ones(megabytes * 2**20 // 4)
    x.sum()
    best = min(_timed(lambda: x.sum()) for _ in range(repeats))
    return x.numel() * 4 / best / 1e9


def matvec_ceiling(model: torch.nn.Module, repeats: int = 5) -> float:
    """Tokens/s if a token cost nothing but its matrix-vector products: every ``nn.Linear`` of ``model``
    (read input-major, as ``generate`` reads them) applied to one row, with no other work; best of ``repeats``.
    It is the most any float32 PyTorch decoder of this model could reach on this machine."""
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    rows = {m: torch.randn(1, m.in_features) for m in linears}

    def one_token() -> None:
        for m in linears:
            m(rows[m])

    from slm_course.model.surgery import input_major_weights

    with torch.no_grad(), input_major_weights(model):
        one_token()
        return 1 / min(_timed(one_token) for _ in range(repeats))


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile decode line")
    args = parser.parse_args()

    import transformers

    from slm_course.device import environment_report
    from slm_course.generate import generate
    from slm_course.weights import smollm2, smollm2_gguf_path

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    print(environment_report())
    print(f"torch threads: {torch.get_num_threads()}\n")

    print("1. Load time and peak memory (fresh process each)")
    for label, code in _LOADERS.items():
        seconds, peak = load_in_child(code)
        print(f"   {label:42s} {seconds:6.2f} s   peak RSS {peak:6.0f} MB")

    model, tokenizer = smollm2()
    path = smollm2_gguf_path()
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                                  dtype=torch.float32).eval()

    print(f"\n2. Greedy decode, {args.new_tokens} new tokens after a chat prompt (median of {args.repeats})")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Tell me about the sea."}])
    idx = torch.tensor([tokenizer.encode(prompt)])

    def ours() -> torch.Tensor:
        return generate(model, idx, args.new_tokens)

    def theirs() -> torch.Tensor:
        return reference.generate(idx, attention_mask=torch.ones_like(idx), max_new_tokens=args.new_tokens,
                                  min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=2)

    with torch.no_grad():
        ours(), theirs()  # warm-up
        times_ours, times_theirs = [], []
        for _ in range(args.repeats):  # alternate, so load from other processes hits both alike
            times_ours.append(_timed(ours))
            times_theirs.append(_timed(theirs))
        eager_tokens = ours()[0, :idx.shape[1] + args.new_tokens]
        same = torch.equal(eager_tokens, theirs()[0])
    # Decode rate: the prompt's prefill is timed once separately and subtracted from both.
    with torch.no_grad():
        prefill = min(_timed(lambda: model(idx)) for _ in range(3))
    t_ours = statistics.median(times_ours) - prefill
    t_theirs = statistics.median(times_theirs) - prefill
    rate_ours, rate_theirs = args.new_tokens / t_ours, args.new_tokens / t_theirs
    bandwidth = read_bandwidth()
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied head counted once
    bound = bandwidth * 1e9 / weight_bytes
    print(f"   slm_course (KV cache)      {rate_ours:6.1f} tokens/s")
    print(f"   transformers generate      {rate_theirs:6.1f} tokens/s")
    print(f"   ratio slm_course / transformers: {rate_ours / rate_theirs:.2f} (target >= 1.0); same tokens: {same}")
    print(f"   read bandwidth {bandwidth:.1f} GB/s; fp32 weights {weight_bytes / 1e6:.0f} MB -> bound {bound:.1f} tokens/s;"
          f" slm_course reaches {100 * rate_ours / bound:.0f} % of it (target >= 50 %)")
    ceiling = matvec_ceiling(model)
    print(f"   PyTorch's own float32 matrix-vector products alone, every linear layer once per token: {ceiling:.1f} tokens/s"
          f" ({ceiling * weight_bytes / 1e9:.1f} GB/s);\n   slm_course reaches {100 * rate_ours / ceiling:.0f} % of that")
    if not args.no_compile:  # the same decoding, each step's blocks through torch.compile (generate(compile=True))
        from slm_course.generate import decode_speed
        with torch.no_grad():
            compiled, tokens = decode_speed(model, idx, args.new_tokens, compile=True)
        print(f"   compiled decode (generate(compile=True)) {compiled:6.1f} tokens/s: {compiled / rate_ours:.2f}x eager, "
              f"{compiled / rate_theirs:.2f}x transformers, {100 * compiled / bound:.0f} % of the bound; same tokens: "
              f"{torch.equal(tokens[0], eager_tokens[idx.shape[1]:])}")

    print("\n3. Parity with transformers")
    sys.path.insert(0, str(ROOT / "tests" / "weights"))
    from gguf_helpers import tiny_gpt2, tiny_llama
    from test_smollm2_asset import PROMPTS, parity_strings

    from slm_course.model.hf import slm_from_hf

    ids = torch.randint(0, 96, (2, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        for name, make in (("tiny GPT-2", tiny_gpt2), ("tiny Llama", tiny_llama)):
            ref = make()
            print(f"   {name:12s} max |logit difference| {(slm_from_hf(ref)(ids) - ref(ids).logits).abs().max():.2e}")
        worst = max((model(p) - reference(p).logits).abs().max().item()
                    for p in (torch.tensor([tokenizer.encode(s)]) for s in PROMPTS))
    print(f"   SmolLM2-135M max |logit difference| over {len(PROMPTS)} prompts: {worst:.2e}")
    ref_tok = transformers.AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    strings = parity_strings()
    equal = sum(tokenizer.encode(s) == ref_tok.encode(s) for s in strings)
    print(f"   tokenizer: {equal} / {len(strings)} strings give identical ids")

    print("\n4. Samples (greedy, chat template)")
    from slm_course.generate import generate_text

    for question in ("What is the capital of France?", "Name three fruits.", "What is 12 plus 7?"):
        text = tokenizer.apply_chat_template([{"role": "user", "content": question}])
        answer = generate_text(model, tokenizer, text, 40, eos_id=tokenizer.eos_id)
        print(f"   Q: {question}\n   A: {answer.strip()}")


if __name__ == "__main__":
    main()
