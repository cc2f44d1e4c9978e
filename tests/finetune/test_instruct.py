"""Chapter 8: instruction data, prompt formats, the masking collate, SFT loss and exact match."""
import json

import pytest
import torch
import torch.nn.functional as F

from slm_course.finetune import instruct
from slm_course.finetune.instruct import (
    FAMILIES, IGNORE_INDEX, Example, collate, diversity, exact_match, format_alpaca, format_chatml,
    generate_examples, instruction_splits, sft_loss,
)
from slm_course.model import SLM, SLMConfig


def test_examples_are_seeded_balanced_and_checkable():
    a, b = generate_examples(40, seed=3), generate_examples(40, seed=3)
    assert a == b and a != generate_examples(40, seed=4)
    assert [e.family for e in a[:4]] == list(FAMILIES)
    for e in a:
        if e.family == "arithmetic":
            numbers = [int(w) for w in e.input.replace(".", " ").split() if w.isdigit()]
            gain = any(v in e.input for v in ("finds", "buys", "given", "picks"))
            assert int(e.output) == (numbers[0] + numbers[1] if gain else numbers[0] - numbers[1]) >= 0
        elif e.family == "reverse":
            items = e.instruction.split(": ", 1)[1].split(", ")
            assert e.output.split(", ") == items[::-1]
        elif e.family == "format":
            pairs = [p.split(" ", 1) for p in e.instruction.split(": ", 1)[1].split(", ")]
            assert json.loads(e.output) == dict(pairs)
        else:
            assert e.output in e.input.split("Question:")[0]


def test_held_out_split_never_repeats_a_training_prompt():
    train, test = instruction_splits(400, 100, seed=0)
    assert len(train) == 400 and len(test) == 100
    assert not {(e.instruction, e.input) for e in train} & {(e.instruction, e.input) for e in test}
    assert {f: sum(e.family == f for e in test) for f in FAMILIES} == {f: 25 for f in FAMILIES}


def test_injected_randomness_raises_measured_diversity():
    random_ = diversity(generate_examples(200, seed=0))
    fixed = diversity(generate_examples(200, seed=0, randomness=False))
    assert fixed < 0.05 < 0.2 < random_


def test_bad_requests_raise_clear_errors():
    with pytest.raises(ValueError, match="unknown task families"):
        generate_examples(4, families=("poetry",))
    with pytest.raises(ValueError, match="non-negative"):
        generate_examples(-1)


def test_prompt_formats():
    e = Example("reverse", "Reverse the list: a, b", "", "b, a")
    assert format_alpaca(e).endswith("### Instruction:\nReverse the list: a, b\n\n### Response:\n")
    assert "### Input:" not in format_alpaca(e)
    assert "### Input:\nx\n\n" in format_alpaca(Example("lookup", "Q", "x", "y"))
    msgs = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert format_chatml(msgs) == ("<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                                   "<|im_start|>assistant\n")
    assert format_chatml(msgs, add_generation_prompt=False).endswith("Hi<|im_end|>\n")
    with pytest.raises(TypeError):
        format_chatml(["hello"])


def test_chatml_equals_transformers_chat_template():
    tokenizers = pytest.importorskip("tokenizers")
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_object=tokenizers.Tokenizer(tokenizers.models.WordLevel({"a": 0}, unk_token="a")))
    tok.chat_template = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
                         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
    msgs = [{"role": "user", "content": "Reverse: 1, 2"}, {"role": "assistant", "content": "2, 1"},
            {"role": "user", "content": "again"}]
    for gen in (True, False):
        assert format_chatml(msgs, gen) == tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=gen)


def test_collate_masks_prompt_and_padding():
    x, y = collate([([5, 6, 7], [8, 9]), ([1], [2])], pad_id=0, max_length=16)
    assert x.tolist() == [[5, 6, 7, 8], [1, 0, 0, 0]]
    assert y.tolist() == [[-100, -100, 8, 9], [2, -100, -100, -100]]
    assert x.dtype == y.dtype == torch.long


@pytest.mark.parametrize("prompt_len,answer_len,max_length", [(50, 3, 8), (1, 8, 8), (9, 1, 9), (200, 100, 100),
                                                              (3, 2, 4), (1, 1, 1)])
def test_collate_truncates_the_prompt_never_the_answer(prompt_len, answer_len, max_length):
    prompt, answer = list(range(1, prompt_len + 1)), list(range(1000, 1000 + answer_len))
    x, y = collate([(prompt, answer)], pad_id=0, max_length=max_length)
    assert x.shape[1] <= max_length
    labels = [t for t in y[0].tolist() if t != IGNORE_INDEX]
    assert labels == answer  # the whole answer is still learned, and only it
    kept_prompt = x[0, : x.shape[1] - answer_len + 1].tolist()
    assert kept_prompt == prompt[-len(kept_prompt):]  # the prompt's end survives, next to the answer


def test_collate_refuses_an_answer_that_cannot_fit():
    with pytest.raises(ValueError, match="answers are never cut"):
        collate([([1, 2], list(range(10)))], pad_id=0, max_length=9)
    with pytest.raises(ValueError):
        collate([([], [1])], pad_id=0, max_length=4)


def test_sft_loss_counts_only_answer_tokens():
    torch.manual_seed(0)
    model = SLM(SLMConfig.from_name("tiny"))
    x, y = collate([([5, 6, 7], [8, 9]), ([1], [2])], pad_id=0, max_length=16)
    logits = model(x)
    by_hand = torch.stack([F.cross_entropy(logits[0, 2:4], y[0, 2:4], reduction="sum"),
                           F.cross_entropy(logits[1, :1], y[1, :1], reduction="sum")]).sum() / 3
    torch.testing.assert_close(sft_loss(model, (x, y)), by_hand)


def test_sft_batches_are_deterministic():
    pairs = [([i + 1], [i + 2]) for i in range(10)]
    batches = instruct.sft_batches(pairs, 4, pad_id=0, max_length=8, seed=1)
    assert torch.equal(batches(3)[0], batches(3)[0])
    assert not torch.equal(batches(0)[0], batches(1)[0])


def test_exact_match_per_family():
    ex = [Example("arithmetic", "", "", "7"), Example("arithmetic", "", "", "12"), Example("reverse", "", "", "b, a")]
    assert exact_match(ex, [" 7\nmore", "1", "b, a"]) == {"arithmetic": 0.5, "reverse": 1.0, "all": 2 / 3}
    with pytest.raises(ValueError):
        exact_match(ex, ["7"])


def test_answers_are_the_greedy_replies_batched_by_prompt_length():
    class Chars:
        def encode(self, text): return [ord(c) % 256 for c in text]
        def decode(self, ids): return "".join(chr(i) for i in ids if i < 256)

    torch.manual_seed(0)
    model = SLM(SLMConfig(vocab_size=257, context_length=64, d_model=32, n_layers=1, n_heads=2)).eval()
    ex = [Example("arithmetic", "Solve.", "3 + 4", "7"), Example("arithmetic", "Solve.", "1 + 1", "2"),
          Example("reverse", "Reverse: a, bb", "", "bb, a")]
    fmt = lambda e: e.instruction + e.input  # noqa: E731
    replies = instruct.answer(model, Chars(), ex, fmt, eos_id=256, max_new_tokens=6)
    for e, reply in zip(ex, replies):  # one prompt at a time, a plain greedy loop without a cache
        idx = torch.tensor([Chars().encode(fmt(e))])
        new = []
        for _ in range(6):
            nxt = int(model(idx)[0, -1].argmax())
            if nxt == 256:
                break
            new.append(nxt)
            idx = torch.cat([idx, torch.tensor([[nxt]])], dim=1)
        assert reply == instruct.normalize_answer(Chars().decode(new))
    relabelled = [Example(e.family, e.instruction, e.input, r) for e, r in zip(ex, replies)]
    assert exact_match(relabelled, replies)["all"] == 1.0
