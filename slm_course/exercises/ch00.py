"""Chapter 0 (warm-up) exercises: a word count, a stable softmax, splitting attention heads.

These three quick problems show how exercises work (``check``, ``hint``, ``solution``) before
chapter 1, and they give ``slm-course grade`` a small, stable chapter to be tested on.
Expected values come from PyTorch and from :func:`slm_course.attention.split_heads`.
"""
from __future__ import annotations

import torch

from slm_course.attention import split_heads
from slm_course.exercises.core import Case, Problem, call


def _count_words_cases() -> list[Case]:
    # Expected counts are written out by hand: lower-case, split on any run of whitespace.
    return [
        Case('count_words("the cat saw the dog")', call("the cat saw the dog"),
             {"the": 2, "cat": 1, "saw": 1, "dog": 1}),
        Case('count_words("To be or NOT to be")', call("To be or NOT to be"),
             {"to": 2, "be": 2, "or": 1, "not": 1}),
        Case('count_words("one  two\\nthree\\ttwo ")', call("one  two\nthree\ttwo "),
             {"one": 1, "two": 2, "three": 1}),
        Case('count_words("")', call(""), {}),
    ]


def _softmax_cases() -> list[Case]:
    small = torch.tensor([1.0, 2.0, 3.0])
    huge = torch.tensor([1000.0, 1001.0, 1002.0])  # exp(1000) overflows: subtract the max first
    rows = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    negative = torch.tensor([[-5.0, 0.0, 5.0], [-1e4, -1e4, -1e4]])
    return [
        Case("softmax(tensor([1., 2., 3.]))", call(small), lambda: torch.softmax(small, dim=-1)),
        Case("softmax(tensor([1000., 1001., 1002.]))", call(huge), lambda: torch.softmax(huge, dim=-1)),
        Case("softmax(a (3, 4) tensor)", call(rows), lambda: torch.softmax(rows, dim=-1)),
        Case("softmax(tensor([[-5., 0., 5.], [-1e4, -1e4, -1e4]]))", call(negative),
             lambda: torch.softmax(negative, dim=-1)),
    ]


def _split_heads_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, generator=generator)  # (B=2, T=3, D=8)
    one = torch.arange(12, dtype=torch.float32).reshape(1, 2, 6)  # (B=1, T=2, D=6)
    return [
        Case("split_heads(x of shape (2, 3, 8), 2)", call(x, 2), lambda: split_heads(x, 2)),
        Case("split_heads(x of shape (2, 3, 8), 4)", call(x, 4), lambda: split_heads(x, 4)),
        Case("split_heads(arange(12).reshape(1, 2, 6), 3)", call(one, 3), lambda: split_heads(one, 3)),
        Case("split_heads(x of shape (2, 3, 8), 1)", call(x, 1), lambda: split_heads(x, 1)),
    ]


q1 = Problem(
    name="q1", chapter="00", target="count_words", title="count words", cases=_count_words_cases,
    hints=[
        "Lower-case the text first, then split it into words; a dict (or collections.Counter) counts them.",
        "`text.lower().split()` with no argument splits on any run of spaces, tabs and newlines and "
        "drops empty strings; `split(' ')` does not. Return a plain dict.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="00", target="softmax", title="a numerically stable softmax", cases=_softmax_cases,
    hints=[
        "softmax(x)_i = exp(x_i) / sum_j exp(x_j), taken over the last dimension (dim=-1).",
        "exp(1000.) is inf in float32. Subtracting the maximum of each row, "
        "`x - x.max(dim=-1, keepdim=True).values`, changes nothing mathematically and keeps exp finite.",
    ],
    points=2,
)

q3 = Problem(
    name="q3", chapter="00", target="split_heads", title="split the features into attention heads",
    cases=_split_heads_cases,
    hints=[
        "Each head takes its own consecutive slice of the D features: first reshape (B, T, D) to "
        "(B, T, H, D // H).",
        "Then swap the token and head dimensions with `.transpose(1, 2)` to get (B, H, T, D // H). "
        "Reshaping straight to (B, H, T, D // H) mixes tokens across heads.",
    ],
    points=2,
)
