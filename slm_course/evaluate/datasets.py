"""Items for chapter 9's benchmarks.

- :func:`mmlu_questions`: the 282 real MMLU questions (57 subjects) that ``lm-eval`` ships as its
  chain-of-thought few-shot examples (the course asset ``mmlu-cot``), parsed into question, options
  and answer. These are MMLU's *dev* examples, not its test set.
- ``COURSE_ITEMS``: a few original items per other format (ARC, HellaSwag, TruthfulQA, Winogrande),
  written by the course to show each scoring method. They are **not** the real benchmarks.
- :func:`gsm8k_style_problems`: seeded arithmetic word problems with GSM8k's ``#### answer`` format.
- :func:`load_real`: the real sets through Hugging Face ``datasets`` (needs the network).
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

_OPTION = re.compile(r"\(([A-J])\)\s")
_ANSWER = re.compile(r"The answer is \(([A-J])\)")


@dataclass(frozen=True)
class MMLUQuestion:
    subject: str
    question: str
    choices: tuple[str, ...]
    answer: int  # index into choices


def parse_cot_prompts(prompts: dict[str, str]) -> list[MMLUQuestion]:
    """Questions from ``_cot_prompts.json``: per subject, blocks ``Q: … (A) … (B) … A: … The answer is (X).``"""
    questions = []
    for subject, text in prompts.items():
        for block in ("\n\n" + text).split("\n\nQ: ")[1:]:
            body, _, reasoning = block.partition("\nA: ")
            found = _ANSWER.search(reasoning)
            first = _OPTION.search(body)
            if not found or not first:
                continue
            question = body[: first.start()].strip()
            parts = _OPTION.split(body[first.start():])  # ['', 'A', text, 'B', text, ...]
            letters, texts = parts[1::2], [t.strip() for t in parts[2::2]]
            if letters != [chr(ord("A") + i) for i in range(len(letters))] or found.group(1) not in letters:
                continue
            questions.append(MMLUQuestion(subject, question, tuple(texts), letters.index(found.group(1))))
    return questions


def mmlu_questions(path: str | Path | None = None) -> list[MMLUQuestion]:
    """The MMLU questions of the ``mmlu-cot`` asset (fetched on first use), in subject order."""
    if path is None:
        from slm_course.assets import asset_path

        path = asset_path("mmlu-cot") / "_cot_prompts.json"
    return parse_cot_prompts(json.loads(Path(path).read_text(encoding="utf-8")))


# Original items written for this course to demonstrate each format. NOT the real benchmarks.
COURSE_ITEMS: dict[str, list[dict]] = {
    "arc": [  # ARC-style science questions: "Question: …\nAnswer:" + option text
        {"question": "Which of these is a source of light?", "choices": ["the Sun", "the Moon", "a mirror", "a rock"], "answer": 0},
        {"question": "What happens to water when it freezes?", "choices": ["it becomes ice", "it becomes steam", "it disappears", "it turns into salt"], "answer": 0},
        {"question": "Which animal has feathers?", "choices": ["a dog", "a fish", "a bird", "a frog"], "answer": 2},
        {"question": "What do plants need from the air to make food?", "choices": ["carbon dioxide", "helium", "smoke", "dust"], "answer": 0},
        {"question": "Which object would a magnet pick up?", "choices": ["a wooden spoon", "an iron nail", "a glass cup", "a paper clip made of plastic"], "answer": 1},
        {"question": "How many legs does an insect have?", "choices": ["four", "six", "eight", "ten"], "answer": 1},
    ],
    "hellaswag": [  # HellaSwag-style: a context and four endings
        {"context": "She poured the cereal into the bowl. Then she", "endings": ["added milk and ate it with a spoon.", "painted the ceiling blue.", "drove the bowl to the airport.", "sang to the cereal until it slept."], "answer": 0},
        {"context": "The man put on his running shoes and", "endings": ["went for a jog around the park.", "ate the shoes for breakfast.", "folded them into a paper boat.", "mailed them to the moon."], "answer": 0},
        {"context": "It started to rain, so the children", "endings": ["ran inside to stay dry.", "turned the rain into soup.", "planted the clouds.", "ate the umbrella."], "answer": 0},
        {"context": "He sharpened the pencil and then", "endings": ["wrote his name on the paper.", "swam across the pencil.", "cooked the pencil in the oven.", "asked the pencil for directions."], "answer": 0},
    ],
    "truthfulqa": [  # TruthfulQA-style: true answers first, then false ones
        {"question": "What happens if you swallow chewing gum?", "true": ["It passes through your digestive system.", "Nothing much; it comes out."], "false": ["It stays in your stomach for seven years.", "It wraps around your heart."]},
        {"question": "Can you see the Great Wall of China from the Moon with the naked eye?", "true": ["No, it is far too narrow to see from the Moon."], "false": ["Yes, it is the only structure visible from the Moon.", "Yes, easily."]},
        {"question": "Do we use only ten percent of our brains?", "true": ["No, we use all of our brain.", "No, most of the brain is active over a day."], "false": ["Yes, we use only ten percent of our brains."]},
    ],
    "winogrande": [  # Winogrande-style: one blank, two options, the rest of the sentence shared
        {"sentence": "The trophy did not fit in the suitcase because the _ was too big.", "option1": "trophy", "option2": "suitcase", "answer": 0},
        {"sentence": "The trophy did not fit in the suitcase because the _ was too small.", "option1": "trophy", "option2": "suitcase", "answer": 1},
        {"sentence": "Anna lent Maria her umbrella because _ was going out in the rain.", "option1": "Anna", "option2": "Maria", "answer": 1},
        {"sentence": "The cat chased the mouse until the _ was tired and stopped running away.", "option1": "cat", "option2": "mouse", "answer": 1},
    ],
}

_NAMES = ["Ava", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo"]
_THINGS = ["apples", "books", "marbles", "stamps", "pencils", "cookies", "shells", "cards"]


def gsm8k_style_problems(n: int, seed: int = 0) -> list[dict]:
    """``n`` seeded two-step word problems: ``{"question", "answer", "target"}``, GSM8k's format
    (``answer`` ends with ``#### <number>``; ``target`` is the number as text)."""
    rng = random.Random(seed)
    problems = []
    for _ in range(n):
        name, thing = rng.choice(_NAMES), rng.choice(_THINGS)
        start, more, given = rng.randint(2, 40), rng.randint(2, 30), rng.randint(1, 20)
        have = start + more
        given = min(given, have - 1)
        result = have - given
        question = (f"{name} has {start} {thing}. {name} gets {more} more {thing} and then gives away "
                    f"{given}. How many {thing} does {name} have now?")
        answer = (f"{name} has {start} + {more} = {have} {thing}. After giving away {given}, "
                  f"{name} has {have} - {given} = {result}.\n#### {result}")
        problems.append({"question": question, "answer": answer, "target": str(result)})
    return problems


def load_real(name: str, split: str = "validation"):  # pragma: no cover - network only
    """The real benchmark from the Hugging Face Hub (``arc``, ``hellaswag``, ``truthfulqa``,
    ``winogrande``, ``gsm8k``, ``mmlu``); needs the network and ``HF_DATASETS_OFFLINE`` unset."""
    import datasets

    sources = {"arc": ("allenai/ai2_arc", "ARC-Challenge"), "hellaswag": ("Rowan/hellaswag", None),
               "truthfulqa": ("truthfulqa/truthful_qa", "multiple_choice"), "winogrande": ("allenai/winogrande", "winogrande_xl"),
               "gsm8k": ("openai/gsm8k", "main"), "mmlu": ("cais/mmlu", "all")}
    if name not in sources:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(sources)}.")
    path, config = sources[name]
    return datasets.load_dataset(path, config, split=split)
