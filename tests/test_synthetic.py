"""Synthetic stories with injected randomness and the distinct-n diversity measure (chapter 1)."""
from __future__ import annotations

import random

import pytest

from slm_course.synthetic import (
    GOALS,
    NAMES,
    TOPICS,
    distinct_n,
    generate_stories,
    ngrams,
    sample_request,
    words,
    write_story,
)


def test_words_and_ngrams():
    assert words("Hello, World! It's 3 o'clock.") == ["hello", "world", "it's", "3", "o'clock"]
    assert ngrams(["a", "b", "c"], 2) == [("a", "b"), ("b", "c")]
    assert ngrams(["a"], 2) == []


def test_distinct_n_by_hand():
    # "the cat the cat" has bigrams (the cat), (cat the), (the cat): 2 distinct of 3.
    assert distinct_n(["the cat the cat"], 2) == pytest.approx(2 / 3)
    # n-grams never cross texts: two one-word texts have no bigram at all.
    assert distinct_n(["a", "b"], 2) == 0.0
    assert distinct_n(["a b", "a b"], 1) == pytest.approx(2 / 4)
    assert distinct_n(["A b.", "a, B"], 2) == pytest.approx(1 / 2)  # case and punctuation ignored
    assert distinct_n([], 1) == 0.0
    with pytest.raises(ValueError, match="positive"):
        distinct_n(["a b"], 0)
    with pytest.raises(TypeError, match="list of texts"):
        distinct_n("a b c", 1)


def test_generation_is_seeded():
    assert generate_stories(20, seed=1) == generate_stories(20, seed=1)
    assert generate_stories(20, seed=1) != generate_stories(20, seed=2)
    assert generate_stories(20, randomness=False, seed=1) == generate_stories(20, randomness=False, seed=2)
    assert generate_stories(0) == []
    with pytest.raises(ValueError):
        generate_stories(-1)


def test_baseline_only_varies_the_topic():
    stories = generate_stories(3 * len(TOPICS), randomness=False)
    assert len(set(stories)) == len(TOPICS)
    assert stories[0] == stories[len(TOPICS)]
    for story in stories:
        assert NAMES[0] in story


def test_injected_randomness_reaches_every_choice():
    rng = random.Random(0)
    requests = [sample_request(rng) for _ in range(300)]
    for field in ("topic", "name", "animal", "adjective", "setting", "audience", "style", "feature", "structure"):
        assert len({getattr(r, field) for r in requests}) > 2, field
    for r in requests:
        assert r.goal in GOALS[r.topic] and r.name != r.friend
        story = write_story(r)
        assert r.name in story and r.goal in story and "{" not in story


def test_randomness_raises_diversity_at_every_n():
    random_stories = generate_stories(200, randomness=True)
    baseline = generate_stories(200, randomness=False)
    for n in (1, 2, 3, 4):
        assert distinct_n(random_stories, n) > 3 * distinct_n(baseline, n)
    assert len(set(random_stories)) == 200
