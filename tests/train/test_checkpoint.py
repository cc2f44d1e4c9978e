"""Checkpoints: atomic folders, exact resume after SIGKILL, refusal of foreign or damaged checkpoints, no _orig_mod."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

from slm_course.train import TrainConfig, token_batches, train
from slm_course.train import checkpoint as ckpt
from tests.train.conftest import micro_model

STEPS = 8


def _config(folder, **changes):
    return TrainConfig(**{**dict(max_steps=STEPS, lr=3e-3, warmup_steps=2, checkpoint_dir=str(folder),
                                 checkpoint_every=2, progress=False), **changes})


def _dropout_model():
    return micro_model(dropout=0.1)  # dropout makes the RNG state part of what must resume exactly


CHILD = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {root!r})
    from tests.train.conftest import micro_model
    from slm_course.train import TrainConfig, token_batches, train
    data = torch.load({data!r})
    inner = token_batches(data, 4, 16)
    def batches(i):
        if i == {kill_at}:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, no flush: like a power cut
        return inner(i)
    model = micro_model(dropout=0.1)
    train(model, batches, TrainConfig(max_steps={steps}, lr=3e-3, warmup_steps=2, checkpoint_dir={folder!r},
                                      checkpoint_every=2, progress=False))
""")


def test_resume_after_sigkill_is_bit_identical(tmp_path, data):
    reference = _dropout_model()
    ref_history = train(reference, token_batches(data, 4, 16), _config(tmp_path / "uninterrupted"))

    torch.save(data, tmp_path / "data.pt")
    folder = tmp_path / "killed"
    script = CHILD.format(root=os.getcwd(), data=str(tmp_path / "data.pt"), kill_at=5, steps=STEPS, folder=str(folder))
    child = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert child.returncode == -signal.SIGKILL, child.stderr
    assert (folder / "latest").read_text() == "step-000004"  # saved after step 4, killed during step 6

    resumed = _dropout_model()
    history = train(resumed, token_batches(data, 4, 16), _config(folder))
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    assert history.step == ref_history.step and history.train_loss == ref_history.train_loss


def test_checkpoint_folder_contents(tmp_path, data):
    model = micro_model()
    train(model, token_batches(data, 4, 16), _config(tmp_path, max_steps=3, checkpoint_every=0))
    folder = ckpt.latest_checkpoint(tmp_path)
    assert folder.name == "step-000003"
    assert sorted(p.name for p in folder.iterdir()) == ["model.safetensors", "optimizer.safetensors", "state.json"]
    state = json.loads((folder / "state.json").read_text())
    assert state["step"] == 3 and state["data_position"] == 3 and "torch" in state["rng"]
    assert state["aliases"] == {"lm_head.weight": "tok_emb.weight"}  # the tied matrix stored once
    opt = load_file(str(folder / "optimizer.safetensors"))
    assert "tok_emb.weight::exp_avg" in opt
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no staging left behind


def test_compiled_model_keys_carry_no_orig_mod(tmp_path, data):
    model = micro_model()
    compiled = torch.compile(model, backend="eager")
    assert any("_orig_mod." in k for k in compiled.state_dict())  # what a naive save would write
    train(compiled, token_batches(data, 4, 16), _config(tmp_path, max_steps=2, checkpoint_every=0))
    folder = ckpt.latest_checkpoint(tmp_path)
    names = list(load_file(str(folder / "model.safetensors"))) + list(load_file(str(folder / "optimizer.safetensors")))
    assert names and not any("_orig_mod" in n for n in names)
    plain = micro_model(seed=5)  # a plain model loads it
    optimizer = torch.optim.AdamW(plain.parameters())
    from slm_course.train.loop import make_optimizer
    step, _ = ckpt.load_checkpoint(folder, plain, make_optimizer(plain, _config(tmp_path, max_steps=2)),
                                   _config(tmp_path, max_steps=2))
    assert step == 2 and torch.equal(plain.tok_emb.weight, model.tok_emb.weight)


def test_checkpoint_from_another_config_is_refused(tmp_path, data):
    train(micro_model(), token_batches(data, 4, 16), _config(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match="model config field d_model is 16 in the checkpoint but 32 here"):
        train(micro_model(d_model=32), token_batches(data, 4, 16), _config(tmp_path, max_steps=2))
    with pytest.raises(ValueError, match=r"TrainConfig.lr is 0.003 in the checkpoint but 0.001 here"):
        train(micro_model(), token_batches(data, 4, 16), _config(tmp_path, max_steps=2, lr=1e-3))


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete"])
def test_damaged_checkpoint_is_refused(tmp_path, data, damage):
    train(micro_model(), token_batches(data, 4, 16), _config(tmp_path, max_steps=2))
    target = ckpt.latest_checkpoint(tmp_path) / "model.safetensors"
    raw = target.read_bytes()
    if damage == "truncate":
        target.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":
        target.write_bytes(raw[:-1] + bytes([raw[-1] ^ 1]))
    else:
        target.unlink()
    with pytest.raises(ValueError, match="damaged: model.safetensors is missing or does not match"):
        train(micro_model(), token_batches(data, 4, 16), _config(tmp_path, max_steps=4))


def test_failed_save_leaves_the_previous_checkpoint(tmp_path, data, monkeypatch):
    model = micro_model()
    train(model, token_batches(data, 4, 16), _config(tmp_path, max_steps=2))
    before = (ckpt.latest_checkpoint(tmp_path) / "model.safetensors").read_bytes()

    import safetensors.torch

    calls = []

    def failing(tensors, path, *args, **kwargs):
        calls.append(path)
        if path.endswith("optimizer.safetensors"):
            raise OSError("disk full")
        return real(tensors, path, *args, **kwargs)

    real = safetensors.torch.save_file
    monkeypatch.setattr(safetensors.torch, "save_file", failing)
    with pytest.raises(OSError, match="disk full"):
        ckpt.save_checkpoint(tmp_path, model, torch.optim.AdamW(model.parameters()), _config(tmp_path, max_steps=2),
                             3, __import__("slm_course.train", fromlist=["History"]).History())
    assert calls
    assert (tmp_path / "latest").read_text() == "step-000002"
    assert (ckpt.latest_checkpoint(tmp_path) / "model.safetensors").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == sorted(["latest", "step-000002"]) or \
        sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000002"]
