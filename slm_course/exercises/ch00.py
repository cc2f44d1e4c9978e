"""Chapter 0 (warm-up) exercises: a word count, a stable softmax, splitting attention heads.

These three quick problems show how exercises work (``check``, ``hint``, ``solution``) before
chapter 1, and they give ``slm-course grade`` a small, stable chapter to be tested on.
Expected values come from PyTorch and from :func:`slm_course.attention.split_heads`.
"""
from __future__ import annotations

import torch

from slm_course.attention import split_heads
from slm_course.exercises.core import Case, Problem, call, forbid, show

# The statement of q2 forbids PyTorch's own softmax; these are every public way to reach it (and
# its log-space twin, exp(log_softmax) being the same shortcut). See slm_course.exercises.rules.
SOFTMAX_SHORTCUTS = (
    "torch.softmax", "torch.nn.functional.softmax", "torch.Tensor.softmax", "torch.special.softmax",
    "torch.log_softmax", "torch.nn.functional.log_softmax", "torch.Tensor.log_softmax",
    "torch.special.log_softmax",
)


def _count_words_cases() -> list[Case]:
    # Expected counts are written out by hand: lower-case, split on any run of whitespace.
    return [
        Case('count_words("the cat saw the dog")', call("the cat saw the dog"),
             {"the": 2, "cat": 1, "saw": 1, "dog": 1}),
        # Punctuation stays on its word (the statement splits on whitespace only); digits are words.
        Case('count_words("To be, or NOT to be: 2 B")', call("To be, or NOT to be: 2 B"),
             {"to": 2, "be,": 1, "or": 1, "not": 1, "be:": 1, "2": 1, "b": 1}),
        Case('count_words("one  two\\nthree\\ttwo ")', call("one  two\nthree\ttwo "),
             {"one": 1, "two": 2, "three": 1}),
        Case('count_words("")', call(""), {}),
        # Not only ASCII: accented capitals lower-case too, and a no-break space is whitespace.
        Case('count_words("Élan élan\u00a0ÉLAN café")', call("Élan élan\u00a0ÉLAN café"), {"élan": 3, "café": 1}),
    ]


def _softmax_cases() -> list[Case]:
    small = torch.tensor([1.0, 2.0, 3.0])
    huge = torch.tensor([1000.0, 1001.0, 1002.0])  # exp(1000) overflows: subtract the max first
    rows = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 4
    negative = torch.tensor([[-5.0, 0.0, 5.0], [-1e4, -1e4, -1e4]])
    wide = torch.tensor([0.0, 100.0])  # shifting by the minimum (or the mean) leaves exp(100) = inf
    centred = torch.tensor([-100.0, 0.0, 100.0])  # mean 0: a mean shift does not help here
    cube = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 8  # the last dim is 2, not 1
    masked = torch.tensor([[0.0, float("-inf"), 1.0]])  # a masked-out entry, and a batch of one

    def guarded(x):
        return forbid(call(x), *SOFTMAX_SHORTCUTS, advice="Write it from `exp`, `max` and `sum`.")

    return [
        Case(f"softmax({show(small)})", guarded(small), lambda: torch.softmax(small, dim=-1)),
        Case(f"softmax({show(huge)})", guarded(huge), lambda: torch.softmax(huge, dim=-1)),
        Case("softmax(torch.arange(12.).reshape(3, 4) / 4)", guarded(rows), lambda: torch.softmax(rows, dim=-1)),
        Case(f"softmax({show(negative)})", guarded(negative), lambda: torch.softmax(negative, dim=-1)),
        Case(f"softmax({show(wide)})", guarded(wide), lambda: torch.softmax(wide, dim=-1)),
        Case(f"softmax({show(centred)})", guarded(centred), lambda: torch.softmax(centred, dim=-1)),
        Case("softmax(torch.arange(24.).reshape(2, 3, 4) / 8)", guarded(cube), lambda: torch.softmax(cube, dim=-1)),
        Case("softmax(tensor([[0.0, -inf, 1.0]]))  (a batch of one, a masked entry)", guarded(masked),
             lambda: torch.softmax(masked, dim=-1)),
    ]


def _split_heads_cases() -> list[Case]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, generator=generator)  # (B=2, T=3, D=8)
    one = torch.arange(12, dtype=torch.float32).reshape(1, 2, 6)  # (B=1, T=2, D=6)
    single = torch.tensor([[[1.0, 2.0, 3.0, 4.0]]])  # (B=1, T=1, D=4): a stray squeeze() shows
    return [
        Case("split_heads(x of shape (2, 3, 8), 2)", call(x, 2), lambda: split_heads(x, 2)),
        Case("split_heads(x of shape (2, 3, 8), 4)", call(x, 4), lambda: split_heads(x, 4)),
        Case("split_heads(arange(12).reshape(1, 2, 6), 3)", call(one, 3), lambda: split_heads(one, 3)),
        Case("split_heads(x of shape (2, 3, 8), 1)", call(x, 1), lambda: split_heads(x, 1)),
        Case("split_heads(x of shape (1, 1, 4), num_heads=2)  (one sequence of one token)", call(single, num_heads=2),
             lambda: split_heads(single, 2)),
    ]


q1 = Problem(
    name="q1", chapter="00", target="count_words", title="count words", cases=_count_words_cases,
    hints=[
        "Lower-case the text first, then split it into words on whitespace; a dict (or collections.Counter) "
        "counts them. Punctuation stays part of its word.",
        "Called with no argument, `str.split` cuts on any run of spaces, tabs and newlines and never "
        "yields an empty string: on 'A  b\\nA' lower-casing then splitting gives three words, and the "
        "counts are a: 2, b: 1.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="00", target="softmax", title="a numerically stable softmax", cases=_softmax_cases,
    hints=[
        "softmax(x)_i = exp(x_i) / Σ_j exp(x_j) over the last dimension. Subtracting the same number from "
        "every entry of a row changes nothing mathematically; choose the number that makes the largest "
        "entry 0, so no exp can overflow. `torch.softmax` is off limits here.",
        "Worked on one row: [1000, 1001, 1002] minus its largest entry is [-2, -1, 0], whose "
        "exponentials are finite; dividing each by their total gives about [0.09, 0.24, 0.67]. Take that "
        "largest entry per row, over the last dimension, keeping that dimension (size 1) so the "
        "subtraction broadcasts.",
    ],
    points=2,
)

q3 = Problem(
    name="q3", chapter="00", target="split_heads", title="split the features into attention heads",
    cases=_split_heads_cases,
    hints=[
        "Each head takes its own consecutive slice of the D features of every token: first cut the last "
        "dimension into (H, D // H), then move the head dimension in front of the tokens.",
        "Worked on shapes: an input of 1 × 2 × 6 cut into 3 heads is first viewed as 1 × 2 × 3 × 2 — "
        "token, head, feature — and only then are the token and head dimensions swapped, giving 1 × 3 × "
        "2 × 2.",
    ],
    points=2,
)
