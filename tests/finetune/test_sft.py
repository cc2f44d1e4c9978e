"""Chapter 8's training runs: finetune (full and LoRA), DPO batches and runs, the score table."""
import math

import pytest
import torch

from slm_course.finetune import sft
from slm_course.finetune.dpo import generate_pairs
from slm_course.finetune.instruct import FAMILIES, IGNORE_INDEX, answer, exact_match, generate_examples
from slm_course.finetune.lora import apply_lora
from slm_course.model import SLM, SLMConfig

EOS = 255


class _Chars:
    """One id per character (mod 250), so tests need no trained tokenizer."""

    def encode(self, text):
        return [ord(c) % 250 for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i < 250)


def _model(seed=0):
    torch.manual_seed(seed)
    return SLM(SLMConfig(vocab_size=256, context_length=256, d_model=32, n_layers=1, n_heads=2))


def _held_out_loss(model, pairs):
    from slm_course.finetune.instruct import collate, sft_loss

    with torch.no_grad():
        return float(sft_loss(model.eval(), collate(pairs, EOS, 256)))


def test_finetune_lowers_the_answer_loss_and_runs_its_step_budget():
    pairs = sft.encode_examples(generate_examples(32, seed=0), _Chars(), eos_id=EOS)
    model = _model()
    before = _held_out_loss(model, pairs)
    history = sft.finetune(model, pairs, steps=30, pad_id=EOS, batch_size=8, lr=3e-3, max_length=256)
    assert len(history.train_loss) == 30
    assert _held_out_loss(model, pairs) < before - 1.0


def test_lora_finetune_changes_only_the_adapters():
    pairs = sft.encode_examples(generate_examples(16, seed=1), _Chars(), eos_id=EOS)
    model = _model()
    apply_lora(model, r=4, alpha=8)
    frozen = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    adapters = {k: v.clone() for k, v in model.state_dict().items() if "lora_B" in k}
    sft.finetune(model, pairs, steps=5, pad_id=EOS, batch_size=4, lr=1e-2, max_length=256)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in frozen.items())
    assert any(not torch.equal(v, after[k]) for k, v in adapters.items())


def test_dpo_batches_are_a_function_of_the_index_and_cover_each_epoch():
    pairs = generate_pairs(12, seed=0)
    batches = sft.dpo_batches(pairs, _Chars(), batch_size=4, pad_id=EOS, max_length=256, eos_id=EOS, seed=3)
    x0, y0 = batches(0)
    x0_again, _ = batches(0)
    assert torch.equal(x0, x0_again) and x0.shape[0] == 8  # 4 chosen rows, then 4 rejected
    # rows i and i + 4 share a prompt: their inputs agree up to where the answers start
    first_label = [int((y0[i] != IGNORE_INDEX).nonzero()[0]) for i in range(8)]
    for i in range(4):
        assert first_label[i] == first_label[i + 4]
        assert torch.equal(x0[i, : first_label[i]], x0[i + 4, : first_label[i]])
    prompts = set()
    for i in range(3):  # one epoch: every pair once
        x, y = batches(i)
        for row in range(4):
            start = int((y[row] != IGNORE_INDEX).nonzero()[0])
            prompts.add(tuple(x[row, :start].tolist()))
    assert len(prompts) == 12
    with pytest.raises(ValueError, match="batch_size"):
        sft.dpo_batches(pairs, _Chars(), batch_size=13, pad_id=EOS, max_length=256)


def test_preference_tune_keeps_a_frozen_reference_and_raises_the_margin():
    pairs = generate_pairs(8, seed=0)
    model = _model()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    history, log, reference = sft.preference_tune(model, pairs, _Chars(), steps=12, pad_id=EOS, beta=0.5,
                                                  batch_size=8, lr=3e-3, max_length=256, eos_id=EOS)
    assert len(history.train_loss) == len(log.loss) == 12
    assert log.loss[0] == pytest.approx(math.log(2), abs=1e-5)  # policy = reference at the first step
    assert log.margin[-1] > 0 and log.loss[-1] < log.loss[0]
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in start.items())
    assert not all(p.requires_grad for p in reference.parameters())


def test_score_models_is_exact_match_of_greedy_replies_and_the_table_lists_every_family():
    examples = generate_examples(8, seed=0)
    models = {"a": _model(0), "b": _model(1)}
    scores = sft.score_models(models, _Chars(), examples, eos_id=EOS, max_new_tokens=4)
    for name, model in models.items():
        assert scores[name] == exact_match(examples, answer(model, _Chars(), examples,
                                                            sft.format_chat, eos_id=EOS, max_new_tokens=4))
    table = sft.format_scores({"base": {**{f: 0.5 for f in FAMILIES}, "all": 0.5},
                               "tuned": {**{f: 1.0 for f in FAMILIES}, "all": 1.0}})
    header, *rows = table.splitlines()
    assert header.split() == ["model", *FAMILIES, "all"]
    assert rows[0].split() == ["base"] + ["0.50"] * 5 and rows[1].split() == ["tuned"] + ["1.00"] * 5


def test_short_format_puts_the_input_on_its_own_line_and_ends_where_the_answer_starts():
    from slm_course.finetune.instruct import Example, format_short

    assert format_short(Example("reverse", "Reverse the list: a, b", "", "b, a")) == "Reverse the list: a, b\n=> "
    assert format_short(Example("lookup", "Answer.", "Story: x", "y")) == "Answer.\nStory: x\n=> "
