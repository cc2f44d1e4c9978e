"""Benchmark (chapter 4): the course's pretraining recipe against a nanoGPT-recipe baseline, and the
training loop's throughput against ``transformers``' GPT-2.

1. **Same wall-clock time, same split.** Both models train on the Shakespeare training works
   (``slm_course.data.shakespeare_splits``) for ``--seconds`` each and are scored on the validation works
   in bits per UTF-8 byte (``slm_course.train.metrics.bits_per_byte``), so a character model and a BPE
   model are compared in the same unit.

   - *course*: the recipe of ``slm_course.train.pretrained`` — the ``tiny`` preset (GPT-2 layout,
     128 wide, 4 layers, tied), the course BPE (2,048 ids), batch 8 × 256, AdamW lr 3e-3 with warmup
     and cosine to 3e-4, betas (0.9, 0.95), decay 0.1 on matrices, clipping at 1.0.
   - *baseline*: nanoGPT's published CPU recipe for Shakespeare (README, "I only have a macbook"):
     characters, 4 layers × 4 heads × 128 wide, context 64, batch 12, lr 1e-3 (warmup 100, cosine to
     1e-4, betas (0.9, 0.99), decay 0.1, clipping 1.0: its ``train_shakespeare_char`` config), no dropout,
     no biases — built with the course's own ``SLM`` and trained by the same loop.

   Each run's step count is fitted to the time: a short timed run measures steps per second, then the
   schedule is planned over ``seconds × steps/s`` steps (so warmup and cosine end where the time does).
   Prints both validation bits per byte, their ratio (baseline / course: above 1 means the course wins)
   and the seconds each run actually took.

2. **Throughput.** ``slm_course.train.train`` on the ``tiny`` shape against a plain training step of
   ``transformers``' ``GPT2LMHeadModel`` of the same shape and weights (converted with
   ``slm_course.model.hf.slm_from_hf``), same batches, same AdamW (``make_optimizer``), same clipping, in
   alternating timed rounds; prints tokens/s of each and the ratio (target ≥ 1.1).

    python benchmarks/pretrain_vs_baseline.py [--seconds 120] [--throughput-steps 30] [--rounds 3]
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
import torch.nn.functional as F

from slm_course.data import shakespeare_splits
from slm_course.device import environment_report, set_seed
from slm_course.model import SLM, SLMConfig
from slm_course.train.loop import TrainConfig, clip_grad_norm, lr_at, make_optimizer, train
from slm_course.train.metrics import bits_per_byte, token_batches
from slm_course.train.pretrained import recipe, train_config
from slm_course.widgets.attention import CharacterTokenizer

CALIBRATION_STEPS = 8


def course_setup(train_text: str):
    """The course recipe: model, tokenizer, batches, and a TrainConfig factory for a step count."""
    from slm_course.tokenizers import course_bpe

    r = recipe()
    tokenizer = course_bpe()
    batches = token_batches(tokenizer.encode(train_text), r["batch_size"], r["context_length"], seed=r["data_seed"])

    def model() -> SLM:
        set_seed(r["seed"])
        return SLM(SLMConfig.from_name(r["preset"]))

    def config(steps: int) -> TrainConfig:
        return train_config(steps, warmup_steps=min(r["warmup_steps"], steps // 10))

    return model, tokenizer, batches, config, r["batch_size"] * r["context_length"]


def baseline_setup(train_text: str, val_text: str):
    """nanoGPT's CPU Shakespeare recipe (characters), written with the course's SLM and loop."""
    tokenizer = CharacterTokenizer(train_text + val_text)  # nanoGPT's vocabulary: every character of the text
    batches = token_batches(tokenizer.encode(train_text), 12, 64, seed=0)

    def model() -> SLM:
        set_seed(0)
        return SLM(SLMConfig(vocab_size=tokenizer.vocab_size, context_length=64, d_model=128, n_layers=4, n_heads=4,
                             norm="layernorm", positions="learned", mlp="gelu", tie_embeddings=True, dropout=0.0,
                             qkv_bias=False, bias=False, name="nanogpt-cpu-recipe"))

    def config(steps: int) -> TrainConfig:
        return TrainConfig(max_steps=steps, lr=1e-3, min_lr=1e-4, warmup_steps=min(100, steps // 10), weight_decay=0.1,
                           betas=(0.9, 0.99), grad_clip=1.0, seed=0, progress=False)

    return model, tokenizer, batches, config, 12 * 64


def run_for(seconds: float, setup, val_text: str, eval_tokens: int | None = None) -> dict[str, float]:
    """Calibrate steps/s, train for about ``seconds`` with the schedule planned over that many steps, score."""
    make_model, tokenizer, batches, make_config, tokens_per_step = setup
    probe = make_model()
    train(probe, batches, make_config(2))  # warm-up: first-call costs out of the calibration
    start = time.perf_counter()
    train(probe, batches, make_config(CALIBRATION_STEPS))
    steps_per_s = CALIBRATION_STEPS / (time.perf_counter() - start)
    steps = max(20, int(seconds * steps_per_s))
    model = make_model()
    start = time.perf_counter()
    history = train(model, batches, make_config(steps))
    elapsed = time.perf_counter() - start
    bpb = bits_per_byte(model, tokenizer, val_text, max_tokens=eval_tokens)
    return {"steps": steps, "seconds": elapsed, "tokens": steps * tokens_per_step, "val_bpb": bpb,
            "params": sum(p.numel() for p in model.parameters()), "final_loss": statistics.fmean(history.train_loss[-20:])}


def throughput(steps: int, rounds: int) -> dict[str, float]:
    """Tokens/s of the course loop and of a transformers GPT-2 step on the same shape, weights and batches."""
    from transformers import GPT2Config, GPT2LMHeadModel

    from slm_course.model.hf import slm_from_hf

    shape = SLMConfig.from_name("tiny")
    r = recipe()
    B, T = r["batch_size"], r["context_length"]
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=shape.n_layers, n_embd=shape.d_model, n_head=shape.n_heads,
                                    vocab_size=shape.vocab_size, n_positions=shape.context_length, resid_pdrop=0.0,
                                    embd_pdrop=0.0, attn_pdrop=0.0, tie_word_embeddings=True,
                                    bos_token_id=shape.vocab_size - 1, eos_token_id=shape.vocab_size - 1))
    ours = slm_from_hf(hf)
    data = torch.randint(0, shape.vocab_size, (200_000,), generator=torch.Generator().manual_seed(0))
    batches = token_batches(data, B, T, seed=0)
    config = train_config(steps, warmup_steps=0)
    with torch.no_grad():  # same weights: the same loss on the first batch
        x, y = batches(0)
        hf_loss = F.cross_entropy(hf(input_ids=x).logits.flatten(0, 1), y.flatten())
        our_loss = F.cross_entropy(ours(x).flatten(0, 1), y.flatten())
        assert torch.allclose(hf_loss, our_loss, atol=1e-4), (float(hf_loss), float(our_loss))

    def course_round() -> float:
        model = copy.deepcopy(ours)
        start = time.perf_counter()
        train(model, batches, config)
        return time.perf_counter() - start

    def hf_round() -> float:
        model = copy.deepcopy(hf).train()
        start = time.perf_counter()
        optimizer = make_optimizer(model, config)
        params = [p for g in optimizer.param_groups for p in g["params"]]
        for step in range(steps):
            for group in optimizer.param_groups:
                group["lr"] = lr_at(step, config)
            x, y = batches(step)
            logits = model(input_ids=x).logits
            loss = F.cross_entropy(logits.flatten(0, 1), y.flatten())
            loss.backward()
            clip_grad_norm(params, config.grad_clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            float(loss.detach())  # the course loop reads the loss every step too
        return time.perf_counter() - start

    course_round(), hf_round()  # warm-up
    t_course, t_hf = [], []
    for _ in range(rounds):  # alternate, so a slow patch of the machine hits both
        t_course.append(course_round())
        t_hf.append(hf_round())
    tokens = steps * B * T
    result = {"course_tokens_per_s": tokens / statistics.median(t_course), "hf_tokens_per_s": tokens / statistics.median(t_hf)}
    result["ratio"] = result["course_tokens_per_s"] / result["hf_tokens_per_s"]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="wall-clock training time of each recipe")
    parser.add_argument("--throughput-steps", type=int, default=30, help="optimizer steps per timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds of each (median)")
    parser.add_argument("--skip-race", action="store_true", help="only the throughput comparison")
    args = parser.parse_args()
    print(environment_report(), flush=True)
    if not args.skip_race:
        train_text, val_text = shakespeare_splits()
        print(f"1. same wall-clock time ({args.seconds:.0f} s each), trained on the Shakespeare training works, "
              f"scored on the validation works ({len(val_text.encode('utf-8')):,} bytes):", flush=True)
        rows = {}
        for name, setup in (("course", course_setup(train_text)), ("baseline", baseline_setup(train_text, val_text))):
            rows[name] = run_for(args.seconds, setup, val_text)
            r = rows[name]
            print(f"  {name:<8}: {r['params']:>9,} params, {r['steps']:>5} steps, {r['tokens']:>10,} tokens in "
                  f"{r['seconds']:6.1f} s, final train loss {r['final_loss']:.3f}, validation {r['val_bpb']:.3f} bits/byte",
                  flush=True)
        ratio = rows["baseline"]["val_bpb"] / rows["course"]["val_bpb"]
        print(f"  baseline / course bits per byte = {ratio:.3f}  (above 1: the course recipe wins)")
    t = throughput(args.throughput_steps, args.rounds)
    print(f"2. training throughput, tiny shape (batch {recipe()['batch_size']} x {recipe()['context_length']}), "
          f"{args.throughput_steps} steps per round, median of {args.rounds}:")
    print(f"  slm_course.train      : {t['course_tokens_per_s']:9,.0f} tokens/s")
    print(f"  transformers GPT-2    : {t['hf_tokens_per_s']:9,.0f} tokens/s")
    print(f"  course / transformers = {t['ratio']:.2f}x  (target >= 1.1)")


if __name__ == "__main__":
    main()
