"""Chapter 2's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import math

import torch
import torch.nn.functional as F

from slm_course import attention
from slm_course.exercises import ch02
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects

SOLVED = notebook_objects("02")
STUB = notebook_objects("02", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def test_causal_mask():
    def hides_itself_too(n):
        return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=0)

    def hides_the_past(n):  # True where a token MAY look: the inverse convention
        return torch.tril(torch.ones(n, n, dtype=torch.bool))

    def float_mask(n):
        return torch.triu(torch.ones(n, n), diagonal=1)

    check(ch02.q1, [hides_itself_too, hides_the_past, float_mask])


def test_masked_softmax():
    def fills_zero(scores, mask):  # exp(0) = 1: the hidden positions still get weight
        return torch.softmax(scores.masked_fill(mask, 0.0), dim=-1)

    def zeroes_after_softmax(scores, mask):  # rows no longer sum to 1
        return torch.softmax(scores, dim=-1).masked_fill(mask, 0.0)

    def wrong_dim(scores, mask):
        return torch.softmax(scores.masked_fill(mask, float("-inf")), dim=-2)

    def fills_in_place(scores, mask):  # masked_fill_ edits the caller's scores
        return torch.softmax(scores.masked_fill_(mask, float("-inf")), dim=-1)

    def unshifted_exp(scores, mask):  # exp by hand without the max shift: inf / inf on a score of 100
        exps = scores.exp().masked_fill(mask, 0.0)
        return exps / exps.sum(dim=-1, keepdim=True)

    check(ch02.q2, [fills_zero, zeroes_after_softmax, wrong_dim, fills_in_place, unshifted_exp])
    assert "changed its input `scores` in place" in ch02.q2.check(fills_in_place, quiet=True).reason

    def large_negative(scores, mask):  # a correct alternative: exp(-1e9 - max) is exactly 0 in float32
        return torch.softmax(scores.masked_fill(mask, -1e9), dim=-1)

    def where_form(scores, mask):
        return torch.where(mask, float("-inf"), scores).softmax(-1)

    for answer in (large_negative, where_form):
        assert ch02.q2.check(answer, quiet=True).correct, answer.__name__


def test_attention_scores():
    def unscaled(q, k):
        return q @ k.transpose(-2, -1)

    def divided_by_d(q, k):
        return q @ k.transpose(-2, -1) / q.shape[-1]

    def scaled_by_token_count(q, k):
        return q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2])

    check(ch02.q3, [unscaled, divided_by_d, scaled_by_token_count])
    partly = ch02.q3.check(scaled_by_token_count, quiet=True)
    assert partly.passed < partly.total


def test_simple_self_attention():
    def no_softmax(x):
        return x @ x.transpose(-2, -1) @ x

    def softmax_over_columns(x):
        return torch.softmax(x @ x.transpose(-2, -1), dim=-2) @ x

    def scaled(x):
        return torch.softmax(x @ x.transpose(-2, -1) / math.sqrt(x.shape[-1]), dim=-1) @ x

    check(ch02.q4, [no_softmax, softmax_over_columns, scaled])


def test_merge_heads():
    def no_transpose(x):
        b, h, t, d = x.shape
        return x.reshape(b, t, h * d)

    def heads_last(x):
        b, h, t, d = x.shape
        return x.permute(0, 2, 3, 1).reshape(b, t, h * d)  # interleaves heads feature by feature

    check(ch02.q5, [no_transpose, heads_last])
    assert ch02.q5.check(no_transpose, quiet=True).passed == 1  # right only for a single head


def test_causal_self_attention():
    def not_causal(q, k, v):
        w = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1]), dim=-1)
        return w @ v, w

    def unscaled(q, k, v):
        scores = (q @ k.transpose(-2, -1)).masked_fill(attention.causal_mask(q.shape[-2]), float("-inf"))
        w = torch.softmax(scores, dim=-1)
        return w @ v, w

    def context_only(q, k, v):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def as_list(q, k, v):  # the statement says a tuple (context, weights)
        context, weights = attention.scaled_dot_product(q, k, v, causal=True, return_weights=True)
        return [context, weights]

    def swapped(q, k, v):
        context, weights = attention.scaled_dot_product(q, k, v, causal=True, return_weights=True)
        return weights, context

    check(ch02.q6, [not_causal, unscaled, context_only, as_list, swapped])
    assert "expected a tuple, got a list" in ch02.q6.check(as_list, quiet=True).reason
    assert ": context: the shape (5, 4) and dtype are right" in ch02.q6.check(unscaled, quiet=True).reason


def test_multi_head_attention():
    def one_big_head(x, w, h):  # ignores num_heads
        q, k, v = (x @ w.T).chunk(3, dim=-1)
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)

    def not_causal(x, w, h):
        q, k, v = (attention.split_heads(t, h) for t in (x @ w.T).chunk(3, dim=-1))
        return attention.merge_heads(F.scaled_dot_product_attention(q, k, v))

    def heads_split_without_transpose(x, w, h):
        b, t, d = x.shape
        q, k, v = (part.reshape(b, h, t, d // h) for part in (x @ w.T).chunk(3, dim=-1))
        return attention.merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))

    def keys_first(x, w, h):  # the chunks are Q, K, V in that order
        k, q, v = (attention.split_heads(t, h) for t in (x @ w.T).chunk(3, dim=-1))
        return attention.merge_heads(F.scaled_dot_product_attention(q, k, v, is_causal=True))

    check(ch02.q7, [one_big_head, not_causal, heads_split_without_transpose, keys_first])


def test_local_causal_mask():
    def future_only(n, window):  # the plain causal mask: the window ignored
        return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)

    def off_by_one_window(n, window):  # hides i - j > window: one token too many visible
        return torch.triu(torch.ones(n, n, dtype=torch.bool), 1) | torch.ones(n, n, dtype=torch.bool).tril(-window - 1)

    def allowed_instead_of_hidden(n, window):  # True where a token MAY look
        return ~(torch.triu(torch.ones(n, n, dtype=torch.bool), 1) | torch.ones(n, n, dtype=torch.bool).tril(-window))

    def float_mask(n, window):
        return (torch.triu(torch.ones(n, n), 1) + torch.ones(n, n).tril(-window)).clamp(max=1)

    check(ch02.q8, [future_only, off_by_one_window, allowed_instead_of_hidden, float_mask])

    def by_distance(n, window):  # a correct alternative from index arithmetic
        i = torch.arange(n).unsqueeze(1)
        j = torch.arange(n).unsqueeze(0)
        return (j > i) | (i - j >= window)

    assert ch02.q8.check(by_distance, quiet=True).correct
    torch.testing.assert_close(SOLVED["local_causal_mask"](4, 4), attention.causal_mask(4))


def test_solutions_match_the_package():
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    context, weights = SOLVED["causal_self_attention"](q, k, v)
    expected_context, expected_weights = attention.scaled_dot_product(q, k, v, return_weights=True)
    torch.testing.assert_close(context, expected_context)
    torch.testing.assert_close(weights, expected_weights)
    torch.testing.assert_close(SOLVED["causal_mask"](6), attention.causal_mask(6))


def test_every_problem_has_hints_and_at_least_two_cases():
    problems = [ch02.q1, ch02.q2, ch02.q3, ch02.q4, ch02.q5, ch02.q6, ch02.q7, ch02.q8]
    for problem in problems:
        assert len(problem.hints) >= 2
        assert len(problem.prepare()) >= 2
        assert problem.target in SOLVED


def test_multi_head_attention_batch_of_one_by_name():
    def squeezed(inputs, qkv_weight, num_heads):  # squeezes the batch away
        return SOLVED["multi_head_attention"](inputs, qkv_weight, num_heads).squeeze()

    def other_name(inputs, qkv_weight, heads):
        return SOLVED["multi_head_attention"](inputs, qkv_weight, heads)

    for answer in (squeezed, other_name):
        result = ch02.q7.check(answer, quiet=True)
        assert result.status == "incorrect", answer.__name__
