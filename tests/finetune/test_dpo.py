"""Chapter 8: preference pairs and the DPO loss, checked by hand, against the paper's formula and against trl."""
import math
import random
from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

from slm_course.finetune.dpo import (
    DPOLog, dpo_batch, dpo_loss, dpo_loss_fn, generate_pairs, plausible_wrong, preference_accuracy,
    sequence_logprobs,
)
from slm_course.finetune.instruct import FAMILIES, IGNORE_INDEX, generate_examples
from slm_course.model import SLM, SLMConfig


def test_rejected_is_plausible_and_never_correct():
    pairs = generate_pairs(400, seed=0)
    assert {p.example.family for p in pairs} == set(FAMILIES)
    for p in pairs:
        assert p.chosen == p.example.output and p.rejected != p.chosen and p.rejected
        if p.example.family == "arithmetic":
            assert abs(int(p.rejected) - int(p.chosen)) <= 2
        if p.example.family == "reverse":
            assert sorted(p.rejected.split(", ")) == sorted(p.chosen.split(", "))
    assert generate_pairs(20, seed=1) == generate_pairs(20, seed=1)


def test_dpo_loss_on_hand_computed_values():
    # Pair 1: policy gains 1 nat on chosen, loses 1 on rejected: margin 2 → β·2 = 0.2. Pair 2: the opposite.
    pc, pr = torch.tensor([-4.0, -6.0]), torch.tensor([-8.0, -5.0])
    rc, rr = torch.tensor([-5.0, -5.0]), torch.tensor([-7.0, -6.0])
    out = dpo_loss(pc, pr, rc, rr, beta=0.1)
    expected = (math.log(1 + math.exp(-0.2)) + math.log(1 + math.exp(0.2))) / 2  # -log σ(z) = log(1 + e^-z)
    assert out.loss.item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(out.chosen_rewards, torch.tensor([0.1, -0.1]))
    torch.testing.assert_close(out.rejected_rewards, torch.tensor([-0.1, 0.1]))
    torch.testing.assert_close(out.margins, torch.tensor([0.2, -0.2]))
    assert out.accuracy == 0.5
    # β scales the implicit reward: a policy equal to its reference has loss log 2 at any β.
    assert dpo_loss(rc, rr, rc, rr, beta=5.0).loss.item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="beta"):
        dpo_loss(pc, pr, rc, rr, beta=0)
    with pytest.raises(ValueError, match="one shape"):
        dpo_loss(pc, pr[:1], rc, rr)


def _trl_dpo_loss(pc, pr, rc, rr, beta):
    """trl's DPOTrainer._compute_loss (the "sigmoid" DPO loss) run on given sequence log-probabilities."""
    from trl import DPOTrainer

    n = pc.shape[0]
    per_token = torch.zeros(2 * n, 4)
    per_token[:, 1] = torch.cat([pc, pr])  # one completion token per row carries the sequence log-prob
    completion_mask = torch.zeros(2 * n, 5, dtype=torch.long)
    completion_mask[:, 2] = 1

    class FakeModel:
        training = True

        def __call__(self, **kwargs):
            return SimpleNamespace(log_probs=per_token, mean_logits=torch.zeros(2 * n, 4),
                                   is_top1=torch.zeros(2 * n, 4, dtype=torch.bool), entropy=torch.zeros(2 * n, 4))

    model = FakeModel()
    accelerator = SimpleNamespace(device="cpu", gather=lambda t: t, gather_for_metrics=lambda t: t)
    fake = SimpleNamespace(model=model, accelerator=accelerator, aux_loss_enabled=False, ld_alpha=None,
                           precompute_ref_logps=True, f_divergence_type="reverse_kl", loss_types=["sigmoid"],
                           loss_weights=[1.0], beta=beta, label_smoothing=0.0, use_weighting=False,
                           _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
                           _total_train_tokens=0, _tp_size=1)
    inputs = {"input_ids": torch.ones(2 * n, 5, dtype=torch.long), "attention_mask": torch.ones(2 * n, 5),
              "completion_mask": completion_mask, "ref_chosen_logps": rc, "ref_rejected_logps": rr}
    loss = DPOTrainer._compute_loss(fake, model, inputs, False)
    return loss, fake._metrics["train"]


@pytest.mark.parametrize("beta", [0.1, 0.5, 2.0])
def test_dpo_loss_equals_trl(beta):
    pytest.importorskip("trl")
    g = torch.Generator().manual_seed(0)
    pc, pr, rc, rr = (-20 * torch.rand(6, generator=g) for _ in range(4))
    ours = dpo_loss(pc, pr, rc, rr, beta=beta)
    theirs, metrics = _trl_dpo_loss(pc, pr, rc, rr, beta)
    torch.testing.assert_close(ours.loss, theirs)
    assert metrics["rewards/margins"][0] == pytest.approx(float(ours.margins.mean()), abs=1e-6)
    assert metrics["rewards/accuracies"][0] == pytest.approx(ours.accuracy)


class _Chars:
    def encode(self, text):
        return [ord(c) % 250 for c in text]


def test_sequence_logprobs_sum_only_the_answer():
    torch.manual_seed(0)
    model = SLM(SLMConfig.from_name("tiny"))
    pairs = generate_pairs(2, seed=0)
    x, y = dpo_batch(pairs, _Chars(), pad_id=0, max_length=200, eos_id=255)
    assert x.shape[0] == 4 and (y[:2] != IGNORE_INDEX).sum() > 0
    logp = torch.log_softmax(model(x), -1)
    by_hand = sum(logp[0, t, y[0, t]] for t in range(x.shape[1]) if y[0, t] != IGNORE_INDEX)
    torch.testing.assert_close(sequence_logprobs(model, x, y)[0], by_hand)


def test_a_few_dpo_steps_raise_the_margin_and_keep_the_reference_frozen():
    torch.manual_seed(0)
    config = SLMConfig(vocab_size=256, context_length=128, d_model=32, n_layers=1, n_heads=2)
    policy, reference = SLM(config), SLM(config)
    reference.load_state_dict(policy.state_dict())
    before_ref = {k: v.clone() for k, v in reference.state_dict().items()}
    batch = dpo_batch(generate_pairs(8, seed=0), _Chars(), pad_id=0, max_length=128, eos_id=255)
    log = DPOLog()
    loss_fn = dpo_loss_fn(reference, beta=0.5, log=log)
    opt = torch.optim.AdamW(policy.parameters(), lr=3e-3)
    for _ in range(15):
        opt.zero_grad()
        loss_fn(policy, batch).backward()
        opt.step()
    assert log.loss[0] == pytest.approx(math.log(2), abs=1e-5) and log.margin[0] == pytest.approx(0, abs=1e-5)
    assert log.loss[-1] < 0.5 * math.log(2) and log.margin[-1] > 0 and log.accuracy[-1] == 1.0
    assert all(torch.equal(before_ref[k], v) for k, v in reference.state_dict().items())
    assert preference_accuracy(policy, reference, batch, beta=0.5).accuracy == 1.0
