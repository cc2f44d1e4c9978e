"""The training loop: schedule, decay groups, clipping on every step, accumulation scaling, history."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch.optim.optimizer import register_optimizer_step_pre_hook

from slm_course.train import TrainConfig, History, lm_loss, lr_at, param_groups, token_batches, train
from tests.train.conftest import micro_model


def test_lm_loss_is_mean_next_token_cross_entropy():
    model = micro_model()
    x = torch.randint(0, 64, (3, 8))
    y = torch.randint(0, 64, (3, 8))
    logits = model(x)
    by_hand = -torch.log_softmax(logits, -1).gather(-1, y[..., None]).mean()
    torch.testing.assert_close(lm_loss(model, (x, y)), by_hand)


def test_untrained_loss_is_near_log_vocab():
    model = micro_model()
    x = torch.randint(0, 64, (8, 16))
    assert abs(float(lm_loss(model, (x, torch.roll(x, -1, 1))).detach()) - math.log(64)) < 0.1


def test_lr_never_zero_at_step_zero_and_follows_warmup_then_cosine():
    config = TrainConfig(max_steps=100, lr=1e-3, warmup_steps=10)
    rates = [lr_at(s, config) for s in range(100)]
    assert rates[0] == pytest.approx(1e-4)  # lr / warmup, not 0
    assert rates[9] == pytest.approx(1e-3)  # the last warmup step reaches the peak
    assert rates[10] == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-4)  # the floor, lr / 10 by default
    assert all(a <= b for a, b in zip(rates[:10], rates[1:10]))
    assert all(a >= b for a, b in zip(rates[10:], rates[11:]))
    assert rates[55] == pytest.approx(1e-4 + 0.5 * (1 + math.cos(math.pi * 45 / 89)) * 9e-4)
    assert min(rates) > 0
    no_warmup = TrainConfig(max_steps=5, lr=2e-3, min_lr=0.0)
    assert lr_at(0, no_warmup) == 2e-3 and lr_at(4, no_warmup) == 0.0


def test_first_step_moves_the_weights(data):
    model = micro_model()
    before = [p.detach().clone() for p in model.parameters()]
    history = train(model, token_batches(data, 4, 16), TrainConfig(max_steps=1, warmup_steps=0, progress=False))
    assert history.lr[0] > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_weight_decay_only_on_matrices():
    model = micro_model()
    groups = param_groups(model, 0.1)
    decayed = {id(p) for g in groups if g["weight_decay"] > 0 for p in g["params"]}
    names = {id(p): n for n, p in model.named_parameters()}
    decayed_names = {names[i] for i in decayed}
    assert decayed_names and all(n.endswith(".weight") for n in decayed_names)
    assert "tok_emb.weight" not in decayed_names and "pos_emb.weight" not in decayed_names
    assert not any("norm" in n or n.endswith("bias") for n in decayed_names)
    counted = [id(p) for g in groups for p in g["params"]]
    assert len(counted) == len(set(counted)) == len(list(model.parameters()))  # the tied matrix once


def test_only_trainable_parameters_are_optimized(data):
    model = micro_model()
    for p in model.parameters():
        p.requires_grad_(False)
    model.lm_head.weight.requires_grad_(False)
    model.final_norm.weight.requires_grad_(True)
    frozen = model.blocks[0].attn.qkv.weight.detach().clone() if hasattr(model.blocks[0].attn, "qkv") else None
    train(model, token_batches(data, 4, 16), TrainConfig(max_steps=2, progress=False))
    if frozen is not None:
        assert torch.equal(frozen, model.blocks[0].attn.qkv.weight)
    assert not torch.equal(model.final_norm.weight, torch.ones_like(model.final_norm.weight))
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="nothing to train"):
        train(model, token_batches(data, 4, 16), TrainConfig(max_steps=1, progress=False))


def test_every_step_is_clipped_including_the_warmup_boundary(data):
    model = micro_model()
    seen = []

    def measure(optimizer, args, kwargs):
        grads = [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]
        seen.append(float(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads]))))

    def huge(model, batch):  # gradients ~1000× too large on every step
        return 1000.0 * lm_loss(model, batch)

    handle = register_optimizer_step_pre_hook(measure)
    try:
        history = train(model, token_batches(data, 4, 16),
                        TrainConfig(max_steps=6, warmup_steps=3, grad_clip=0.5, progress=False), loss_fn=huge)
    finally:
        handle.remove()
    assert len(seen) == 6
    assert all(n <= 0.5 + 1e-4 for n in seen), seen  # step 3, the first after warmup, included
    assert all(n > 0.5 for n in history.grad_norm)  # the history records the norm before clipping


def _weights_after(data, *, batch, accum, steps=2):
    model = micro_model()
    batches = token_batches(data, batch, 16, seed=3)
    if accum > 1:  # split each big batch into accum micro-batches
        big = batches
        size = batch // accum

        def batches(i):
            x, y = big(i // accum)
            part = i % accum
            return x[part * size:(part + 1) * size], y[part * size:(part + 1) * size]
    history = train(model, batches, TrainConfig(max_steps=steps, grad_clip=None, grad_accum_steps=accum,
                                                 progress=False))
    return model, history


def test_accumulation_of_n_micro_batches_equals_one_big_batch(data):
    one, h1 = _weights_after(data, batch=8, accum=1)
    four, h4 = _weights_after(data, batch=8, accum=4)
    for a, b in zip(one.parameters(), four.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert h1.train_loss == pytest.approx(h4.train_loss, rel=1e-5)  # the mean loss, not the sum


def test_history_and_periodic_evaluation(data):
    model = micro_model()
    calls = []

    def eval_fn(m):
        calls.append(m.training)
        return {"val_loss": float(lm_loss(m, token_batches(data, 4, 16, seed=9)(0)))}  # no_grad inside

    history = train(model, token_batches(data, 8, 16), TrainConfig(max_steps=30, lr=3e-3, eval_every=10, progress=False),
                    eval_fn=eval_fn)
    assert history.step == list(range(30))
    assert [e["step"] for e in history.evals] == [9, 19, 29]
    assert calls == [False, False, False]  # evaluated in eval mode
    assert history.train_loss[-1] < history.train_loss[0] - 0.3
    data_dict = history.to_dict()
    assert set(data_dict) == {"step", "train_loss", "lr", "grad_norm", "evals"}
    assert History.from_dict(data_dict) == history
    assert not model.training


def test_bad_configs_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="max_steps"):
        TrainConfig(max_steps=0)
    with pytest.raises(ValueError, match="warmup_steps"):
        TrainConfig(max_steps=10, warmup_steps=11)
    with pytest.raises(ValueError, match="grad_accum_steps"):
        TrainConfig(max_steps=10, grad_accum_steps=0)
    with pytest.raises(ValueError, match="min_lr"):
        TrainConfig(max_steps=10, lr=1e-3, min_lr=1e-2)
    with pytest.raises(TypeError, match="function"):
        train(micro_model(), [1, 2], TrainConfig(max_steps=1, progress=False))
