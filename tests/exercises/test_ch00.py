"""Chapter 0's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import torch

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

    assert_check_behaviour(ch00.q1, SOLVED["count_words"], STUB["count_words"], [split_on_space, keeps_case])


def test_softmax():
    def naive(x):  # overflows to nan on large inputs
        return x.exp() / x.exp().sum(dim=-1, keepdim=True)

    def wrong_dim(x):
        shifted = x - x.max(dim=0, keepdim=True).values
        return shifted.exp() / shifted.exp().sum(dim=0, keepdim=True)

    assert_check_behaviour(ch00.q2, SOLVED["softmax"], STUB["softmax"], [naive, wrong_dim])
    partly = ch00.q2.check(naive, quiet=True)
    assert 0 < partly.passed < partly.total  # partial credit: right except where exp overflows


def test_split_heads():
    def no_transpose(x, num_heads):  # reshapes straight to (B, H, T, hd): mixes tokens across heads
        batch, tokens, width = x.shape
        return x.reshape(batch, num_heads, tokens, width // num_heads)

    def heads_last(x, num_heads):
        batch, tokens, width = x.shape
        return x.view(batch, tokens, num_heads, width // num_heads)

    assert_check_behaviour(ch00.q3, SOLVED["split_heads"], STUB["split_heads"], [no_transpose, heads_last])


def test_split_heads_solution_matches_the_package():
    x = torch.randn(2, 5, 12)
    torch.testing.assert_close(SOLVED["split_heads"](x, 3), ch00.split_heads(x, 3))
