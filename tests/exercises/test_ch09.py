"""Chapter 9's checks: each fails on the stub and on plausible wrong answers, and passes on the solution
and on correct alternatives."""
import math
import re

import numpy as np

from slm_course.evaluate import benchmarks as bm
from slm_course.evaluate import elo
from slm_course.exercises import ch09
from slm_course.exercises.core import CORRECT
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects

SOLVED = notebook_objects("09")
STUB = notebook_objects("09", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def passes(problem, answer):
    result = problem.check(answer, quiet=True)
    assert result.status == CORRECT, result.message


def test_pick_answer():
    def by_mean(t):  # rewards short options whose tokens are each likely
        means = [sum(o) / len(o) for o in t]
        return means.index(max(means))

    def last_of_ties(t):
        totals = [sum(o) for o in t]
        return max(i for i, v in enumerate(totals) if v == max(totals))

    def by_best_token(t):
        best = [max(o) for o in t]
        return best.index(max(best))

    def as_float(t):
        return float(int(np.argmax([sum(o) for o in t])))

    def by_product_of_probabilities(token_logprobs):  # underflows to 0.0 for long options: a false tie
        products = [math.prod(math.exp(lp) for lp in option) for option in token_logprobs]
        return products.index(max(products))

    check(ch09.q1, [by_mean, last_of_ties, by_best_token, as_float, by_product_of_probabilities])
    assert ch09.q1.check(lambda t: np.argmax([sum(o) for o in t]), quiet=True).status == CORRECT  # NumPy int
    passes(ch09.q1, lambda t: int(np.argmax([sum(o) for o in t])))  # numpy's argmax is a correct alternative


def test_pick_normalised():
    def counts_the_space(lls, opts):
        scores = [ll / len(" " + o) for ll, o in zip(lls, opts)]
        return scores.index(max(scores))

    def not_normalised(lls, opts):
        return lls.index(max(lls))

    def by_words(lls, opts):
        scores = [ll / len(o.split()) for ll, o in zip(lls, opts)]
        return scores.index(max(scores))

    def last_of_ties(lls, opts):
        scores = [ll / len(o) for ll, o in zip(lls, opts)]
        return max(i for i, s in enumerate(scores) if s == max(scores))

    def by_bytes(loglikelihoods, options):  # UTF-8 bytes: 日本 is 6 of them
        scores = [ll / len(o.encode("utf-8")) for ll, o in zip(loglikelihoods, options)]
        return scores.index(max(scores))

    def by_word_count(loglikelihoods, options):
        scores = [ll / len(o.split()) for ll, o in zip(loglikelihoods, options)]
        return scores.index(max(scores))

    check(ch09.q2, [counts_the_space, not_normalised, by_words, last_of_ties, by_bytes, by_word_count])
    passes(ch09.q2, lambda lls, opts: bm.pick_normalised(lls, opts))


def test_extract_answers():
    def first_number_for_flexible(text):
        strict = re.search(r"#### (\-?[0-9\.\,]+)", text)
        found = re.findall(r"(-?[$0-9.,]{2,})|(-?[0-9]+)", text)
        return (strict.group(1).strip() if strict else None, (found[0][0] or found[0][1]) if found else None)

    def digits_only(text):  # drops signs, commas and dollars
        strict = re.search(r"#### (\d+)", text)
        found = re.findall(r"\d+", text)
        return (strict.group(1) if strict else None, found[-1] if found else None)

    def as_list(text):
        return list(SOLVED["extract_answers"](text))

    def as_ints(text):
        s, f = SOLVED["extract_answers"](text)
        to_int = lambda v: None if v is None else int(float(re.sub(r"[,$]", "", v).rstrip(".")))  # noqa: E731
        return (to_int(s), to_int(f))

    def empty_string_when_missing(text):
        s, f = SOLVED["extract_answers"](text)
        return (s or "", f or "")

    solved = SOLVED["extract_answers"]

    def last_marker(text):  # split on the marker and read after the last one
        strict = re.match(r"\s*(-?[0-9.,]+)", text.split("####")[-1]) if "####" in text else None
        return (strict.group(1) if strict else None, solved(text)[1])

    def marker_at_line_start(text):  # ^#### with MULTILINE: misses a marker inside a line
        strict = re.search(r"^#### (\-?[0-9\.\,]+)", text, re.M)
        return (strict.group(1) if strict else None, solved(text)[1])

    def optional_space(text):  # "####5" is not a match in lm-eval
        strict = re.search(r"####\s*(\-?[0-9\.\,]+)", text)
        return (strict.group(1) if strict else None, solved(text)[1])

    def strips_the_period(text):
        strict, flexible = solved(text)
        return (strict.rstrip(".") if strict else None, flexible.rstrip(".") if flexible else None)

    check(ch09.q3, [first_number_for_flexible, digits_only, as_list, as_ints, empty_string_when_missing,
                    last_marker, marker_at_line_start, optional_space, strips_the_period])


def test_mc2():
    def naive_exp(lls, n):  # 0/0 on long answers
        probs = [math.exp(x) for x in lls]
        total = sum(probs)
        return sum(probs[:n]) / total if total else float("nan")

    def not_normalised(lls, n):
        return sum(math.exp(x) for x in lls[:n])

    def true_over_false(lls, n):
        shifted = [math.exp(x - max(lls)) for x in lls]
        return sum(shifted[:n]) / sum(shifted[n:])

    def mc1_instead(lls, n):
        return float(lls.index(max(lls)) < n)

    def shift_by_true_max(lls, true_count):  # exp(-5 - (-1000)) overflows
        top = max(lls[:true_count])
        probs = [math.exp(ll - top) for ll in lls]
        return sum(probs[:true_count]) / sum(probs)

    check(ch09.q4, [naive_exp, not_normalised, true_over_false, mc1_instead, shift_by_true_max])

    def with_numpy_logsumexp(lls, true_count):  # another right answer (a NumPy float)
        a = np.asarray(lls)
        return np.exp(np.logaddexp.reduce(a[:true_count]) - np.logaddexp.reduce(a))

    assert ch09.q4.check(with_numpy_logsumexp, quiet=True).status == CORRECT
    passes(ch09.q4, lambda lls, n: float(np.exp(np.array(lls[:n]) - np.logaddexp.reduce(lls)).sum()))


def test_elo_update():
    def base_e(a, b, s, k):
        e = 1 / (1 + math.exp((b - a) / 400))
        return (a + k * (s - e), b - k * (s - e))

    def both_gain(a, b, s, k):
        e = 1 / (1 + 10 ** ((b - a) / 400))
        return (a + k * (s - e), b + k * (s - e))

    def flipped_expectation(a, b, s, k):
        e = 1 / (1 + 10 ** ((a - b) / 400))
        return (a + k * (s - e), b - k * (s - e))

    def as_list(a, b, s, k):
        return list(elo.elo_update(a, b, s, k))

    solved = SOLVED["elo_update"]

    def one_decimal(rating_a, rating_b, score_a, k):
        a, b = solved(rating_a, rating_b, score_a, k)
        return (round(a, 1), round(b, 1))

    def capital_k(rating_a, rating_b, score_a, K):  # elo_update(..., k=12) fails
        return solved(rating_a, rating_b, score_a, K)

    check(ch09.q5, [base_e, both_gain, flipped_expectation, as_list, one_decimal, capital_k])

    def in_float32(rating_a, rating_b, score_a, k):  # another right answer: float32 tensors, float() out
        import torch

        ra, rb = torch.tensor(rating_a, dtype=torch.float32), torch.tensor(rating_b, dtype=torch.float32)
        change = k * (score_a - 1 / (1 + 10 ** ((rb - ra) / 400)))
        return (float(ra + change), float(rb - change))

    assert ch09.q5.check(in_float32, quiet=True).status == CORRECT
    passes(ch09.q5, lambda a, b, s, k: elo.elo_update(a, b, s, k))


def test_bradley_terry():
    def natural_log_scale(games):  # forgets 400 / ln(10)
        r = elo.bradley_terry(games, l2=0.0)
        return {p: 1000 + (v - 1000) * math.log(10) / 400 for p, v in r.items()}

    def not_centred(games):
        r = elo.bradley_terry(games, l2=0.0)
        return {p: v - 1000 for p, v in r.items()}

    def ties_as_wins(games):
        return elo.bradley_terry([(a, b, 1.0 if s == 0.5 else s) for a, b, s in games], l2=0.0)

    def online_elo(games):
        return elo.elo_ratings(games)

    def zermelo(iterations):
        def fit(games):
            players = sorted({p for a, b, _ in games for p in (a, b)})
            wins = {p: 0.0 for p in players}
            for a, b, score in games:
                wins[a] += score
                wins[b] += 1 - score
            s = {p: 1.0 for p in players}
            for _ in range(iterations):
                s = {p: wins[p] / sum(1 / (s[a] + s[b]) for a, b, _ in games if p in (a, b)) for p in players}
            r = {p: 400 * math.log10(v) for p, v in s.items()}
            shift = sum(r.values()) / len(r) - 1000
            return {p: v - shift for p, v in r.items()}
        return fit

    def one_decimal(games):
        return {p: round(v, 1) for p, v in SOLVED["bradley_terry"](games).items()}

    check(ch09.q6, [natural_log_scale, not_centred, ties_as_wins, online_elo, zermelo(20), zermelo(50),
                    one_decimal])
    assert ch09.q6.check(zermelo(3000), quiet=True).status == CORRECT  # Zermelo run to convergence
    assert ch09.q6.check(lambda games: elo.bradley_terry(games, l2=0.0), quiet=True).status == CORRECT  # Newton
    passes(ch09.q6, lambda games: elo.bradley_terry(games))  # the package's regularised fit is within 0.5


def test_solutions_match_the_package():
    assert SOLVED["pick_answer"]([[-1.0], [-0.5, -0.2]]) == bm.pick([-1.0, -0.7])
    text = "It is 12.\n#### 12"
    assert SOLVED["extract_answers"](text) == (bm.extract_strict(text), bm.extract_flexible(text))
    assert SOLVED["mc2"]([-1.0, -2.0], 1) == bm.truthfulqa_mc2([-1.0, -2.0], 1)
