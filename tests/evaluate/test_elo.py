"""Elo and Bradley–Terry: hand-checked updates, order (in)dependence, recovery of known strengths."""
from __future__ import annotations

import random

import pytest

from slm_course.evaluate import elo


def test_one_elo_update_by_hand():
    assert elo.expected_score(1000, 1000) == 0.5
    assert elo.expected_score(1400, 1000) == pytest.approx(1 / (1 + 10 ** -1))
    a, b = elo.elo_update(1000, 1000, 1.0, k=32)
    assert (a, b) == (1016.0, 984.0)
    a, b = elo.elo_update(1000, 1000, 0.5, k=32)  # a tie between equals changes nothing
    assert (a, b) == (1000.0, 1000.0)


def _games(seed=0, n=600):
    rng = random.Random(seed)
    strength = {"a": 1200.0, "b": 1000.0, "c": 900.0}
    games = []
    for _ in range(n):
        x, y = rng.sample(sorted(strength), 2)
        p = elo.expected_score(strength[x], strength[y])
        r = rng.random()
        games.append((x, y, 1.0 if r < p * 0.9 else 0.5 if r < p * 0.9 + 0.1 else 0.0))
    return games


def test_elo_depends_on_the_order_of_games_bradley_terry_does_not():
    games = _games()
    shuffled = list(games)
    random.Random(1).shuffle(shuffled)
    assert elo.elo_ratings(games) != pytest.approx(elo.elo_ratings(sorted(games)), abs=1.0)
    assert elo.bradley_terry(games) == pytest.approx(elo.bradley_terry(shuffled), abs=1e-6)
    assert elo.bradley_terry(games) == pytest.approx(elo.bradley_terry(sorted(games)), abs=1e-6)


def test_bradley_terry_recovers_rating_differences():
    ratings = elo.bradley_terry(_games(n=3000))
    assert ratings["a"] > ratings["b"] > ratings["c"]
    assert ratings["a"] - ratings["b"] == pytest.approx(200, abs=60)
    assert sum(ratings.values()) / 3 == pytest.approx(1000)


def test_bradley_terry_is_the_maximum_likelihood_on_two_players():
    # a beats b 3 times in 4: the ML probability is 3/4, a rating gap of 400·log10(3)
    games = [("a", "b", 1.0)] * 3 + [("a", "b", 0.0)]
    ratings = elo.bradley_terry(games)
    assert ratings["a"] - ratings["b"] == pytest.approx(400 * __import__("math").log10(3), abs=0.5)


def test_ties_are_half_a_win():
    assert elo.bradley_terry([("a", "b", 0.5)] * 4) == pytest.approx({"a": 1000.0, "b": 1000.0})


def test_bootstrap_intervals_contain_the_ratings_and_bad_games_are_refused():
    games = _games(n=400)
    intervals = elo.bootstrap_intervals(games, rounds=60)
    ratings = elo.bradley_terry(games)
    for name, (low, high) in intervals.items():
        assert low <= ratings[name] <= high
    board = elo.leaderboard(games, rounds=30)
    assert [row["model"] for row in board] == ["a", "b", "c"]
    with pytest.raises(ValueError, match="score_a"):
        elo.elo_ratings([("a", "b", 2)])
    with pytest.raises(ValueError, match="itself"):
        elo.bradley_terry([("a", "a", 1.0)])
    with pytest.raises(ValueError, match="method"):
        elo.bootstrap_intervals(games, method="glicko")


def test_games_from_correctness_judges_each_item():
    games = elo.games_from_correctness({"good": [1, 1, 0], "bad": [0, 1, 0]})
    assert games == [("bad", "good", 0.0), ("bad", "good", 0.5), ("bad", "good", 0.5)]
    ratings = elo.bradley_terry(games)  # one win and two draws: good ahead (the L2 term keeps it finite)
    assert ratings["good"] > ratings["bad"]
    with pytest.raises(ValueError, match="same items"):
        elo.games_from_correctness({"a": [1], "b": [1, 0]})
