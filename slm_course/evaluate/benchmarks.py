"""Benchmark formats and their metrics, matched to ``lm-eval``'s definitions (chapter 9).

Every multiple-choice benchmark is the same measurement with a different prompt: score each option
as a continuation of the question and pick the most likely one.

- ``acc``: the option with the largest summed log-likelihood (continuation " " + option).
- ``acc_norm``: the largest log-likelihood divided by the option's length in characters (without the
  leading space), so long options are not penalised for having more tokens to pay for.
- MMLU two ways: **letter** (``lm-eval``'s format: the options are listed and the model scores " A",
  " B", " C", " D") and **cloze** (the format SmolLM2's authors report: the model scores each option's
  text after "Answer:"); both open with ``lm-eval``'s header naming the subject.
- Winogrande **partial** scoring: two contexts (the sentence up to the blank, each option filled in)
  and one shared continuation (the rest of the sentence); the better context wins.
- TruthfulQA **MC1** (is the single true answer the most likely?) and **MC2** (probability mass on
  the true answers over all answers).
- GSM8k: generate, then extract the answer **strictly** (``#### number``) or **flexibly** (the last
  number in the text), and compare exactly.
"""
from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from slm_course.evaluate.scoring import Request


@dataclass
class MultipleChoiceItem:
    """One question: ``context`` is what the model reads, ``options`` the continuations it scores
    (without the leading space), ``answer`` the index of the right one."""

    context: str
    options: list[str]
    answer: int
    subject: str = ""
    meta: dict = field(default_factory=dict)


# --------------------------------------------------------------------------- prompt formats
LETTERS = "ABCDEFGHIJ"


def mmlu_header(subject: str, style: str = "letter") -> str:
    """The line ``lm-eval``'s MMLU tasks put before the question (their ``description``), blank line included.

    ``subject`` is MMLU's name for it (``"high_school_us_history"``); the header spells it with spaces.
    Letter form: "The following are multiple choice questions (with answers) about high school us history.";
    cloze form (``mmlu_continuation``): "The following are questions (with answers) about …". An empty
    ``subject`` gives no header.
    """
    if not subject:
        return ""
    kind = {"letter": "multiple choice questions", "cloze": "questions"}.get(style)
    if kind is None:
        raise ValueError(f"style must be 'letter' or 'cloze', got {style!r}.")
    return f"The following are {kind} (with answers) about {' '.join(subject.split('_'))}.\n\n"


def mmlu_letter_prompt(question: str, choices: Sequence[str], subject: str = "") -> str:
    """MMLU as ``lm-eval``'s ``mmlu`` task writes it: the subject's header, the question, the options
    listed with letters, then "Answer:"."""
    lines = [question.strip()] + [f"{LETTERS[i]}. {c}" for i, c in enumerate(choices)]
    return mmlu_header(subject, "letter") + "\n".join(lines) + "\nAnswer:"


def mmlu_cloze_prompt(question: str, subject: str = "") -> str:
    """MMLU in cloze form (``lm-eval``'s ``mmlu_continuation``): the subject's header, then the question;
    the options are scored as text."""
    return mmlu_header(subject, "cloze") + f"Question: {question.strip()}\nAnswer:"


def mmlu_item(question: str, choices: Sequence[str], answer: int, style: str = "letter", subject: str = "") -> MultipleChoiceItem:
    """An MMLU question in ``style`` "letter" (options " A" … " D") or "cloze" (the options' text), with
    ``lm-eval``'s header for ``subject`` when one is given."""
    if style == "letter":
        return MultipleChoiceItem(mmlu_letter_prompt(question, choices, subject), list(LETTERS[: len(choices)]), answer,
                                  subject)
    if style == "cloze":
        return MultipleChoiceItem(mmlu_cloze_prompt(question, subject), list(choices), answer, subject)
    raise ValueError(f"style must be 'letter' or 'cloze', got {style!r}.")


def few_shot_prefix(examples: Sequence[MultipleChoiceItem], k: int, seed: int = 0, header: str = "") -> str:
    """``k`` solved examples drawn (seeded) from a separate split, each followed by a blank line."""
    if k > len(examples):
        raise ValueError(f"asked for {k} shots but the few-shot split has only {len(examples)} items.")
    chosen = random.Random(seed).sample(list(examples), k)
    shots = "".join(f"{e.context} {e.options[e.answer]}\n\n" for e in chosen)
    return header + shots


def requests_of(item: MultipleChoiceItem, delimiter: str = " ") -> list[Request]:
    """The requests an item asks: the context continued by ``delimiter + option`` for every option."""
    return [Request(item.context, delimiter + option) for option in item.options]


# --------------------------------------------------------------------------- metrics per item
def pick(loglikelihoods: Sequence[float]) -> int:
    """Index of the largest log-likelihood; ties go to the first (as ``numpy.argmax``)."""
    return int(np.argmax(np.asarray(loglikelihoods, dtype=np.float64)))


def pick_normalised(loglikelihoods: Sequence[float], options: Sequence[str]) -> int:
    """``acc_norm``'s choice: log-likelihood per character of the option (``lm-eval``: ``len(option)``)."""
    lengths = np.array([float(len(o)) for o in options])
    return int(np.argmax(np.asarray(loglikelihoods, dtype=np.float64) / lengths))


def truthfulqa_mc2(loglikelihoods: Sequence[float], true_count: int) -> float:
    """Probability mass on the true answers (the first ``true_count``) over all answers.

    ``lm-eval`` exponentiates the log-likelihoods directly; subtracting the largest first gives the
    same numbers and keeps long answers (log-likelihoods of −1000) from underflowing to 0/0.
    """
    if not 1 <= true_count < len(loglikelihoods):
        raise ValueError(f"true_count must be between 1 and {len(loglikelihoods) - 1}, got {true_count}.")
    lls = np.asarray(loglikelihoods, dtype=np.float64)
    probs = np.exp(lls - lls.max())
    return float(probs[:true_count].sum() / probs.sum())


_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")


def extract_strict(text: str) -> str | None:
    """GSM8k's strict match (``lm-eval``): the number after ``#### `` (first match), else None."""
    found = _STRICT.search(text)
    return found.group(1).strip() if found else None


def extract_flexible(text: str) -> str | None:
    """GSM8k's flexible extract (``lm-eval``): the last number-like run in the text, else None."""
    matches = _FLEXIBLE.findall(text)
    if not matches:
        return None
    last = matches[-1]
    return (last[0] or last[1]).strip()


def normalise_number(text: str | None) -> str | None:
    """What ``lm-eval``'s gsm8k filters then ignore: commas, a dollar sign, a trailing full stop."""
    if text is None:
        return None
    return re.sub(r"[,$]", "", text).rstrip(".")


# --------------------------------------------------------------------------- results
@dataclass
class Result:
    """A metric over a set of items: its mean, standard error and the random-guess baseline."""

    name: str
    scores: list[float]
    baseline: float

    @property
    def value(self) -> float:
        return float(np.mean(self.scores)) if self.scores else float("nan")

    @property
    def stderr(self) -> float:
        """Standard error of the mean (sample standard deviation / √n), as ``lm-eval`` reports it."""
        n = len(self.scores)
        return float(np.std(self.scores, ddof=1) / math.sqrt(n)) if n > 1 else float("nan")

    @property
    def centred(self) -> float:
        """Baseline-centred score (value − baseline) / (1 − baseline): 0 is guessing, 1 is perfect."""
        return (self.value - self.baseline) / (1 - self.baseline)

    def bootstrap(self, n: int = 1000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
        """A percentile bootstrap interval of the mean."""
        rng = np.random.default_rng(seed)
        data = np.asarray(self.scores, dtype=np.float64)
        means = data[rng.integers(0, len(data), size=(n, len(data)))].mean(axis=1)
        tail = (1 - level) / 2
        return float(np.quantile(means, tail)), float(np.quantile(means, 1 - tail))

    def __str__(self) -> str:
        return f"{self.name}: {self.value:.3f} ± {self.stderr:.3f} (guessing: {self.baseline:.3f}, n={len(self.scores)})"


def multiple_choice(items: Sequence[MultipleChoiceItem], score: Callable[[list[Request]], list[tuple[float, bool]]],
                    *, name: str = "task") -> dict[str, Result]:
    """``acc`` and ``acc_norm`` of ``items``; ``score`` answers a list of requests (see scoring)."""
    requests = [r for item in items for r in requests_of(item)]
    answers = score(requests)
    acc, acc_norm, position = [], [], 0
    for item in items:
        lls = [ll for ll, _ in answers[position: position + len(item.options)]]
        position += len(item.options)
        acc.append(float(pick(lls) == item.answer))
        acc_norm.append(float(pick_normalised(lls, item.options) == item.answer))
    baseline = float(np.mean([1 / len(item.options) for item in items]))
    return {"acc": Result(f"{name} acc", acc, baseline), "acc_norm": Result(f"{name} acc_norm", acc_norm, baseline)}


def winogrande_requests(sentence: str, option1: str, option2: str) -> tuple[list[Request], str]:
    """Winogrande's partial scoring: the sentence up to "_" with each option, one shared continuation."""
    if sentence.count("_") != 1:
        raise ValueError(f"a Winogrande sentence has exactly one blank '_', got {sentence!r}.")
    cut = sentence.index("_")
    continuation = " " + sentence[cut + 1:].strip()
    contexts = [sentence[:cut] + option for option in (option1, option2)]
    return [Request(c, continuation) for c in contexts], continuation
