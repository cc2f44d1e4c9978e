"""Chapter 0's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import re
from collections import Counter

import torch
import torch.nn.functional as F

from slm_course.exercises import ch00
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects

SOLVED = notebook_objects("00")
STUB = notebook_objects("00", stub=True)


def test_count_words():
    def split_on_space(text):  # split(" ") keeps empty strings and newlines inside words
        counts = {}
        for word in text.lower().split(" "):
            counts[word] = counts.get(word, 0) + 1
        return counts

    def keeps_case(text):
        counts = {}
        for word in text.split():
            counts[word] = counts.get(word, 0) + 1
        return counts

    def strips_punctuation(text):  # the statement splits on whitespace only: "hello," is a word
        return dict(Counter(re.findall(r"\w+", text.lower())))

    def float_counts(text):  # counts are ints
        counts = {}
        for word in text.lower().split():
            counts[word] = counts.get(word, 0.0) + 1
        return counts

    assert_check_behaviour(ch00.q1, SOLVED["count_words"], STUB["count_words"],
                           [split_on_space, keeps_case, strips_punctuation, float_counts])
    assert ch00.q1.check(lambda text: Counter(text.lower().split()), quiet=True).correct  # a Counter is a dict


def test_softmax():
    def naive(x):  # overflows to nan on large inputs
        return x.exp() / x.exp().sum(dim=-1, keepdim=True)

    def wrong_dim(x):
        shifted = x - x.max(dim=0, keepdim=True).values
        return shifted.exp() / shifted.exp().sum(dim=0, keepdim=True)

    def shifts_by_min(x):  # "stable" the wrong way round: nan on [0., 100.]
        shifted = x - x.min(dim=-1, keepdim=True).values
        return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)

    def shifts_by_mean(x):  # exp(100) still overflows on [-100., 0., 100.]
        shifted = x - x.mean(dim=-1, keepdim=True)
        return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)

    def global_max(x):  # one max for the whole tensor: a row far below it underflows to 0 / 0
        shifted = x - x.max()
        return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)

    def in_place(x):  # edits the caller's tensor
        x -= x.max(dim=-1, keepdim=True).values
        x.exp_()
        return x / x.sum(dim=-1, keepdim=True)

    def dim_one(x):  # right for 1-D and 2-D inputs only
        shifted = x - x.max(dim=1 if x.dim() > 1 else 0, keepdim=True).values
        return shifted.exp() / shifted.exp().sum(dim=1 if x.dim() > 1 else 0, keepdim=True)

    def uses_torch_softmax(x):  # the statement forbids it
        return torch.softmax(x, dim=-1)

    def uses_functional(x):
        return F.softmax(x, dim=-1)

    def uses_method(x):
        return x.softmax(-1)

    def uses_log_softmax(x):
        return x.log_softmax(-1).exp()

    wrong = [naive, wrong_dim, shifts_by_min, shifts_by_mean, global_max, in_place, dim_one, uses_torch_softmax,
             uses_functional, uses_method, uses_log_softmax]
    assert_check_behaviour(ch00.q2, SOLVED["softmax"], STUB["softmax"], wrong)
    assert "nan" not in ch00.q2.check(shifts_by_min, quiet=True).reason.replace("NaN", "")
    assert "got NaN" in ch00.q2.check(shifts_by_min, quiet=True).reason
    assert "changed its input `x` in place" in ch00.q2.check(in_place, quiet=True).reason
    assert "asks you not to use" in ch00.q2.check(uses_method, quiet=True).reason
    assert torch.softmax(torch.zeros(2), -1).sum() == 1  # the real function is back after the check
    partly = ch00.q2.check(naive, quiet=True)
    assert 0 < partly.passed < partly.total  # partial credit: right except where exp overflows


def test_softmax_correct_alternatives_pass():
    def logsumexp_form(x):  # exp(x - logsumexp(x)) is as stable and allowed
        return (x - x.logsumexp(dim=-1, keepdim=True)).exp()

    def amax_form(x):
        exps = (x - x.amax(dim=-1, keepdim=True)).exp()
        return exps / exps.sum(dim=-1, keepdim=True)

    def clone_then_in_place(x):  # in-place on a copy is fine
        y = x.clone()
        y -= y.max(dim=-1, keepdim=True).values
        return y.exp_() / y.sum(dim=-1, keepdim=True)

    for answer in (logsumexp_form, amax_form, clone_then_in_place):
        assert ch00.q2.check(answer, quiet=True).correct, answer.__name__


def test_split_heads():
    def no_transpose(x, num_heads):  # reshapes straight to (B, H, T, hd): mixes tokens across heads
        batch, tokens, width = x.shape
        return x.reshape(batch, num_heads, tokens, width // num_heads)

    def heads_last(x, num_heads):
        batch, tokens, width = x.shape
        return x.view(batch, tokens, num_heads, width // num_heads)

    def strided_heads(x, num_heads):  # head h gets features h, h + H, ... instead of a consecutive slice
        batch, tokens, width = x.shape
        return x.view(batch, tokens, width // num_heads, num_heads).permute(0, 3, 1, 2)

    assert_check_behaviour(ch00.q3, SOLVED["split_heads"], STUB["split_heads"], [no_transpose, heads_last, strided_heads])
    permuted = lambda x, num_heads: x.reshape(x.shape[0], x.shape[1], num_heads, -1).permute(0, 2, 1, 3)  # noqa: E731
    assert ch00.q3.check(permuted, quiet=True).correct


def test_split_heads_solution_matches_the_package():
    x = torch.randn(2, 5, 12)
    torch.testing.assert_close(SOLVED["split_heads"](x, 3), ch00.split_heads(x, 3))


def test_mistakes_the_statements_rule_out():
    # count_words: ASCII-only lower-casing, and splitting on the space, tab and newline characters only.
    def ascii_lower(text):
        lowered = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
        return dict(Counter(lowered.split()))

    def three_whitespace_kinds(text):  # a no-break space is whitespace too
        return dict(Counter(w for w in re.split(r"[ \t\n]+", text.lower()) if w))

    for answer in (ascii_lower, three_whitespace_kinds):
        assert ch00.q1.check(answer, quiet=True).status == "incorrect", answer.__name__

    # softmax: the largest entry found by max over a row with -inf works; a stray squeeze() does not.
    def squeezed(x):
        shifted = x - x.max(dim=-1, keepdim=True).values
        return (shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)).squeeze()

    def shift_by_first(x):  # subtracting x[..., :1]: -inf minus -inf on a masked first entry, or overflow
        shifted = x - x[..., :1]
        return shifted.exp() / shifted.exp().sum(dim=-1, keepdim=True)

    for answer in (squeezed, shift_by_first):
        assert ch00.q2.check(answer, quiet=True).status == "incorrect", answer.__name__

    # split_heads: called with num_heads by name; squeezing drops a batch of one and a single token.
    def squeezed_heads(x, num_heads):
        batch, tokens, width = x.shape
        return x.view(batch, tokens, num_heads, width // num_heads).transpose(1, 2).squeeze()

    def other_name(x, heads):
        batch, tokens, width = x.shape
        return x.view(batch, tokens, heads, width // heads).transpose(1, 2)

    for answer in (squeezed_heads, other_name):
        assert ch00.q3.check(answer, quiet=True).status == "incorrect", answer.__name__
    # A correct alternative: reshape and permute.
    assert ch00.q3.check(lambda x, num_heads: x.reshape(*x.shape[:2], num_heads, -1).permute(0, 2, 1, 3),
                         quiet=True).correct
