"""Chapters 4 and 5's diagrams draw the package's numbers: the schedule from lr_at, a step's rate and
gradient norm from a run's History, the KV cache's shapes and size from a real KVCache."""
from __future__ import annotations

import io

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from slm_course.diagrams import ch04, ch05  # noqa: E402
from slm_course.diagrams.drawing import count_gids, texts  # noqa: E402
from slm_course.generate import KVCache  # noqa: E402
from slm_course.train import TrainConfig, lr_at, token_batches, train  # noqa: E402
from tests.train.conftest import data, micro_model  # noqa: E402,F401  (data: a fixture)

ALL = {
    "optimizer_step": lambda: ch04.optimizer_step(2, step=3, lr=1e-3, grad_norm=2.5, show=False),
    "schedule_phases": lambda: ch04.schedule_phases(TrainConfig(max_steps=60, lr=3e-3, warmup_steps=5), show=False),
    "checkpoint_resume": lambda: ch04.checkpoint_resume(30, 60, show=False),
    "decode_loop": lambda: ch05.decode_loop(show=False),
    "kv_cache": lambda: ch05.kv_cache(KVCache(2, 1, 2, 16, 8), show=False),
}


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(ALL))
def test_titled_and_deterministic(name):
    figure = ALL[name]()
    assert len(figure.get_suptitle()) > 10
    assert png(figure) == png(ALL[name]())


@pytest.mark.parametrize("max_steps, warmup, lr", [(60, 5, 3e-3), (200, 20, 1e-3), (10, 0, 5e-4)])
def test_schedule_draws_lr_at_of_every_step(max_steps, warmup, lr):
    config = TrainConfig(max_steps=max_steps, lr=lr, warmup_steps=warmup)
    figure = ch04.schedule_phases(config, show=False)
    (line,) = [ln for ln in figure.axes[0].lines if ln.get_gid() == "lr"]
    np.testing.assert_allclose(line.get_ydata(), [lr_at(s, config) for s in range(max_steps)])
    assert count_gids(figure, "phase-warmup") == (1 if warmup else 0) and count_gids(figure, "phase-cosine") == 1
    (floor,) = [ln for ln in figure.axes[0].lines if ln.get_gid() == "floor"]
    assert floor.get_ydata()[0] == pytest.approx(config.min_lr)
    assert f"step 0: {lr_at(0, config):.1e}, not 0" in texts(figure)


def test_optimizer_step_writes_a_real_steps_rate_and_clipped_norm(data):
    config = TrainConfig(max_steps=3, lr=3e-3, warmup_steps=2, grad_accum_steps=3, grad_clip=0.5, progress=False)
    history = train(micro_model(), token_batches(data, 2, 16), config)
    figure = ch04.optimizer_step(3, step=1, lr=history.lr[1], grad_norm=history.grad_norm[1], grad_clip=0.5, show=False)
    drawn = "\n".join(texts(figure))
    assert f"lr = {lr_at(1, config):.2e}" in drawn
    assert f"‖g‖ {history.grad_norm[1]:.2f} → {min(history.grad_norm[1], 0.5):.2f}" in drawn
    assert count_gids(figure, "micro-") == 3 and "batches(3)" in drawn and "batches(5)" in drawn
    many = ch04.optimizer_step(8, step=2, show=False)  # four rows drawn, the last is micro-batch 7
    assert count_gids(many, "micro-") == 4 and "batches(23)" in "\n".join(texts(many))
    with pytest.raises(ValueError, match="grad_accum_steps"):
        ch04.optimizer_step(0, show=False)


def test_checkpoint_resume_splits_the_run_where_asked():
    drawn = "\n".join(texts(ch04.checkpoint_resume(20, 50, show=False)))
    assert "steps 0 … 19" in drawn and "steps 20 … 49" in drawn and "steps 0 … 49" in drawn
    with pytest.raises(ValueError, match="strictly between"):
        ch04.checkpoint_resume(50, 50, show=False)


@pytest.mark.parametrize("prompt_length, new_tokens", [(5, 4), (3, 1), (2, 6)])
def test_kv_cache_counts_the_positions_each_way_computes(prompt_length, new_tokens):
    cache = KVCache(3, 1, 2, 32, 8)
    figure = ch05.kv_cache(cache, prompt_length=prompt_length, new_tokens=new_tokens, show=False)
    without = sum(prompt_length + i for i in range(new_tokens))  # pass i reruns all T + i positions
    with_cache = prompt_length + (new_tokens - 1)  # the prefill, then one position per decode pass
    assert count_gids(figure, "without-computed") == without
    assert count_gids(figure, "with-computed") == with_cache
    assert count_gids(figure, "with-read") == without - with_cache
    drawn = "\n".join(texts(figure))
    assert f"{without} positions computed" in drawn and f"{with_cache} positions computed" in drawn
    assert f"each {tuple(cache.keys[0].shape)}" in drawn
    assert f"{cache.num_bytes() / 2**20:.1f} MiB" in drawn and f"{cache.n_layers} layers" in drawn


def test_decode_loop_has_its_five_stages():
    figure = ch05.decode_loop(show=False)
    for name in ("ids", "model", "logits", "filters", "choose"):
        assert count_gids(figure, name) == 1
