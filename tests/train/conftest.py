"""Tiny models and data for the training-loop tests (each test runs in well under a second or two)."""
import pytest
import torch

from slm_course.model import SLM, SLMConfig
from slm_course.train import token_batches

MICRO = dict(vocab_size=64, context_length=16, d_model=16, n_layers=1, n_heads=2)


def micro_model(seed: int = 0, **changes) -> SLM:
    torch.manual_seed(seed)
    return SLM(SLMConfig.from_name("tiny", **{**MICRO, **changes}))


@pytest.fixture
def data():
    """2,000 ids with structure to learn: a cycle of 37 with every tenth id random."""
    ids = torch.arange(2000) % 37
    noise = torch.randint(0, 64, (2000,), generator=torch.Generator().manual_seed(1))
    return torch.where(torch.arange(2000) % 10 == 0, noise, ids)
