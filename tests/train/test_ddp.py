"""DDP: 2 CPU processes under torchrun keep identical replicas and match one process with twice the batch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from slm_course.train import TrainConfig, train
from slm_course.train.ddp import synthetic_setup

STEPS = 3


@pytest.mark.slow
def test_two_processes_equal_one_process_with_twice_the_batch(tmp_path):
    torchrun = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([str(torchrun), "--standalone", "--nproc-per-node", "2", "-m", "slm_course.train.ddp",
                          "--synthetic", "--steps", str(STEPS), "--lr", "3e-3", "--dump", str(tmp_path)],
                         capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    rank0, rank1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), name  # the replicas never drift apart

    model, batches = synthetic_setup()  # one process, each step's batch = both processes' batches

    def doubled(i):
        (x0, y0), (x1, y1) = batches(2 * i), batches(2 * i + 1)
        return torch.cat([x0, x1]), torch.cat([y0, y1])

    train(model, doubled, TrainConfig(max_steps=STEPS, lr=3e-3, warmup_steps=0, progress=False))
    for name, value in model.state_dict().items():
        # Adam divides by √v, so float-rounding differences in a tiny gradient show up to ~1e-5:
        torch.testing.assert_close(rank0[name], value, rtol=1e-3, atol=1e-4)  # a step moves weights ~3e-3
    half, _ = synthetic_setup()  # one process seeing only its own batch b makes a different update
    train(half, batches, TrainConfig(max_steps=STEPS, lr=3e-3, warmup_steps=0, progress=False))
    assert not torch.allclose(half.blocks[0].mlp.fc.weight if hasattr(half.blocks[0].mlp, "fc") else half.tok_emb.weight,
                              model.blocks[0].mlp.fc.weight if hasattr(model.blocks[0].mlp, "fc") else model.tok_emb.weight,
                              rtol=1e-3, atol=1e-4)
