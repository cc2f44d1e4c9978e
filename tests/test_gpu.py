"""The course's code on a CUDA GPU: each chapter's model-facing functions with the model on the GPU.

The course never needs a GPU, and CI has none: every test here is skipped without CUDA. A learner with one
gets ``pick_device() == cuda`` from chapter 1 on, so each function that builds token ids, caches, masks or
counts next to a model has to build them on the model's device. These tests run those functions with the
model on the GPU, token ids and batches given as the chapters give them (on the CPU), and compare with the
same model on the CPU. Run them where CUDA is available:

    python -m pytest tests/test_gpu.py -m gpu
"""
from __future__ import annotations

import copy

import pytest
import torch

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none here)")]

from slm_course.model import SLM, SLMConfig  # noqa: E402

LLAMA = dict(vocab_size=101, context_length=48, d_model=48, n_layers=3, n_heads=6, n_kv_heads=2, d_ff=80,
             norm="rmsnorm", positions="rope", mlp="swiglu", tie_embeddings=True, qkv_bias=False, bias=False)
GPT2 = dict(vocab_size=101, context_length=48, d_model=48, n_layers=2, n_heads=4, d_ff=96)
CUDA = torch.device("cuda")


@pytest.fixture(autouse=True)
def exact_float32():
    """Full float32 matrix products on the GPU (no TF32), so GPU and CPU logits agree to 1e-4."""
    matmul, cudnn = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = matmul, cudnn


def pair(kind=LLAMA, seed=0):
    """The same random model twice: on the CPU and on the GPU, both in eval mode."""
    torch.manual_seed(seed)
    cpu = SLM(SLMConfig(**kind)).eval()
    return cpu, copy.deepcopy(cpu).to(CUDA).eval()


def ids(n=2, t=20, seed=1, vocab=101):
    return torch.randint(0, vocab, (n, t), generator=torch.Generator().manual_seed(seed))


class Chars:
    """A character tokenizer over the tiny models' 101 ids (which text comes back does not matter here)."""

    def encode(self, text):
        return [ord(c) % 101 for c in text]

    def decode(self, ids):
        return "".join(chr(32 + i % 90) for i in ids)


def test_device_choice_and_report():
    from slm_course.deploy.hardware import fast_precisions, hardware_report, matmul_gflops
    from slm_course.device import environment_report, model_device, pick_device

    assert pick_device().type == "cuda"
    assert torch.cuda.get_device_name(0) in environment_report()
    report = hardware_report()
    assert report["device"] == "cuda" and report["fast_precisions"][0] == "fp32"
    assert "fp16" in fast_precisions("cuda")
    assert ("bf16" in fast_precisions("cuda")) == torch.cuda.is_bf16_supported()
    assert matmul_gflops("fp32", device="cuda") > 0
    assert model_device(pair()[1]).type == "cuda"


@pytest.mark.parametrize("kind", [LLAMA, GPT2], ids=["llama", "gpt2"])
def test_forward_matches_cpu(kind):
    cpu, gpu = pair(kind)
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.to(CUDA)).cpu(), cpu(x), atol=1e-4, rtol=1e-4)


def test_generate_with_cache_matches_cpu_and_no_cache():
    from slm_course.generate import generate, generate_text

    cpu, gpu = pair()
    prompt = ids(1, 6)
    on_gpu = generate(gpu, prompt.to(CUDA), 20)
    assert on_gpu.device.type == "cuda"
    assert torch.equal(on_gpu, generate(gpu, prompt.to(CUDA), 20, use_cache=False))
    assert torch.equal(on_gpu.cpu(), generate(cpu, prompt, 20))
    sampled = [generate(gpu, prompt.to(CUDA), 12, temperature=0.9, top_k=20, seed=3) for _ in range(2)]
    assert torch.equal(*sampled)  # the seed's own generator lives on the GPU

    assert generate_text(gpu, Chars(), "hello", 8) == generate_text(cpu, Chars(), "hello", 8)


def test_compiled_decode_on_gpu_gives_the_eager_tokens():
    from slm_course.generate import generate

    _, gpu = pair()
    prompt = ids(1, 6).to(CUDA)
    assert torch.equal(generate(gpu, prompt, 16, compile=True), generate(gpu, prompt, 16))


def test_bfloat16_model_generates_on_gpu():
    from slm_course.generate import KVCache, generate

    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bfloat16")
    _, gpu = pair()
    gpu = gpu.to(torch.bfloat16)
    cache = KVCache.for_model(gpu, 1, 16)
    assert cache.keys[0].dtype == torch.bfloat16 and cache.keys[0].device.type == "cuda"
    out = generate(gpu, ids(1, 6).to(CUDA), 10)
    assert out.shape == (1, 16) and int(out.max()) < LLAMA["vocab_size"]


def test_training_on_gpu_then_resuming_on_the_cpu(tmp_path):
    from slm_course.train import TrainConfig, train
    from slm_course.train.metrics import token_batches

    batches = token_batches(torch.arange(3000) % 37, 8, 24, seed=0)

    def interrupted(i):
        if i == 7:
            raise KeyboardInterrupt  # the learner stops the run during step 7
        return batches(i)

    config = TrainConfig(max_steps=12, lr=3e-3, warmup_steps=2, progress=False, checkpoint_dir=str(tmp_path / "run"),
                         checkpoint_every=6)
    cpu, gpu = pair()
    with pytest.raises(KeyboardInterrupt):
        train(gpu, interrupted, config)
    assert next(gpu.parameters()).device.type == "cuda"
    # The CPU copy resumes the GPU's step-6 checkpoint (weights and AdamW state move to the CPU) and finishes.
    resumed = train(cpu, batches, config)
    assert resumed.step == list(range(12))
    straight_model, _ = pair()
    straight = train(straight_model, batches, TrainConfig(**{**config.to_dict(), "checkpoint_dir": None}))
    assert resumed.train_loss == pytest.approx(straight.train_loss, abs=2e-3)
    assert resumed.train_loss[-1] < resumed.train_loss[0]


def test_bits_per_byte_and_scoring_on_gpu():
    from slm_course.evaluate.scoring import loglikelihood_one, loglikelihood_shared
    from slm_course.train.metrics import bits_per_byte

    cpu, gpu = pair()

    class Bytes:
        def encode(self, text):
            return [b % 101 for b in text.encode()]

        def decode(self, ids):
            return bytes(ids).decode(errors="replace")

    text = "To be, or not to be, that is the question. " * 3
    assert bits_per_byte(gpu, Bytes(), text) == pytest.approx(bits_per_byte(cpu, Bytes(), text), abs=1e-4)
    context, options = [5, 6, 7, 8], [[9, 10], [11], [12, 13, 14]]
    for (score_gpu, greedy_gpu), (score_cpu, greedy_cpu) in zip(loglikelihood_shared(gpu, context, options),
                                                                 loglikelihood_shared(cpu, context, options)):
        assert score_gpu == pytest.approx(score_cpu, abs=1e-3) and greedy_gpu == greedy_cpu
    assert loglikelihood_one(gpu, context, [9, 10])[0] == pytest.approx(loglikelihood_one(cpu, context, [9, 10])[0], abs=1e-3)


def test_classifier_on_gpu():
    from slm_course.finetune import classify as C

    torch.manual_seed(0)
    cpu = C.add_classification_head(SLM(SLMConfig(**LLAMA))).eval()
    gpu = copy.deepcopy(cpu).to(CUDA)
    rows, mask = C.pad_batch([[3, 4, 5, 6], [7, 8], [9, 10, 11]], 0, max_length=8)
    labels = torch.tensor([0, 1, 1])
    torch.testing.assert_close(C.classification_logits(gpu, rows, mask).cpu(), C.classification_logits(cpu, rows, mask),
                               atol=1e-4, rtol=1e-4)
    assert C.evaluate(gpu, rows, mask, labels)["accuracy"] == C.evaluate(cpu, rows, mask, labels)["accuracy"]
    hidden = C.cached_hidden(gpu, rows, 2, attention_mask=mask)
    torch.testing.assert_close(hidden, C.cached_hidden(cpu, rows, 2, attention_mask=mask), atol=1e-4, rtol=1e-4)
    top = C.TopBlocks(gpu, 2)
    torch.testing.assert_close(C.classification_logits(top, hidden, mask).cpu(), C.classification_logits(cpu, rows, mask),
                               atol=1e-4, rtol=1e-4)
    labelled = C.classify(gpu, lambda t: [1 + ord(c) % 100 for c in t], ["win a prize now", "see you at lunch"])
    assert labelled == C.classify(cpu, lambda t: [1 + ord(c) % 100 for c in t], ["win a prize now", "see you at lunch"])


def test_lora_on_gpu_trains_and_merges():
    from slm_course.finetune.lora import apply_lora, merge_lora

    _, gpu = pair()
    apply_lora(gpu, r=4)
    x = ids().to(CUDA)
    gpu.train()
    loss = gpu(x).logsumexp(-1).mean()
    loss.backward()
    trained = [p for p in gpu.parameters() if p.requires_grad]
    assert trained and all(p.grad is not None and p.device.type == "cuda" for p in trained)
    with torch.no_grad():
        for p in trained:
            p.add_(0.05 * torch.randn_like(p))
        gpu.eval()
        before = gpu(x)
        merge_lora(gpu)
        torch.testing.assert_close(gpu(x), before, atol=1e-4, rtol=1e-4)


def test_preference_and_instruction_helpers_on_gpu():
    from slm_course.finetune.dpo import preference_accuracy, sequence_logprobs
    from slm_course.finetune.fuse import fused_targets
    from slm_course.finetune.instruct import answer, generate_examples

    cpu, gpu = pair()
    _, reference = pair(seed=1)
    inputs = ids(4, 12)
    labels = inputs.clone()
    labels[:, :5] = -100
    torch.testing.assert_close(sequence_logprobs(gpu, inputs, labels).cpu(), sequence_logprobs(cpu, inputs, labels),
                               atol=1e-3, rtol=1e-4)
    assert preference_accuracy(gpu, reference, (inputs, labels)).loss.device.type == "cuda"
    fused = fused_targets([gpu, reference], inputs.to(CUDA), labels.to(CUDA), method="min_ce")
    assert fused.shape == (4, 12, 101) and fused.device.type == "cuda"

    examples = generate_examples(3, seed=0)
    long_cpu, long_gpu = pair({**LLAMA, "context_length": 320})  # room for the Alpaca prompts
    assert answer(long_gpu, Chars(), examples, max_new_tokens=6) == answer(long_cpu, Chars(), examples, max_new_tokens=6)


def test_merging_gpu_state_dicts():
    from slm_course.finetune.merge import merge_state_dicts

    gpu_sds = [pair(seed=seed)[1].state_dict() for seed in (0, 1, 2)]  # a base and two "finetunes"
    cpu_sds = [{k: v.cpu() for k, v in sd.items()} for sd in gpu_sds]
    for method, params in (("linear", {}), ("task_arithmetic", {}), ("ties", {"density": 0.5}), ("slerp", {"t": 0.3})):
        merged = merge_state_dicts(method, gpu_sds[0], gpu_sds[1:], **params)
        expected = merge_state_dicts(method, cpu_sds[0], cpu_sds[1:], **params)
        for key, value in merged.items():
            assert value.device.type == "cuda", (method, key)
            torch.testing.assert_close(value.cpu(), expected[key], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_model_on_gpu(bits):
    from slm_course.generate import generate
    from slm_course.quantize.layers import quantize_model

    cpu, _ = pair()
    quantized, exact = copy.deepcopy(cpu), copy.deepcopy(cpu)
    quantize_model(quantized, bits=bits, group_size=16)  # as chapter 10 does, on the CPU (d_model 48: groups of 16)
    # The reference multiplies by the dequantized weights in float32, as the GPU does: the CPU's own weight-only
    # kernels take bfloat16 activations (kernel_activation_dtype) and round differently.
    quantize_model(exact, bits=bits, group_size=16, use_kernel=False)
    gpu = copy.deepcopy(quantized).to(CUDA)
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(gpu(x.to(CUDA)).cpu(), exact(x), atol=1e-4, rtol=1e-4)
    assert generate(gpu, x[:1, :6].to(CUDA), 8).shape == (1, 14)


def test_hugging_face_export_from_gpu(tmp_path):
    transformers = pytest.importorskip("transformers")
    from slm_course.weights import save_hf

    cpu, gpu = pair()
    save_hf(gpu, tmp_path / "out")
    theirs = transformers.AutoModelForCausalLM.from_pretrained(str(tmp_path / "out")).eval()
    x = ids()
    with torch.no_grad():
        torch.testing.assert_close(theirs(x).logits, cpu(x), atol=1e-4, rtol=1e-4)


def test_ddp_on_the_gpu_matches_one_cpu_process(tmp_path):
    """chapter 4's DistributedDataParallel script on a GPU (backend nccl, one process) makes the updates of
    the plain loop on the CPU."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from slm_course.train import TrainConfig, train
    from slm_course.train.ddp import synthetic_setup

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "1",
                          "-m", "slm_course.train.ddp", "--synthetic", "--steps", "3", "--lr", "3e-3",
                          "--dump", str(tmp_path)], capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    model, batches = synthetic_setup()
    train(model, batches, TrainConfig(max_steps=3, lr=3e-3, warmup_steps=0, progress=False))
    on_gpu = torch.load(tmp_path / "rank0.pt")
    for name, value in model.state_dict().items():
        torch.testing.assert_close(on_gpu[name], value, rtol=1e-3, atol=1e-4)
