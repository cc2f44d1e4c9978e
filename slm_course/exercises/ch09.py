"""Chapter 9 exercises (benchmarks and leaderboards): pick an answer, length normalisation, GSM8k
extraction, TruthfulQA MC2, one Elo update, a Bradley–Terry fit.

Expected values come from :mod:`slm_course.evaluate`, the harness the chapter runs.
"""
from __future__ import annotations

import functools
import math

from slm_course.evaluate import benchmarks as bm
from slm_course.evaluate import elo
from slm_course.exercises.compare import compare_values
from slm_course.exercises.core import Case, Problem, call

# ratings near 1000 in float32 are good to 1e-4 points; one decimal of rounding is 0.05
_RATING = functools.partial(compare_values, rtol=1e-6, atol=1e-6)


def _pick_cases() -> list[Case]:
    tables = {
        "two options, one token each": [[-1.2], [-0.7]],
        "a long option whose tokens are each likely but whose sum is lower": [[-0.5, -0.5, -0.5, -0.5], [-1.5]],
        "a tie between options 1 and 2 (the first wins)": [[-3.0], [-1.0, -1.0], [-2.0]],
        "four options, the answer last": [[-5.0, -1.0], [-4.0, -3.0], [-6.5], [-0.2, -0.3, -0.1]],
        "option 0 the best": [[-0.1], [-2.0, -0.05], [-9.0]],
        "two options of 300 tokens: a product of probabilities underflows to 0 for both": [[-3.0] * 300, [-2.9] * 300],
    }
    return [Case(f"pick_answer({_short(t)}) — {what}", call(t), lambda t=t: bm.pick([sum(o) for o in t]))
            for what, t in tables.items()]


def _short(table: list[list[float]]) -> str:
    """A table for a label: long options written as [-3.0] * 300."""
    return "[" + ", ".join(f"[{o[0]}] * {len(o)}" if len(o) > 8 and len(set(o)) == 1 else str(o) for o in table) + "]"


def _normalised_cases() -> list[Case]:
    rows = [
        ([-3.0, -4.0], ["yes", "absolutely not"]),
        ([-6.0, -6.0], ["ab", "abc"]),  # per character: -3 vs -2
        ([-3.0, -3.0, -6.0], ["cat", "dog", "cow"]),  # a tie: the first wins
        ([-2.0, -3.1], ["a", "ab"]),  # counting the prompt's leading space too flips this one
        ([-1.0, -20.0], ["I", "twenty characters!!!"]),
        ([-4.5, -4.0, -9.0, -7.0], ["Paris", "Lyon", "Marseille", "Nice, France"]),
        ([-3.0, -6.0], ["日本", "Japan"]),  # 2 characters but 6 bytes: characters, not bytes
        ([-2.0, -9.0], ["no", "not at all"]),  # characters, not words
    ]
    return [Case(f"pick_normalised({lls}, {opts})", call(lls, opts), lambda l=lls, o=opts: bm.pick_normalised(l, o))
            for lls, opts in rows]


def _extract_cases() -> list[Case]:
    texts = [
        "She has 3 + 4 = 7 apples.\n#### 7",
        "He pays 12 and gets 30 back, so 18 in all.",
        "#### -5 and then 12 more",
        "no number at all",
        "It costs $1,250.50 in total.",
        "First 2, then 10.\n#### 1,200\nThat is 1200.",
        "The answer is 0",
        "So 2 #### 4\n#### 5",  # several markers, the first not at a line start: strict takes the first
        "####5 has no space after the marker",
        "  #### 18.  \n",  # a trailing period is part of lm-eval's match; whitespace around it
        "#### -3,000.50 dollars, not 3000",
    ]
    return [Case(f"extract_answers({t!r})", call(t), lambda t=t: (bm.extract_strict(t), bm.extract_flexible(t)))
            for t in texts]


def _mc2_cases() -> list[Case]:
    rows = [
        ([math.log(0.2), math.log(0.1), math.log(0.1)], 1),
        ([-1.0, -2.0, -0.5, -3.0], 2),
        ([-1000.0, -1001.0, -1003.0], 1),  # long answers: naive exp underflows to 0/0
        ([-0.1, -0.1, -0.1, -0.1, -0.1], 3),
        ([-1000.0, -5.0, -6.0], 1),  # shifting by the true answers' maximum overflows exp
        ([-20.0, -30.0, -1.0, -40.0, -2.0, -2.5], 4),
    ]
    return [Case(f"mc2({lls}, true_count={n})", call(lls, n), lambda l=lls, n=n: bm.truthfulqa_mc2(l, n))
            for lls, n in rows]


def _elo_cases() -> list[Case]:
    rows = [(1000.0, 1000.0, 1.0, 32.0), (1000.0, 1000.0, 0.5, 32.0), (1400.0, 1000.0, 0.0, 32.0),
            (1200.0, 1350.0, 1.0, 16.0), (1500.0, 1100.0, 0.5, 24.0), (1013.7, 987.2, 0.0, 20.0)]
    cases = [Case(f"elo_update({a}, {b}, score_a={s}, k={k})", call(a, b, s, k),
                  lambda a=a, b=b, s=s, k=k: elo.elo_update(a, b, s, k), compare=_RATING) for a, b, s, k in rows]
    cases.append(Case("elo_update(1620, 1480, 0.5, k=12) — int ratings, k by name", call(1620, 1480, 0.5, k=12),
                      lambda: elo.elo_update(1620.0, 1480.0, 0.5, 12.0), compare=_RATING))
    return cases


def _bt_cases() -> list[Case]:
    two = [("a", "b", 1.0)] * 3 + [("a", "b", 0.0)]
    three = ([("x", "y", 1.0)] * 6 + [("x", "y", 0.0)] * 2 + [("y", "z", 1.0)] * 5 + [("y", "z", 0.0)] * 3
             + [("x", "z", 1.0)] * 4 + [("z", "x", 1.0)] + [("x", "z", 0.5)] * 2)
    ties = [("p", "q", 0.5)] * 3 + [("p", "q", 1.0)] + [("q", "p", 1.0)] * 2
    names = [f"m{i}" for i in range(8)]
    chain = []  # eight players, mostly neighbours: a fixed 20 or 50 iterations have not converged
    for i in range(7):
        chain += [(names[i], names[i + 1], 1.0)] * (3 + i % 2) + [(names[i], names[i + 1], 0.0)] * 2
        chain += [(names[i + 1], names[i], 0.5)]
    chain += [("m0", "m7", 0.0), ("m7", "m0", 0.0), ("m2", "m5", 1.0), ("m5", "m2", 1.0)]
    steep = [g for i in range(5) for g in [(names[i], names[i + 1], 1.0)] * 9 + [(names[i], names[i + 1], 0.0)]]
    return [Case(f"bradley_terry(games: {label})", call(g), lambda g=g: elo.bradley_terry(g, l2=0.0),
                 compare=_ratings_close)
            for label, g in (("a beats b 3 of 4", two), ("three players, ties included", three), ("mostly ties", ties),
                             ("eight players in a chain, 46 games", chain),
                             ("six players, each beating the next 9 of 10: ratings 380 points apart", steep))]


def _ratings_close(expected: dict, actual) -> str | None:
    if not isinstance(actual, dict):
        return f"expected a dict of ratings, got {type(actual).__name__}"
    if sorted(actual) != sorted(expected):
        return f"expected ratings for {sorted(expected)}, got them for {sorted(actual)}"
    for name, value in expected.items():
        got = actual[name]
        if isinstance(got, bool) or not isinstance(got, (int, float)) or not math.isfinite(got):
            return f"the rating of {name!r} is {got!r}, not a finite number"
        if abs(got - value) > 0.01:
            return f"the rating of {name!r} is {got:.3f}, expected {value:.3f} (within 0.01)"
    return None


q1 = Problem(
    name="q1", chapter="09", target="pick_answer", title="score one multiple-choice item", cases=_pick_cases,
    hints=[
        "An option's log-likelihood is the SUM of its tokens' log-probabilities (the log of the product of "
        "their probabilities). The answer is the option with the largest sum; a tie goes to the first option.",
        "Stay in logs: three hundred tokens of probability e to the minus 3 multiply to e to the minus 900, which "
        "is 0.0 in floating point, so products tie where sums do not. Scan the sums with a strict greater-than.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="09", target="pick_normalised", title="length-normalised choice (acc_norm)",
    cases=_normalised_cases,
    hints=[
        "`acc_norm` divides each option's log-likelihood by the option's length in CHARACTERS (not tokens, "
        "and without the space that precedes it in the prompt), then picks the largest.",
        "Worked small: -6 for ab and -6 for abc give -3 and -2 per character, so abc wins. Characters are what "
        "Python's len counts on a str: 日本 is 2 of them, though 6 bytes and maybe 1 token.",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="09", target="extract_answers", title="a GSM8k answer, strict and flexible",
    cases=_extract_cases,
    hints=[
        "Strict: the number right after '#### ' (the first such). Flexible: the LAST number-like run anywhere "
        "in the text. Either may be missing: then None. Return both as a tuple of strings.",
        "The flexible pattern has two groups, so findall gives a pair per match with one of them empty: for "
        "the text 7 or 42 it gives the pairs empty-7 and 42-empty. Keep whichever is filled in the last pair.",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="09", target="mc2", title="TruthfulQA MC2", cases=_mc2_cases,
    hints=[
        "Turn log-likelihoods into probabilities, normalise them over ALL answers, and add up the share of the "
        "true ones (the first `true_count`). Long answers have log-likelihoods near −1000: exp of that is 0.",
        "A share does not change when every probability is multiplied by one constant: subtract the largest "
        "log-likelihood of all the answers (true or false) before exponentiating, so the largest term is exactly 1.",
    ],
    points=1,
)

q5 = Problem(
    name="q5", chapter="09", target="elo_update", title="one Elo update", cases=_elo_cases,
    hints=[
        "Elo expects a to score 1 / (1 + 10^((R_b − R_a)/400)); a gains K × (actual − expected) and b loses "
        "exactly what a gains. Return a tuple (new R_a, new R_b).",
        "Worked small: equal ratings expect 0.5 each; a win with K of 32 moves a up by 16 and b down by 16. "
        "Do not round the new ratings: the check holds them to a millionth of a point.",
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="09", target="bradley_terry", title="a Bradley–Terry fit", cases=_bt_cases,
    hints=[
        "Find one strength per player that maximises the likelihood of all games at once, P(a beats b) = "
        "s_a / (s_a + s_b), ties as half a win to each; then report 400·log10(s) shifted so the "
        "ratings' mean is 1000.",
        "Zermelo's step sets each strength to the player's wins over the sum, across its games, of one over "
        "the two players' summed strengths. Repeat until nothing moves: a chain of players needs hundreds of "
        "steps, not twenty, and the check wants the ratings to a hundredth of a point.",
    ],
    points=2,
)
