"""DESIGN.md's rule for hints: the last hint gives one key step, never more than a third of the solution's code.

The measure is :func:`hint_share_support.hint_share`: the share of the solution region's code tokens that the
last hint spells out in order (a longest common subsequence). Every problem of every chapter is held to it.
"""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from hint_share_support import hint_share, solution_region  # noqa: E402

from slm_course.exercises import load_chapter, problems_of  # noqa: E402

CHAPTERS = [f"{n:02d}" for n in range(11)]
PROBLEMS = [(chapter, problem) for chapter in CHAPTERS for problem in problems_of(load_chapter(chapter))]


@pytest.mark.parametrize("chapter,problem", PROBLEMS, ids=[f"ch{c}-{p.name}" for c, p in PROBLEMS])
def test_last_hint_spells_out_at_most_a_third_of_the_solution(chapter, problem):
    assert problem.hints, f"chapter {chapter} {problem.name} has no hints"
    share = hint_share(solution_region(chapter, problem.name), problem.hints[-1])
    assert share <= 1 / 3, (f"chapter {chapter} {problem.name}: the last hint spells out {share:.0%} of the "
                            "solution's code tokens in order; give one key step (a line, or the idea worked "
                            "on a smaller example), at most a third")
