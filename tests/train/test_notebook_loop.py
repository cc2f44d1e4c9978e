"""Chapter 4 writes its training loop in the notebook; this test runs that cell's own source (not a copy)
and checks it makes exactly the updates of ``slm_course.train.train``, so the two cannot drift apart."""
import json
from pathlib import Path

import pytest
import torch

from slm_course.train import History, TrainConfig, make_optimizer, token_batches, train
from tests.train.conftest import micro_model

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "04_pretraining.ipynb"


def notebook_train_steps():
    """``train_steps`` as defined by the notebook's cell ``ch04loop``."""
    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c.get("id") == "ch04loop"]
    assert len(cells) == 1, "chapter 4 must keep its training loop in the cell with id ch04loop"
    namespace: dict = {}
    exec(compile("".join(cells[0]["source"]), f"{NOTEBOOK.name}:ch04loop", "exec"), namespace)
    return namespace["train_steps"]


@pytest.mark.parametrize("accum, clip", [(1, 1.0), (3, 0.05)])
def test_notebook_loop_equals_train_step_for_step(data, accum, clip):
    train_steps = notebook_train_steps()
    config = TrainConfig(max_steps=8, lr=3e-3, warmup_steps=2, grad_accum_steps=accum, grad_clip=clip, eval_every=3,
                         progress=False)
    batches = token_batches(data, 4, 16)
    held_out = token_batches(data, 8, 16, seed=5)(0)

    def validate(m):
        from slm_course.train import lm_loss
        return {"val_loss": float(lm_loss(m, held_out))}

    mine, theirs = micro_model(), micro_model()
    history = train_steps(mine, make_optimizer(mine, config), batches, config, range(8), History(), validate)
    reference = train(theirs, batches, config, eval_fn=validate)
    for field in ("step", "train_loss", "lr", "grad_norm", "evals"):
        torch.testing.assert_close(getattr(history, field), getattr(reference, field), rtol=0, atol=0)
    torch.testing.assert_close(mine.state_dict(), theirs.state_dict(), rtol=0, atol=0)
    assert [e["step"] for e in history.evals] == [2, 5, 7]
    if clip < 1:
        assert max(reference.grad_norm) > clip  # the clip was active, so a loop without it would differ


def test_notebook_loop_stopped_and_resumed_by_train_equals_one_run(data, tmp_path):
    from slm_course.train.checkpoint import save_checkpoint

    train_steps = notebook_train_steps()
    config = TrainConfig(max_steps=6, lr=3e-3, warmup_steps=1, grad_accum_steps=2, progress=False)
    batches = token_batches(data, 4, 16)
    first = micro_model()
    optimizer = make_optimizer(first, config)
    save_checkpoint(tmp_path, first, optimizer, config, 3,
                    train_steps(first, optimizer, batches, config, range(3), History()))
    resumed = micro_model(seed=1)
    import dataclasses
    train(resumed, batches, dataclasses.replace(config, checkpoint_dir=str(tmp_path)))
    whole = micro_model()
    train(whole, batches, config)
    torch.testing.assert_close(resumed.state_dict(), whole.state_dict(), rtol=0, atol=0)
