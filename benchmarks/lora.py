"""Benchmark (chapter 7): LoRA against full finetuning, and the course's LoRA against ``peft``'s.

On a Llama-style model of SmolLM2-135M's width (576, 9 heads, 3 KV heads; fewer layers and a smaller
vocabulary so it runs in seconds; random seeded weights), one AdamW training step on the same batch:

1. the course's ``SLM`` fully finetuned vs with LoRA (r=8, α=16, attention projections): seconds per
   step and training memory (parameters + gradients + AdamW state + activations autograd saved,
   counted tensor by tensor with ``saved_tensors_hooks``: the same on every run, unlike RSS);
2. the course's LoRA on ``SLM`` vs ``peft``'s LoRA on the ``transformers`` model with the same weights.

Prints ratios (> 1 means the first is slower / larger). Timings on a shared machine vary: take them as rough.

    python benchmarks/lora.py [--layers 4] [--batch 8] [--tokens 64] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch
import torch.nn.functional as F

from slm_course.device import environment_report
from slm_course.finetune.lora import apply_lora
from slm_course.model.hf import slm_from_hf

TARGETS_OURS, TARGETS_HF = ["q_proj", "k_proj", "v_proj", "out_proj"], ["q_proj", "k_proj", "v_proj", "o_proj"]


def hf_model(layers: int, vocab: int):
    import transformers

    config = transformers.LlamaConfig(vocab_size=vocab, hidden_size=576, intermediate_size=1536,
                                      num_hidden_layers=layers, num_attention_heads=9, num_key_value_heads=3,
                                      max_position_embeddings=256, tie_word_embeddings=True, bos_token_id=0,
                                      eos_token_id=0, pad_token_id=0)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config)


def step_runner(model, batch, logits_of):
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    x, y = batch[:, :-1], batch[:, 1:]
    saved = [0]

    def pack(t):
        saved[0] += t.numel() * t.element_size()
        return t

    def step(measure: bool = False) -> None:
        saved[0] = 0
        if measure:
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                loss = F.cross_entropy(logits_of(model, x).flatten(0, 1), y.flatten())
        else:
            loss = F.cross_entropy(logits_of(model, x).flatten(0, 1), y.flatten())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def memory() -> int:
        step(measure=True)
        unique = {id(p): p for p in model.parameters()}.values()
        weights = sum(p.numel() * p.element_size() for p in unique)
        trained = sum(p.numel() * p.element_size() for p in unique if p.requires_grad)
        return weights + trained * 3 + saved[0]  # + gradients + AdamW's two moments + activations

    return step, memory


def seconds_per_step(steps: list, repeats: int) -> list[float]:
    """Median seconds of each step function, run round-robin (ABCABC…) after a warm-up, so that load
    from other processes on a shared machine hits all alike."""
    times: list[list[float]] = [[] for _ in steps]
    for step in steps:
        step()  # warm-up
    for _ in range(repeats):
        for i, step in enumerate(steps):
            start = time.perf_counter()
            step()
            times[i].append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--vocab", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(environment_report())
    import peft

    batch = torch.randint(0, args.vocab, (args.batch, args.tokens + 1), generator=torch.Generator().manual_seed(0))
    ours_logits = lambda m, x: m(x)  # noqa: E731
    hf_logits = lambda m, x: m(input_ids=x).logits  # noqa: E731

    full = slm_from_hf(hf_model(args.layers, args.vocab)).train()
    lora = slm_from_hf(hf_model(args.layers, args.vocab)).train()
    apply_lora(lora, TARGETS_OURS, r=8, alpha=16)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = peft.get_peft_model(hf_model(args.layers, args.vocab),
                                     peft.LoraConfig(r=8, lora_alpha=16, target_modules=TARGETS_HF, lora_dropout=0.0))
    theirs.train()
    setups = (("course SLM, full finetuning", full, ours_logits), ("course SLM, LoRA r=8", lora, ours_logits),
              ("transformers + peft, LoRA r=8", theirs, hf_logits))
    runners = [step_runner(model, batch, logits_of) for _, model, logits_of in setups]
    seconds = seconds_per_step([step for step, _ in runners], args.repeats)
    rows = {}
    for (name, _, _), (_, memory), t in zip(setups, runners, seconds):
        rows[name] = (t, memory())
        print(f"{name:32s} {t * 1000:8.1f} ms/step   training memory {rows[name][1] / 2**20:7.1f} MiB")
    (t_full, m_full), (t_lora, m_lora), (t_peft, m_peft) = rows.values()
    print(f"full / LoRA: time {t_full / t_lora:.2f}x, memory {m_full / m_lora:.2f}x")
    print(f"course LoRA / peft LoRA: time {t_lora / t_peft:.2f}x, memory {m_lora / m_peft:.2f}x")


if __name__ == "__main__":
    main()
