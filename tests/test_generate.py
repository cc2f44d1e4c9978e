"""Tests for slm_course.generate: the KV cache, the sampling filters and the decoding loop."""
from __future__ import annotations

import math

import pytest
import torch

from slm_course.generate import (
    KVCache, apply_temperature, decode_one_token, generate, generate_text, logits_to_probs, prefill,
    top_k_filter, top_p_filter,
)
from slm_course.model import SLM, SLMConfig

GPT2_STYLE = dict(norm="layernorm", positions="learned", mlp="gelu", n_kv_heads=4, tie_embeddings=True)
LLAMA_STYLE = dict(norm="rmsnorm", positions="rope", mlp="swiglu", n_kv_heads=2, tie_embeddings=True)


def small(style: dict, context: int = 32, seed: int = 0) -> SLM:
    torch.manual_seed(seed)
    config = SLMConfig.from_name("tiny", vocab_size=101, context_length=context, d_model=32, n_layers=2, n_heads=4, **style)
    return SLM(config).eval()


def uncached_greedy(model: SLM, idx: torch.Tensor, n: int) -> torch.Tensor:
    for _ in range(n):
        nxt = model(idx[:, -model.config.context_length:])[:, -1].argmax(-1, keepdim=True)
        idx = torch.cat([idx, nxt], 1)
    return idx


@pytest.mark.parametrize("style", [GPT2_STYLE, LLAMA_STYLE], ids=["gpt2", "llama"])
@pytest.mark.parametrize("batch", [1, 3])
def test_cached_generation_gives_the_same_tokens_as_uncached(style, batch):
    model = small(style)
    idx = torch.randint(0, 101, (batch, 5), generator=torch.Generator().manual_seed(1))
    cached = generate(model, idx, 20, use_cache=True)
    plain = generate(model, idx, 20, use_cache=False)
    assert cached.shape == (batch, 25)
    assert torch.equal(cached, plain)
    assert torch.equal(plain, uncached_greedy(model, idx, 20))
    sampled = [generate(model, idx, 20, temperature=1.0, top_k=20, top_p=0.9, seed=3, use_cache=c) for c in (True, False)]
    assert torch.equal(*sampled)


@pytest.mark.parametrize("style", [GPT2_STYLE, LLAMA_STYLE], ids=["gpt2", "llama"])
def test_cached_logits_equal_full_forward_and_cache_stores_kv_heads(style):
    model = small(style)
    idx = torch.randint(0, 101, (2, 12))
    cache = KVCache.for_model(model, batch_size=2)
    assert cache.keys[0].shape == (2, style["n_kv_heads"], 32, 8)
    first = model(idx[:, :7], cache=cache)
    assert cache.length == 7
    rest = [model(idx[:, t:t + 1], cache=cache) for t in range(7, 12)]
    assert cache.length == 12
    full = model(idx)
    torch.testing.assert_close(torch.cat([first] + rest, dim=1), full, atol=1e-5, rtol=1e-5)


def test_generation_past_the_context_matches_the_sliding_window():
    model = small(LLAMA_STYLE, context=16)
    idx = torch.randint(0, 101, (2, 6))
    assert torch.equal(generate(model, idx, 25), uncached_greedy(model, idx, 25))
    model = small(GPT2_STYLE, context=16)
    assert torch.equal(generate(model, idx, 25), uncached_greedy(model, idx, 25))


def test_cache_positions_beyond_the_context_raise_a_clear_error():
    model = small(LLAMA_STYLE, context=16)
    cache = KVCache.for_model(model, 1)
    model(torch.zeros(1, 16, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="beyond the model's context"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="longer than the model's context"):
        KVCache.for_model(model, 1, max_length=17)
    short = KVCache.for_model(model, 1, max_length=4)
    with pytest.raises(ValueError, match="larger max_length"):
        model(torch.zeros(1, 5, dtype=torch.long), cache=short)
    with pytest.raises(ValueError, match="holds 1 sequences but the input has 2"):
        model(torch.zeros(2, 1, dtype=torch.long), cache=KVCache.for_model(model, 1))


def test_truncate_clone_and_batch_expansion_score_continuations_of_one_prefix():
    model = small(LLAMA_STYLE)
    prefix = torch.randint(0, 101, (1, 6))
    options = torch.randint(0, 101, (3, 4))
    cache = KVCache.for_model(model, 1)
    model(prefix, cache=cache)
    expanded = cache.expand(3)
    assert expanded.batch_size == 3 and expanded.length == 6 and cache.batch_size == 1
    logits = model(options, cache=expanded)
    full = model(torch.cat([prefix.expand(3, -1), options], dim=1))[:, 6:]
    torch.testing.assert_close(logits, full, atol=1e-5, rtol=1e-5)
    # repeat_batch on a batch of 2 keeps each row's copies together
    two = KVCache.for_model(model, 2)
    model(torch.cat([prefix[:, :4], options[:1]], 0), cache=two)
    rep = two.repeat_batch(2)
    assert torch.equal(rep.keys[1][1, :, :4], two.keys[1][0, :, :4]) and torch.equal(rep.keys[1][2, :, :4], two.keys[1][1, :, :4])
    # clone is independent; truncate forgets the tail so another continuation can be tried
    copy = cache.clone()
    model(options[:1], cache=copy)
    assert copy.length == 10 and cache.length == 6
    a = model(options[:1], cache=cache)
    cache.truncate(6)
    b = model(options[:1], cache=cache)
    torch.testing.assert_close(a, b)
    with pytest.raises(ValueError, match="truncate"):
        cache.truncate(11)
    with pytest.raises(ValueError, match="repeat_batch"):
        KVCache.for_model(model, 2).expand(3)


def test_prefill_and_one_decode_step():
    model = small(GPT2_STYLE)
    idx = torch.randint(0, 101, (2, 5))
    cache = KVCache.for_model(model, 2)
    last = prefill(model, idx, cache)
    torch.testing.assert_close(last, model(idx)[:, -1])
    token = last.argmax(-1, keepdim=True)
    step = decode_one_token(model, token, cache)
    torch.testing.assert_close(step, model(torch.cat([idx, token], 1))[:, -1], atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="empty cache"):
        prefill(model, idx, cache)


def test_sampling_is_seeded_and_reproducible_with_its_own_generator():
    model = small(LLAMA_STYLE)
    idx = torch.randint(0, 101, (2, 4))
    a = generate(model, idx, 15, temperature=1.2, seed=7)
    torch.manual_seed(123)  # the global RNG does not matter
    b = generate(model, idx, 15, temperature=1.2, seed=7)
    c = generate(model, idx, 15, temperature=1.2, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_k_one_and_tiny_top_p_equal_greedy():
    model = small(GPT2_STYLE)
    idx = torch.randint(0, 101, (2, 4))
    g = generate(model, idx, 12)
    assert torch.equal(generate(model, idx, 12, temperature=1.0, top_k=1, seed=0), g)
    assert torch.equal(generate(model, idx, 12, temperature=1.0, top_p=1e-6, seed=0), g)


def test_stops_when_every_row_hit_eos_and_pads_finished_rows():
    model = small(GPT2_STYLE)
    idx = torch.randint(0, 101, (2, 4))
    free = generate(model, idx, 10)
    eos = int(free[0, 6])  # row 0 produces it as its 3rd new token
    out = generate(model, idx, 10, eos_id=eos)
    row0 = out[0, 4:].tolist()
    assert row0[: row0.index(eos) + 1] == free[0, 4:].tolist()[: row0.index(eos) + 1]
    assert all(t == eos for t in row0[row0.index(eos):])
    if eos not in free[1, 4:].tolist():
        assert out.shape[1] == 14
    both = generate(model, idx[:1], 10, eos_id=eos)
    assert both.shape[1] == 7 and int(both[0, -1]) == eos


class Chars:
    def encode(self, text):
        return [ord(c) - 32 for c in text]

    def decode(self, ids):
        return "".join(chr(i + 32) for i in ids)


def test_stop_string_with_a_tokenizer():
    model = small(GPT2_STYLE)
    tok = Chars()
    free = generate_text(model, tok, "hello", 12)
    assert len(free) == 12
    stop = free[3:5]
    cut = generate_text(model, tok, "hello", 12, stop=stop)
    assert cut == free[: free.index(stop)]
    out = generate(model, torch.tensor([tok.encode("hello")]), 12, stop=stop, tokenizer=tok)
    assert out.shape[1] == 5 + free.index(stop) + len(stop)
    with pytest.raises(ValueError, match="tokenizer"):
        generate(model, torch.tensor([tok.encode("hello")]), 3, stop="x")


def test_filters_by_hand_and_their_edges():
    logits = torch.tensor([[2.0, 1.0, 1.0, 0.0, -1.0]])
    assert torch.isinf(top_k_filter(logits, 2)).tolist() == [[False, False, False, True, True]]  # tie kept
    assert torch.equal(top_k_filter(logits, 5), logits) and torch.equal(top_k_filter(logits, None), logits)
    probs = torch.softmax(logits, -1)[0]  # ≈ .53 .20 .20 .07 .03
    kept = ~torch.isinf(top_p_filter(logits, 0.5))
    assert kept.tolist() == [[True, False, False, False, False]]
    kept = ~torch.isinf(top_p_filter(logits, float(probs[0]) + 0.01))
    assert kept.tolist() == [[True, True, True, False, False]]  # the tie with the last kept token stays
    assert torch.equal(top_p_filter(logits, 1.0), logits)
    for bad in (0, -0.1, 1.5, True):
        with pytest.raises(ValueError, match="top_p"):
            top_p_filter(logits, bad)
    for bad in (0, -2, 2.0, True):
        with pytest.raises(ValueError, match="top_k"):
            top_k_filter(logits, bad)
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(logits, 0)
    with pytest.raises(TypeError, match="logits"):
        top_k_filter(torch.tensor([1, 2]), 1)
    p = logits_to_probs(logits, temperature=0.5, top_k=3)
    torch.testing.assert_close(p.sum(-1), torch.ones(1))
    assert p[0, 3] == 0 and p[0, 0] > torch.softmax(logits, -1)[0, 0]


def test_filters_equal_transformers_warpers():
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(0)) * 3
    ids = torch.zeros(4, 1, dtype=torch.long)
    for k in (1, 7, 50):
        assert torch.equal(top_k_filter(logits, k), TopKLogitsWarper(k)(ids, logits.clone()))
    for p in (0.1, 0.5, 0.9, 0.99):
        assert torch.equal(torch.isinf(top_p_filter(logits, p)), torch.isinf(TopPLogitsWarper(p)(ids, logits.clone())))
    torch.testing.assert_close(apply_temperature(logits, 0.7), TemperatureLogitsWarper(0.7)(ids, logits.clone()))


def test_bad_arguments_are_explained():
    model = small(GPT2_STYLE)
    idx = torch.zeros(1, 3, dtype=torch.long)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, idx, -1)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, idx, 2, temperature=-1)
    with pytest.raises(TypeError, match="token ids"):
        generate(model, [[1, 2]], 2)
    assert torch.equal(generate(model, idx, 0), idx)
    assert model.training is False
    model.train()
    generate(model, idx, 2)
    assert model.training is True


def test_min_p_equals_transformers_and_one_step_attention_equals_the_model_path():
    from transformers.generation.logits_process import MinPLogitsWarper

    from slm_course.attention import scaled_dot_product
    from slm_course.generate import attend_one_step, min_p_filter, perplexity_from_losses

    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(0)) * 3
    ids = torch.zeros(4, 1, dtype=torch.long)
    for m in (0.01, 0.1, 0.5):
        assert torch.equal(torch.isinf(min_p_filter(logits, m)), torch.isinf(MinPLogitsWarper(m)(ids, logits.clone())))
    with pytest.raises(ValueError, match="min_p"):
        min_p_filter(logits, 1.5)
    q, kn, vn = (torch.randn(2, 3, 1, 4) for _ in range(3))
    kp, vp = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    out, k_all, v_all = attend_one_step(q, kn, vn, kp, vp)
    assert k_all.shape == (2, 3, 6, 4)
    full_q = torch.cat([torch.randn(2, 3, 5, 4), q], dim=-2)
    torch.testing.assert_close(out, scaled_dot_product(full_q, k_all, v_all, causal=True)[:, :, -1:])
    assert perplexity_from_losses([0.0, 0.0]) == 1.0
    assert perplexity_from_losses([1.0, 3.0]) == pytest.approx(math.exp(2.0))
    with pytest.raises(ValueError):
        perplexity_from_losses([])


def test_decode_speed_leaves_the_prefill_out_and_returns_the_greedy_tokens():
    from slm_course.generate import decode_speed

    torch.manual_seed(0)
    model = SLM(SLMConfig(vocab_size=64, context_length=32, d_model=32, n_layers=1, n_heads=2, d_ff=64)).eval()
    prompt = torch.tensor([[5, 6, 7]])
    rate, ids = decode_speed(model, prompt, 5, repeats=2)
    assert rate > 0 and torch.equal(ids, generate(model, prompt, 5)[:, 3:])
    with pytest.raises(ValueError, match="2 or more"):
        decode_speed(model, prompt, 1)


@pytest.mark.slow
def test_compiled_decoding_gives_the_eager_tokens_and_logits(monkeypatch):
    # chapter 10: generate(compile=True) runs the one-token steps through torch.compile-d blocks.
    from slm_course.generate import compiled_blocks, compiled_head
    from slm_course.generate import decode as decode_module
    from slm_course.quantize import quantize_model

    model = small(LLAMA_STYLE, context=48)
    quantized, int8 = small(LLAMA_STYLE, context=48), small(LLAMA_STYLE, context=48)
    quantize_model(quantized, 4, group_size=32)
    quantize_model(int8, 8)
    idx = torch.randint(0, 101, (2, 6), generator=torch.Generator().manual_seed(3))
    made = []

    def spy(compile_one):
        def wrapped(m):
            made.append((compile_one.__name__, m))
            return compile_one(m)
        return wrapped

    monkeypatch.setattr(decode_module, "compiled_blocks", spy(compiled_blocks))
    monkeypatch.setattr(decode_module, "compiled_head", spy(compiled_head))
    for m in (model, quantized, int8):
        assert torch.equal(generate(m, idx, 12, compile=True), generate(m, idx, 12))
    # the compiled blocks and output layer were used, once per call
    assert made == [(name, m) for m in (model, quantized, int8) for name in ("compiled_blocks", "compiled_head")]
    with torch.no_grad():  # one step's logits, compiled against eager: float rounding apart
        cache_a, cache_b = KVCache.for_model(model, 2, 10), KVCache.for_model(model, 2, 10)
        prefill(model, idx, cache_a), prefill(model, idx, cache_b)
        token = idx[:, -1:]
        torch.testing.assert_close(decode_one_token(model, token, cache_a, run_blocks=compiled_blocks(model),
                                                    run_head=compiled_head(model)),
                                   decode_one_token(model, token, cache_b), atol=1e-5, rtol=1e-5)
        assert cache_a.length == cache_b.length == 7
        torch.testing.assert_close(cache_a.keys[1][:, :, :7], cache_b.keys[1][:, :, :7], atol=1e-5, rtol=1e-5)
    assert generate(model, idx, 1, compile=True).shape == (2, 7)  # one token: the prefill alone, nothing compiled


@pytest.mark.slow
def test_alternating_compiled_models_never_recompiles(monkeypatch):
    # Chapter 10 decodes fp32, int8 and int4 models side by side, and learners re-run cells: each model structure
    # has its own compiled code, so switching back finds it without compiling. With dynamo allowed one graph per
    # compiled function, code shared between the models (one per class) would have to fall back to eager for
    # the second model: it would compile nothing there, and this test would fail at its first switch.
    from torch._dynamo.utils import counters

    from slm_course.generate import decode as decode_module
    from slm_course.generate import model_structure
    from slm_course.quantize import quantize_model

    monkeypatch.setattr(decode_module, "_COMPILED", {})  # nothing compiled yet, whatever ran before
    with torch._dynamo.config.patch(recompile_limit=1):
        fp32, int8 = small(LLAMA_STYLE, context=40), small(LLAMA_STYLE, context=40, seed=1)
        quantize_model(int8, 8)
        assert model_structure(fp32) != model_structure(int8)
        idx = torch.randint(0, 101, (1, 5), generator=torch.Generator().manual_seed(4))
        eager = {id(m): generate(m, idx, 6) for m in (fp32, int8)}
        compiled_graphs = []
        for m in (fp32, int8, fp32, int8):
            before = counters["stats"]["unique_graphs"]
            assert torch.equal(generate(m, idx, 6, compile=True), eager[id(m)])
            compiled_graphs.append(counters["stats"]["unique_graphs"] - before)
        assert compiled_graphs[0] > 0 and compiled_graphs[1] > 0  # the first of each compiles its own blocks and head
        assert compiled_graphs[2:] == [0, 0]  # switching back compiles nothing
        rebuilt = small(LLAMA_STYLE, context=40, seed=2)  # same structure, other weights: the same code serves
        before = counters["stats"]["unique_graphs"]
        assert torch.equal(generate(rebuilt, idx, 6, compile=True), generate(rebuilt, idx, 6))
        assert counters["stats"]["unique_graphs"] == before


def test_compiled_decoding_without_a_compiler_says_what_to_install(monkeypatch):
    from slm_course.generate import decode as decode_module

    monkeypatch.delenv("CXX", raising=False)
    monkeypatch.setattr(decode_module.shutil, "which", lambda name: None)
    with pytest.raises(RuntimeError, match="C\\+\\+ compiler.*without compile=True"):
        generate(small(LLAMA_STYLE), torch.tensor([[1, 2, 3]]), 4, compile=True)
