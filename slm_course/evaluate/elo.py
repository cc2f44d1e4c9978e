"""Leaderboards from pairwise games (chapter 9): Elo and Bradley–Terry, with bootstrap intervals.

A game is ``(model_a, model_b, score_a)`` with ``score_a`` 1 (a won), 0 (b won) or 0.5 (a tie, half a
win each). **Elo** updates two ratings after every game, in order: the expected score of a is
``1 / (1 + 10 ** ((R_b - R_a) / 400))`` and ``R_a += K · (score_a − expected)``. So the result depends
on the order of the games. **Bradley–Terry** fits one strength per model to all games at once by
maximum likelihood (``P(a beats b) = 1 / (1 + 10 ** ((R_b − R_a) / 400))`` on the same scale), so
any order of the same games gives the same ratings — why the best-known chatbot leaderboard moved
from online Elo to a Bradley–Terry fit.
"""
from __future__ import annotations

import math
import random
from typing import Sequence

import numpy as np

Game = tuple[str, str, float]

SCALE = 400.0
BASE = 10.0
START = 1000.0


def expected_score(rating_a: float, rating_b: float) -> float:
    """The score Elo expects of a against b: ``1 / (1 + 10 ** ((R_b − R_a) / 400))``."""
    return 1.0 / (1.0 + BASE ** ((rating_b - rating_a) / SCALE))


def _check_games(games: Sequence[Game]) -> None:
    for game in games:
        if len(game) != 3 or game[2] not in (0, 0.5, 1):
            raise ValueError(f"a game is (model_a, model_b, score_a) with score_a 1, 0.5 or 0; got {game!r}.")
        if game[0] == game[1]:
            raise ValueError(f"a model cannot play itself: {game!r}.")


def elo_update(rating_a: float, rating_b: float, score_a: float, k: float = 32.0) -> tuple[float, float]:
    """Both ratings after one game (the points a gains, b loses)."""
    change = k * (score_a - expected_score(rating_a, rating_b))
    return rating_a + change, rating_b - change


def elo_ratings(games: Sequence[Game], k: float = 32.0, start: float = START) -> dict[str, float]:
    """Online Elo over ``games`` in the order given; every model starts at ``start``."""
    _check_games(games)
    ratings: dict[str, float] = {}
    for a, b, score in games:
        ra, rb = ratings.setdefault(a, start), ratings.setdefault(b, start)
        ratings[a], ratings[b] = elo_update(ra, rb, score, k)
    return ratings


def bradley_terry(games: Sequence[Game], start: float = START, iterations: int = 200, l2: float = 1e-6) -> dict[str, float]:
    """Maximum-likelihood Bradley–Terry ratings on Elo's scale, centred so their mean is ``start``.

    Fitted by Newton's method on the log-likelihood (ties count half a win to each side); a tiny L2
    term keeps a model that won or lost every game finite.
    """
    _check_games(games)
    names = sorted({n for a, b, _ in games for n in (a, b)})
    index = {n: i for i, n in enumerate(names)}
    a = np.array([index[g[0]] for g in games])
    b = np.array([index[g[1]] for g in games])
    y = np.array([float(g[2]) for g in games])
    theta = np.zeros(len(names))  # natural-log strengths
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(theta[b] - theta[a]))
        grad = np.zeros_like(theta)
        np.add.at(grad, a, y - p)
        np.add.at(grad, b, p - y)
        grad -= l2 * theta
        w = p * (1 - p)
        hess = np.zeros((len(names), len(names)))
        np.add.at(hess, (a, a), -w)
        np.add.at(hess, (b, b), -w)
        np.add.at(hess, (a, b), w)
        np.add.at(hess, (b, a), w)
        hess -= l2 * np.eye(len(names))
        hess -= 1.0 / len(names)  # fixes the free shift: the ratings' mean stays 0
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    theta -= theta.mean()
    return {n: float(start + theta[i] * SCALE / math.log(BASE)) for n, i in index.items()}


def bootstrap_intervals(games: Sequence[Game], method: str = "bt", rounds: int = 200, seed: int = 0,
                        level: float = 0.95, k: float = 32.0) -> dict[str, tuple[float, float]]:
    """Percentile intervals of each rating over ``rounds`` resamples of the games (with replacement)."""
    if method not in ("bt", "elo"):
        raise ValueError(f"method must be 'bt' (Bradley–Terry) or 'elo', got {method!r}.")
    rng = random.Random(seed)
    samples: dict[str, list[float]] = {}
    for _ in range(rounds):
        resample = [games[rng.randrange(len(games))] for _ in games]
        ratings = bradley_terry(resample) if method == "bt" else elo_ratings(resample, k)
        for name, value in ratings.items():
            samples.setdefault(name, []).append(value)
    tail = (1 - level) / 2
    return {n: (float(np.quantile(v, tail)), float(np.quantile(v, 1 - tail))) for n, v in samples.items()}


def leaderboard(games: Sequence[Game], rounds: int = 200, seed: int = 0) -> list[dict]:
    """Rows sorted by Bradley–Terry rating: model, rating, interval, Elo rating, games, win rate."""
    bt, elo = bradley_terry(games), elo_ratings(games)
    intervals = bootstrap_intervals(games, "bt", rounds, seed)
    rows = []
    for name in bt:
        played = [g for g in games if name in g[:2]]
        wins = sum(g[2] if g[0] == name else 1 - g[2] for g in played)
        rows.append({"model": name, "bt": bt[name], "low": intervals[name][0], "high": intervals[name][1],
                     "elo": elo[name], "games": len(played), "win_rate": wins / len(played)})
    return sorted(rows, key=lambda r: -r["bt"])


def games_from_correctness(correct: dict[str, Sequence[float]]) -> list[Game]:
    """Pairwise games judged deterministically: on each item, a model that got it right beats one that
    got it wrong; two models that agree draw (half a win each). ``correct`` maps a model to its
    per-item scores (1.0 right, 0.0 wrong), every list over the same items in the same order."""
    names = sorted(correct)
    lengths = {len(correct[n]) for n in names}
    if len(lengths) != 1:
        raise ValueError(f"every model needs a score for the same items; got lists of lengths {sorted(lengths)}.")
    games: list[Game] = []
    for item in range(lengths.pop()):
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                sa, sb = float(correct[a][item]), float(correct[b][item])
                games.append((a, b, 1.0 if sa > sb else 0.0 if sa < sb else 0.5))
    return games
