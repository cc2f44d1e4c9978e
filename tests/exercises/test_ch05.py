"""Chapter 5's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import math

import torch
import torch.nn.functional as F

from slm_course import generate
from slm_course.exercises import ch05
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects

SOLVED = notebook_objects("05")
STUB = notebook_objects("05", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def test_perplexity():
    def mean_of_exps(losses):  # the classic mistake: average the per-token perplexities
        return sum(math.exp(x) for x in losses) / len(losses)

    def exp_of_sum(losses):
        return math.exp(sum(losses))

    def base_two(losses):  # bits, not nats
        return 2 ** (sum(losses) / len(losses))

    def a_tensor(losses):  # the value, but not a float
        return torch.tensor(losses).mean().exp()

    def product_of_perplexities(losses):  # the geometric mean as a product: overflows on a long text
        return math.prod(math.exp(x) for x in losses) ** (1 / len(losses))

    check(ch05.q1, [mean_of_exps, exp_of_sum, base_two, a_tensor, product_of_perplexities])

    # Correct alternatives: computed in float32 tensors and returned with float(); a NumPy float.
    assert ch05.q1.check(lambda token_losses: float(torch.tensor(token_losses).mean().exp()), quiet=True).correct
    import numpy as np

    assert ch05.q1.check(lambda token_losses: np.exp(np.mean(token_losses)), quiet=True).correct


def test_temperature():
    def multiplies(logits, t):
        return torch.softmax(logits * t, dim=-1)

    def wrong_dim(logits, t):
        return torch.softmax(logits / t, dim=0)

    def after_softmax(logits, t):  # temperature applied to probabilities and renormalised: not the same
        p = torch.softmax(logits, dim=-1) / t
        return p / p.sum(-1, keepdim=True)

    def no_shift(logits, temperature):  # exp of scores in the hundreds overflows
        e = (logits / temperature).exp()
        return e / e.sum(-1, keepdim=True)

    def rows_only(logits, temperature):  # dim=1: right for 2-D inputs only
        return torch.softmax(logits / temperature, dim=1 if logits.dim() > 1 else 0)

    def whole_temperature(logits, temperature):  # floor division: right only for whole temperatures
        return torch.softmax(logits / (temperature // 1 or 1), dim=-1)

    check(ch05.q2, [multiplies, wrong_dim, after_softmax, no_shift, rows_only, whole_temperature])
    # A correct alternative: softmax written by hand with the max shift.
    def by_hand(logits, temperature):
        z = logits / temperature
        e = (z - z.amax(-1, keepdim=True)).exp()
        return e / e.sum(-1, keepdim=True)

    assert ch05.q2.check(by_hand, quiet=True).correct


def test_top_k():
    def zero_not_inf(logits, k):
        kth = torch.topk(logits, min(k, logits.shape[-1]), dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, 0.0)

    def scatter_drops_ties(logits, k):  # exactly k by index: a tie at the cut loses a token
        k = min(k, logits.shape[-1])
        out = torch.full_like(logits, float("-inf"))
        idx = torch.topk(logits, k, dim=-1).indices
        return out.scatter(-1, idx, logits.gather(-1, idx))

    def in_place(logits, k):
        if k >= logits.shape[-1]:
            return logits
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill_(logits < kth, float("-inf"))

    def crashes_past_vocab(logits, k):  # no guard: topk with k > vocab raises
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))

    def off_by_one(logits, k):
        if k >= logits.shape[-1]:
            return logits
        kth = torch.topk(logits, k + 1, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf"))

    def rows_only(logits, k):  # indexes the second dimension: right for 2-D inputs only
        if k >= logits.shape[-1]:
            return logits
        kth = torch.topk(logits, k, dim=1).values[:, -1:]
        return logits.masked_fill(logits < kth, float("-inf"))

    def stray_squeeze(logits, k):  # drops a batch of one
        if k >= logits.shape[-1]:
            return logits
        kth = torch.topk(logits, k, dim=-1).values[..., -1:]
        return logits.masked_fill(logits < kth, float("-inf")).squeeze()

    check(ch05.q3, [zero_not_inf, scatter_drops_ties, in_place, crashes_past_vocab, off_by_one, rows_only,
                    stray_squeeze])


def test_top_p():
    def drops_the_crossing_token(logits, p):  # keep only while the cumulative mass stays within p
        s, _ = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(s, -1)
        keep = torch.cumsum(probs, -1) <= p
        keep[..., 0] = True
        t = s.masked_fill(~keep, float("inf")).amin(-1, keepdim=True)
        return logits.masked_fill(logits < t, float("-inf"))

    def by_index_no_ties(logits, p):  # right cut, but by sorted index: a tie is split
        s, order = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(s, -1)
        remove_sorted = torch.cumsum(probs, -1) - probs >= p
        remove = remove_sorted.scatter(-1, order, remove_sorted)
        return logits.masked_fill(remove, float("-inf"))

    def ascending(logits, p):  # sorted the wrong way: keeps the least likely tokens
        s, _ = torch.sort(logits, dim=-1)
        probs = torch.softmax(s, -1)
        keep = torch.cumsum(probs, -1) - probs < p
        t = s.masked_fill(~keep, float("-inf")).amax(-1, keepdim=True)
        return logits.masked_fill(logits > t, float("-inf"))

    def may_keep_nothing(logits, p):  # strict test on the cumulative mass including the token itself
        s, _ = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(s, -1)
        keep = torch.cumsum(probs, -1) < p
        t = s.masked_fill(~keep, float("inf")).amin(-1, keepdim=True)
        return logits.masked_fill(logits < t, float("-inf"))

    def no_guard_at_one(logits, p):  # the cut alone: at p = 1 a large vocabulary's tail is dropped
        s, _ = torch.sort(logits, dim=-1, descending=True)
        probs = torch.softmax(s, dim=-1)
        keep = torch.cumsum(probs, dim=-1) - probs < p
        t = s.masked_fill(~keep, float("inf")).amin(dim=-1, keepdim=True)
        return logits.masked_fill(logits < t, float("-inf"))

    def rows_only(logits, p):  # dim=1 throughout: right for 2-D inputs only
        if p >= 1:
            return logits
        s, _ = torch.sort(logits, dim=1, descending=True)
        probs = torch.softmax(s, dim=1)
        keep = torch.cumsum(probs, dim=1) - probs < p
        t = s.masked_fill(~keep, float("inf")).amin(dim=1, keepdim=True)
        return logits.masked_fill(logits < t, float("-inf"))

    def stray_squeeze(logits, p):
        return generate.top_p_filter(logits, p).squeeze()

    check(ch05.q4, [drops_the_crossing_token, by_index_no_ties, ascending, may_keep_nothing, no_guard_at_one,
                    rows_only, stray_squeeze])

    def through_the_package(logits, p):  # a correct alternative
        return generate.top_p_filter(logits, p)

    assert ch05.q4.check(through_the_package, quiet=True).correct


def test_decode_step():
    def forgets_the_new_token(q, kn, vn, kp, vp):
        w = torch.softmax(q @ kp.transpose(-2, -1) / math.sqrt(q.shape[-1]), -1)
        return (w @ vp, torch.cat([kp, kn], -2), torch.cat([vp, vn], -2))

    def is_causal_with_one_query(q, kn, vn, kp, vp):  # the top-left mask hides every key but the first
        k, v = torch.cat([kp, kn], -2), torch.cat([vp, vn], -2)
        return (F.scaled_dot_product_attention(q, k, v, is_causal=True), k, v)

    def no_scaling(q, kn, vn, kp, vp):
        k, v = torch.cat([kp, kn], -2), torch.cat([vp, vn], -2)
        return (torch.softmax(q @ k.transpose(-2, -1), -1) @ v, k, v)

    def new_first(q, kn, vn, kp, vp):  # same output (attention ignores order) but the cache order is wrong
        k, v = torch.cat([kn, kp], -2), torch.cat([vn, vp], -2)
        return (F.scaled_dot_product_attention(q, k, v), k, v)

    def a_list(q, kn, vn, kp, vp):
        k, v = torch.cat([kp, kn], -2), torch.cat([vp, vn], -2)
        return [F.scaled_dot_product_attention(q, k, v), k, v]

    check(ch05.q5, [forgets_the_new_token, is_causal_with_one_query, no_scaling, new_first, a_list])

    def scaled_by_keys(q, k_new, v_new, k_past, v_past):  # √(number of keys), not √d
        k, v = torch.cat([k_past, k_new], -2), torch.cat([v_past, v_new], -2)
        return (torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(k.shape[-2]), -1) @ v, k, v)

    assert not ch05.q5.check(scaled_by_keys, quiet=True).correct

    def with_sdpa(q, k_new, v_new, k_past, v_past):  # a correct alternative: no mask (the statement's names)
        k, v = torch.cat([k_past, k_new], -2), torch.cat([v_past, v_new], -2)
        return (F.scaled_dot_product_attention(q, k, v), k, v)

    assert ch05.q5.check(with_sdpa, quiet=True).correct


def test_min_p():
    def on_logits(logits, m):  # compares logits with min_p × max logit: not probabilities
        return logits.masked_fill(logits < m * logits.amax(-1, keepdim=True), float("-inf"))

    def global_max(logits, m):  # one cut for the whole batch instead of per row
        probs = torch.softmax(logits, -1)
        return logits.masked_fill(probs < m * probs.max(), float("-inf"))

    def absolute(logits, m):  # a fixed floor of min_p, not relative to the top token
        return logits.masked_fill(torch.softmax(logits, -1) < m, float("-inf"))

    def drops_at_the_cut(logits, min_p):  # `<=`: a token exactly at the cut is removed
        probs = torch.softmax(logits, -1)
        return logits.masked_fill(probs <= min_p * probs.amax(-1, keepdim=True), float("-inf"))

    def no_shift(logits, min_p):  # probabilities from exp without the max shift: NaN for large scores
        e = logits.exp()
        probs = e / e.sum(-1, keepdim=True)
        return logits.masked_fill(probs < min_p * probs.amax(-1, keepdim=True), float("-inf"))

    def rows_only(logits, min_p):  # dim=1: right for 2-D inputs only
        probs = torch.softmax(logits, 1)
        return logits.masked_fill(probs < min_p * probs.amax(1, keepdim=True), float("-inf"))

    check(ch05.q6, [on_logits, global_max, absolute, drops_at_the_cut, no_shift, rows_only])

    def ratio_of_logits(logits, min_p):  # a correct alternative: compare in log space
        log_probs = torch.log_softmax(logits, -1)
        cut = log_probs.amax(-1, keepdim=True) + math.log(min_p) if min_p > 0 else float("-inf")
        return logits.masked_fill(log_probs < cut, float("-inf"))

    assert ch05.q6.check(ratio_of_logits, quiet=True).correct


def test_solutions_equal_the_package():
    logits = torch.randn(4, 50, generator=torch.Generator().manual_seed(0)) * 2
    assert torch.equal(SOLVED["top_k_filter"](logits, 7), generate.top_k_filter(logits, 7))
    assert torch.equal(SOLVED["top_p_filter"](logits, 0.8), generate.top_p_filter(logits, 0.8))
    wide = torch.randn(1, 49152, generator=torch.Generator().manual_seed(1)) * 8  # a real vocabulary
    assert torch.equal(SOLVED["top_p_filter"](wide, 1.0), wide)  # p = 1 keeps every token
    assert torch.equal(SOLVED["min_p_filter"](logits, 0.1), generate.min_p_filter(logits, 0.1))
    torch.testing.assert_close(SOLVED["temperature_probs"](logits, 0.7), generate.logits_to_probs(logits, 0.7))
    assert SOLVED["perplexity"]([1.0, 2.0]) == generate.perplexity_from_losses([1.0, 2.0])
    q, kn, vn = (torch.randn(1, 2, 1, 4) for _ in range(3))
    kp, vp = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    for mine, theirs in zip(SOLVED["decode_step"](q, kn, vn, kp, vp), generate.attend_one_step(q, kn, vn, kp, vp)):
        torch.testing.assert_close(mine, theirs)
