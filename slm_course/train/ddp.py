"""The chapter-4 loop on several processes with DistributedDataParallel (for learners who outgrow one machine).

Run under ``torchrun``; every process trains a replica on its own share of each step's data and
DDP averages the gradients, so the replicas stay identical and P processes × batch b make the same
update as one process × batch P·b. Backend: ``nccl`` on CUDA GPUs, ``gloo`` on CPUs.

One machine, 2 processes::

    torchrun --standalone --nproc-per-node 2 -m slm_course.train.ddp --steps 200

Two machines (run on each; ``--node-rank`` 0 and 1, the endpoint is machine 0's address)::

    torchrun --nnodes 2 --nproc-per-node 2 --rdzv-backend c10d --rdzv-id shakespeare \\
        --rdzv-endpoint 10.0.0.1:29500 -m slm_course.train.ddp --steps 200
"""
from __future__ import annotations

import argparse
import os
from typing import Any, Callable

import torch

from slm_course.model import SLM, SLMConfig


def setup() -> tuple[int, int, torch.device]:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); return
    ``(rank, world_size, device)``."""
    import torch.distributed as dist

    if "RANK" not in os.environ:
        raise RuntimeError("slm_course.train.ddp runs under torchrun, e.g. "
                           "torchrun --standalone --nproc-per-node 2 -m slm_course.train.ddp")
    cuda = torch.cuda.is_available()
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    dist.init_process_group(backend="nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device


def shard_batches(batches: Callable[[int], Any], rank: int, world_size: int) -> Callable[[int], Any]:
    """Process ``rank``'s micro-batch ``i`` is the global micro-batch ``i · world_size + rank``."""
    return lambda i: batches(i * world_size + rank)


def synthetic_setup() -> tuple[SLM, Callable[[int], Any]]:
    """A micro model and a learnable id stream (the test's configuration; no assets needed)."""
    from slm_course.train.metrics import token_batches

    torch.manual_seed(0)
    model = SLM(SLMConfig.from_name("tiny", vocab_size=64, context_length=16, d_model=16, n_layers=1, n_heads=2))
    return model, token_batches(torch.arange(2000) % 37, 4, 16, seed=0)


def main(argv: list[str] | None = None) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from slm_course.train.loop import TrainConfig, train
    from slm_course.train.metrics import token_batches

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8, help="sequences per process per step")
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--checkpoint-dir", default=None)
    parser.add_argument("--synthetic", action="store_true", help="a micro model on synthetic ids (for tests)")
    parser.add_argument("--dump", default=None, help="folder to save each replica's final weights in")
    args = parser.parse_args(argv)
    rank, world, device = setup()
    try:
        if args.synthetic:
            model, batches = synthetic_setup()
        else:
            from slm_course.data import shakespeare_splits
            from slm_course.tokenizers import course_bpe

            torch.manual_seed(0)
            model = SLM(SLMConfig.from_name("tiny"))
            batches = token_batches(course_bpe().encode(shakespeare_splits()[0]), args.batch_size, 256, seed=0)
        model.to(device)
        ddp_model = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        config = TrainConfig(max_steps=args.steps, lr=args.lr, warmup_steps=min(10, args.steps // 10),
                             progress=rank == 0, checkpoint_dir=args.checkpoint_dir)
        history = train(ddp_model, shard_batches(batches, rank, world), config)
        if args.dump:
            os.makedirs(args.dump, exist_ok=True)
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, os.path.join(args.dump, f"rank{rank}.pt"))
        if rank == 0:
            print(f"{world} processes, {args.steps} steps: final training loss {history.train_loss[-1]:.4f}")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
