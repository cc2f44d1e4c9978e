"""Bits per byte and the step-indexed batches."""
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from slm_course.train import bits_per_byte, token_batches
from tests.train.conftest import micro_model


class Chars:
    """A character tokenizer over code points 32-95 (ASCII digits, capitals, punctuation)."""

    def encode(self, text):
        return [ord(c) - 32 for c in text]

    def decode(self, ids):
        return "".join(chr(i + 32) for i in ids)


class Uniform(nn.Module):
    def __init__(self):
        super().__init__()
        self.dummy = nn.Parameter(torch.zeros(()))
        self.config = type("C", (), {"context_length": 8})()

    def forward(self, idx):
        return torch.zeros(*idx.shape, 64) + self.dummy


def test_uniform_model_needs_log2_vocab_bits_per_byte():
    assert bits_per_byte(Uniform(), Chars(), "HELLO, WORLD! 123 " * 5) == pytest.approx(math.log2(64))


def test_every_token_after_the_first_is_predicted_once_within_its_window():
    model = micro_model().eval()
    text = "TO BE, OR NOT TO BE: THAT IS THE QUESTION."
    ids = torch.tensor(Chars().encode(text))
    T = 16
    total = 0.0
    for start in range(0, len(ids) - 1, T):  # windows overlapping by one token
        window = ids[start:start + T + 1]
        with torch.no_grad():
            logits = model(window[None, :-1])[0]
        total += float(F.cross_entropy(logits, window[1:], reduction="sum"))
    expected = total / (math.log(2) * (len(text) - 1))
    assert bits_per_byte(model, Chars(), text, context_length=T) == pytest.approx(expected, rel=1e-5)
    assert bits_per_byte(model, Chars(), text, context_length=T, max_tokens=10) != pytest.approx(expected)


def test_bits_per_byte_counts_utf8_bytes():
    class Bytes:
        def encode(self, text):
            return [b % 64 for b in text.encode()]

        def decode(self, ids):  # stand-in: every id one byte
            return "x" * len(ids)

    assert bits_per_byte(Uniform(), Bytes(), "é" * 10) == pytest.approx(math.log2(64))
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        bits_per_byte(Uniform(), Chars(), "a")
    with pytest.raises(TypeError, match="str"):
        bits_per_byte(Uniform(), Chars(), [1, 2, 3])


def test_batches_are_a_function_of_the_index(data):
    batches = token_batches(data, 4, 16, seed=2)
    x, y = batches(7)
    assert x.shape == y.shape == (4, 16) and x.dtype == torch.long
    assert torch.equal(x[:, 1:], y[:, :-1])
    batches(3)
    assert torch.equal(batches(7)[0], x)  # whatever was read before
    assert not torch.equal(batches(8)[0], x)
    assert not torch.equal(token_batches(data, 4, 16, seed=3)(7)[0], x)
    with pytest.raises(ValueError, match="too few"):
        token_batches(torch.arange(10), 2, 16)
