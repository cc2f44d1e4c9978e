"""DESIGN.md: an exercise's last hint gives one key step, never more than a third of the solution's code.

The share is measured by ``hint_share`` (tests/hint_share_support.py): the longest run of the solution region's
code tokens the hint spells out in order, over the number of those tokens.
"""
from __future__ import annotations

import pytest

from hint_share_support import hint_share, solution_region
from slm_course.exercises import load_chapter, problems_of

CHAPTERS = [f"{n:02d}" for n in range(11)]
PROBLEMS = [(chapter, problem) for chapter in CHAPTERS for problem in problems_of(load_chapter(chapter))]


def test_every_chapter_has_problems_and_there_are_65_or_more():
    assert {chapter for chapter, _ in PROBLEMS} == set(CHAPTERS)
    assert len(PROBLEMS) >= 65


@pytest.mark.parametrize("chapter, problem", PROBLEMS, ids=[f"ch{c}-{p.name}" for c, p in PROBLEMS])
def test_the_last_hint_spells_out_at_most_a_third_of_the_solution(chapter, problem):
    assert len(problem.hints) >= 2, "hint 1 names the idea, hint 2 the key step"
    share = hint_share(solution_region(chapter, problem.name), problem.hints[-1])
    assert share <= 1 / 3, f"ch{chapter} {problem.name}: the last hint spells out {share:.0%} of the solution's code"


def test_the_measure_sees_a_skeleton_hint():
    solution = "    mean = sum(xs) / len(xs)\n    return float(math.exp(mean))\n"
    assert hint_share(solution, "Fill in:\n    mean = ____(xs) / ____(xs)\n    return float(math.____(mean))") > 0.6
    assert hint_share(solution, "Perplexity is the exponential of the mean loss.") < 0.2
