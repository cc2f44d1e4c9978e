"""Synthetic training text with injected randomness, and a way to measure its diversity (chapter 1).

Small models trained on generated text (TinyStories, phi-1's "textbook" exercises) only learn well
when the generated texts differ from one another. Asking a generator the same thing many times gives
near-copies; the fix is to *inject randomness* into each request: a random topic, random names, a
random audience and style, random words that must appear, random sentence structures.

Here the "generator" is a template grammar written for the course (no language model needed), so
the effect is easy to see and to measure with :func:`distinct_n`: the share of n-grams that are new.
``generate_stories(n, randomness=False)`` is the baseline that only cycles through the topics;
``randomness=True`` draws every choice from a seeded ``random.Random``.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

TOPICS = ("sharing", "courage", "a lost toy", "a rainy day", "a new friend", "a garden", "honesty", "patience")
NAMES = ("Lily", "Tom", "Mia", "Ben", "Zara", "Leo", "Ava", "Sam", "Nina", "Omar", "Ruby", "Finn")
ANIMALS = ("rabbit", "fox", "bear", "duck", "cat", "mouse", "owl", "frog", "puppy", "turtle")
SETTINGS = (
    "in a small village", "near a big river", "at the edge of a forest", "on a sunny farm",
    "in a busy town", "by the sea", "on top of a hill", "in a quiet valley",
)
ADJECTIVES = ("curious", "shy", "brave", "kind", "silly", "clever", "gentle", "grumpy", "cheerful", "tiny")
AUDIENCES = ("a three-year-old", "a five-year-old", "a first-grader", "a grandparent")
STYLES = ("plain", "rhyming", "funny", "gentle")
FEATURES = ("dialogue", "a twist", "a moral", "a happy ending")

# What the story is about: a goal the character wants and the trouble on the way.
GOALS = {
    "sharing": ("eat the last apple", "keep the red ball", "play with the new kite"),
    "courage": ("cross the old bridge", "sing in front of everyone", "climb the tall tree"),
    "a lost toy": ("find a missing teddy", "look for a blue car", "search for a wooden boat"),
    "a rainy day": ("play outside in the rain", "build a tent from blankets", "splash in every puddle"),
    "a new friend": ("talk to the new neighbour", "join a game in the park", "say hello to a stranger"),
    "a garden": ("grow a big sunflower", "plant some carrots", "water the thirsty roses"),
    "honesty": ("hide a broken cup", "explain a muddy floor", "return a found coin"),
    "patience": ("wait for the cake to bake", "watch a seed grow", "wait for the snow to fall"),
}
OPENINGS = (
    "Once upon a time, there was a {adj} {animal} named {name} who lived {setting}.",
    "{name} was a {adj} little {animal}. {Pronoun} lived {setting}.",
    "{setting_cap}, a {adj} {animal} called {name} woke up early one morning.",
    "Have you ever met a {animal} as {adj} as {name}? {Pronoun} lived {setting}.",
)
WISHES = (
    "One day, {name} wanted to {goal}.",
    "More than anything, {pronoun} wished to {goal}.",
    "{name} had a plan: {pronoun} would {goal} before the sun went down.",
)
TROUBLES = (
    "But it was harder than {pronoun} thought, and {pronoun} felt {feeling}.",
    "Soon something went wrong, and {name} felt {feeling}.",
    "At first nothing worked. {name} sat down and felt {feeling}.",
)
FEELINGS = ("sad", "scared", "worried", "cross", "lonely", "tired")
HELPERS = ("a wise old owl", "{friend} the {friend_animal}", "{pronoun_pos} mum", "a kind neighbour")
ENDINGS = {
    "dialogue": '"Can you help me?" asked {name}. "Of course," said {helper}, and together they did it.',
    "a twist": "Then {helper} came by, and the problem was not a problem at all: it had been a dream!",
    "a moral": "With help from {helper}, {name} did it at last, and learned that {lesson}.",
    "a happy ending": "In the end {helper} helped, and {name} smiled all the way home.",
}
LESSONS = {
    "sharing": "sharing makes things better", "courage": "being brave means trying while scared",
    "a lost toy": "looking carefully pays off", "a rainy day": "every kind of day can be fun",
    "a new friend": "a hello can start a friendship", "a garden": "good things grow with care",
    "honesty": "telling the truth feels good", "patience": "good things come to those who wait",
}
STYLE_LINES = {
    "plain": "",
    "rhyming": " Hop and stop, and skip and hop, {name} would never want to stop!",
    "funny": " {name} laughed so hard that {pronoun} fell over, bump!",
    "gentle": " The wind was soft and the sky was calm.",
}
AUDIENCE_LINES = {
    "a three-year-old": " The end.",
    "a five-year-old": " What a day!",
    "a first-grader": " It was a day {name} would remember.",
    "a grandparent": " And that, dear, is how it happened, many years ago.",
}


@dataclass(frozen=True)
class StoryRequest:
    """One set of choices a story is written from (what a prompt to a generator would contain)."""

    topic: str
    name: str
    animal: str
    adjective: str
    setting: str
    audience: str
    style: str
    feature: str
    structure: tuple[int, int, int, int]  # which opening, wish, trouble and helper template
    goal: str
    feeling: str
    friend: str


def sample_request(rng: random.Random | None, index: int = 0) -> StoryRequest:
    """A :class:`StoryRequest`: every field drawn from ``rng``, or, with ``rng=None``, the baseline:
    the first option of every list, only the topic cycling with ``index``."""
    topic = TOPICS[index % len(TOPICS)]
    if rng is None:
        return StoryRequest(topic, NAMES[0], ANIMALS[0], ADJECTIVES[0], SETTINGS[0], AUDIENCES[0], STYLES[0],
                            FEATURES[0], (0, 0, 0, 0), GOALS[topic][0], FEELINGS[0], NAMES[1])
    topic = rng.choice(TOPICS)
    name, friend = rng.sample(NAMES, 2)
    return StoryRequest(
        topic=topic, name=name, animal=rng.choice(ANIMALS), adjective=rng.choice(ADJECTIVES),
        setting=rng.choice(SETTINGS), audience=rng.choice(AUDIENCES), style=rng.choice(STYLES),
        feature=rng.choice(FEATURES),
        structure=(rng.randrange(len(OPENINGS)), rng.randrange(len(WISHES)), rng.randrange(len(TROUBLES)),
                   rng.randrange(len(HELPERS))),
        goal=rng.choice(GOALS[topic]), feeling=rng.choice(FEELINGS), friend=friend,
    )


def write_story(request: StoryRequest) -> str:
    """The story text for ``request``: opening, wish, trouble, the feature's ending, style and audience lines."""
    r = request
    pronoun = "she" if r.name in ("Lily", "Mia", "Zara", "Ava", "Nina", "Ruby") else "he"
    fields = {
        "name": r.name, "adj": r.adjective, "animal": r.animal, "setting": r.setting,
        "setting_cap": r.setting[0].upper() + r.setting[1:], "goal": r.goal, "feeling": r.feeling,
        "pronoun": pronoun, "Pronoun": pronoun.capitalize(), "pronoun_pos": "her" if pronoun == "she" else "his",
        "friend": r.friend, "friend_animal": ANIMALS[(ANIMALS.index(r.animal) + 3) % len(ANIMALS)],
        "lesson": LESSONS[r.topic],
    }
    opening, wish, trouble, helper = r.structure
    fields["helper"] = HELPERS[helper].format(**fields)
    parts = [OPENINGS[opening], WISHES[wish], TROUBLES[trouble], ENDINGS[r.feature]]
    text = " ".join(part.format(**fields) for part in parts)
    text += STYLE_LINES[r.style].format(**fields) + AUDIENCE_LINES[r.audience].format(**fields)
    return text


def generate_stories(n: int, *, randomness: bool = True, seed: int = 0) -> list[str]:
    """``n`` short stories. ``randomness=True`` draws topic, names, animal, setting, audience, style,
    feature and sentence structures from ``random.Random(seed)``; ``randomness=False`` is the
    baseline that fixes every choice except the topic, which cycles. Same ``seed``, same stories."""
    if not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}.")
    rng = random.Random(seed) if randomness else None
    return [write_story(sample_request(rng, i)) for i in range(n)]


# --------------------------------------------------------------------------- measuring diversity

WORD_PATTERN = r"[a-z0-9']+"


def words(text: str) -> list[str]:
    """The lower-cased words of ``text`` (runs of letters, digits and apostrophes); punctuation dropped."""
    return re.findall(WORD_PATTERN, text.lower())


def ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    """The ``len(tokens) - n + 1`` consecutive n-grams of ``tokens`` as tuples (none if it is shorter)."""
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Distinct-n: the number of *different* word n-grams over the number of n-grams, across all texts.

    Words come from :func:`words`; n-grams never cross from one text to the next. 1.0 means no
    n-gram repeats; near 0 means the texts are copies of one another. 0.0 when there is no n-gram.
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be a positive int (1 = words, 2 = word pairs, ...), got {n!r}.")
    if isinstance(texts, str):
        raise TypeError("distinct_n expects a list of texts, not one string; wrap it: distinct_n([text], n).")
    all_ngrams = [g for text in texts for g in ngrams(words(text), n)]
    return len(set(all_ngrams)) / len(all_ngrams) if all_ngrams else 0.0
