"""Instruction data, prompt formats, a masking collate, the SFT loss and exact-match scoring (chapter 8).

No registry ships instruction data, so the course writes its own with the chapter-1 recipe
(:mod:`slm_course.synthetic`): seeded generators with *injected randomness* (names, numbers,
phrasings and orders all drawn from a ``random.Random``). Four task families have answers a
program can check exactly:

- ``arithmetic``: word problems ("Lily has 3 apples and finds 4 more. How many ...?" → ``7``);
- ``reverse``: list manipulation ("Reverse the list: owl, fox, cat" → ``cat, fox, owl``);
- ``format``: format conversion (``name Lily, animal fox`` → ``{"name": "Lily", "animal": "fox"}``);
- ``lookup``: facts from a given text ("Story: ... Question: Where does Lily live?" → ``by the sea``).

A prompt is formatted Alpaca-style (:func:`format_alpaca`), with a chat template
(:func:`format_chatml`, or a tokenizer's own ``apply_chat_template``) or in the short format the
chapter's tiny model is finetuned on (:func:`format_short`); :func:`collate` pads,
masks the prompt and the padding out of the loss with ``-100``, and truncates the prompt's start,
never the answer; :func:`sft_loss` is the ``loss_fn`` for :func:`slm_course.train.train`;
:func:`exact_match` scores greedy answers per family.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from slm_course.device import model_device
from slm_course.synthetic import ADJECTIVES, ANIMALS, NAMES, SETTINGS, distinct_n

IGNORE_INDEX = -100  # label value cross-entropy skips (PyTorch's ignore_index default)
FAMILIES = ("arithmetic", "reverse", "format", "lookup")

OBJECTS = ("apples", "shells", "coins", "stones", "cakes", "books", "kites", "pears")
GAINS = ("finds {b} more", "buys {b} more", "is given {b} more", "picks up {b} more")
LOSSES = ("gives {b} away", "loses {b}", "eats {b}", "sells {b}")
QUESTIONS = ("How many {obj} does {name} have now?", "How many {obj} are left with {name}?",
             "What is the number of {obj} {name} has now?")
REVERSE_ASKS = ("Reverse the list: {items}", "Write this list backwards: {items}",
                "Give the items in reverse order: {items}")
FORMAT_ASKS = ("Turn into JSON: {pairs}", "Write as a JSON object: {pairs}", "Convert to JSON: {pairs}")
FORMAT_KEYS = ("name", "animal", "colour", "town")
COLOURS = ("red", "blue", "green", "grey", "gold", "white")
TOWNS = ("Derby", "York", "Bath", "Ely", "Wells", "Ripon")
LOOKUP_FIELDS = {  # question template → what the answer is
    "Where does {name} live?": "setting",
    "What kind of animal is {name}?": "animal",
    "What is {name} like?": "adjective",
}
LOOKUP_STORIES = (
    "{name} is a {adjective} {animal} who lives {setting}.",
    "There is a {adjective} {animal} called {name}. It lives {setting}.",
    "Meet {name}, a {adjective} {animal} living {setting}.",
)


@dataclass(frozen=True)
class Example:
    """One instruction example: ``instruction`` (the task), ``input`` (may be ""), ``output`` (the exact answer)."""

    family: str
    instruction: str
    input: str
    output: str


def _arithmetic(rng: random.Random) -> Example:
    name, obj = rng.choice(NAMES), rng.choice(OBJECTS)
    a, b = rng.randint(2, 9), rng.randint(1, 9)
    if rng.random() < 0.5:
        change, answer = rng.choice(GAINS), a + b
    else:
        a = max(a, b + 1)  # never fewer than nothing
        change, answer = rng.choice(LOSSES), a - b
    story = f"{name} has {a} {obj} and {change.format(b=b)}. " + rng.choice(QUESTIONS).format(obj=obj, name=name)
    return Example("arithmetic", "Solve the word problem.", story, str(answer))


def _reverse(rng: random.Random) -> Example:
    items = rng.sample(ANIMALS + ADJECTIVES, rng.randint(3, 5))
    ask = rng.choice(REVERSE_ASKS).format(items=", ".join(items))
    return Example("reverse", ask, "", ", ".join(reversed(items)))


def _format(rng: random.Random) -> Example:
    keys = rng.sample(FORMAT_KEYS, rng.randint(2, 3))
    values = {"name": NAMES, "animal": ANIMALS, "colour": COLOURS, "town": TOWNS}
    pairs = [(k, rng.choice(values[k])) for k in keys]
    ask = rng.choice(FORMAT_ASKS).format(pairs=", ".join(f"{k} {v}" for k, v in pairs))
    return Example("format", ask, "", "{" + ", ".join(f'"{k}": "{v}"' for k, v in pairs) + "}")


def _lookup(rng: random.Random) -> Example:
    fields = {"name": rng.choice(NAMES), "adjective": rng.choice(ADJECTIVES), "animal": rng.choice(ANIMALS),
              "setting": rng.choice(SETTINGS)}
    question, field = rng.choice(list(LOOKUP_FIELDS.items()))
    story = rng.choice(LOOKUP_STORIES).format(**fields)
    return Example("lookup", "Answer the question from the story.",
                   f"Story: {story} Question: {question.format(**fields)}", fields[field])


GENERATORS: dict[str, Callable[[random.Random], Example]] = {
    "arithmetic": _arithmetic, "reverse": _reverse, "format": _format, "lookup": _lookup,
}


def generate_examples(n: int, *, families: Sequence[str] = FAMILIES, seed: int = 0,
                      randomness: bool = True) -> list[Example]:
    """``n`` examples cycling through ``families``; every choice drawn from ``random.Random(seed)``.

    ``randomness=False`` is the chapter-1 baseline: the same fixed generator state for every
    example of a family, so each family repeats one example (its diversity is near zero).
    """
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise ValueError(f"n must be a non-negative int, got {n!r}.")
    unknown = [f for f in families if f not in GENERATORS]
    if unknown or not families:
        raise ValueError(f"unknown task families {unknown}: choose from {list(FAMILIES)}.")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        family = families[i % len(families)]
        out.append(GENERATORS[family](rng if randomness else random.Random(seed)))
    return out


def instruction_splits(n_train: int, n_test: int, *, families: Sequence[str] = FAMILIES,
                       seed: int = 0) -> tuple[list[Example], list[Example]]:
    """A training list and a held-out list: no held-out prompt (instruction + input) occurs in training.

    The held-out examples come from another seed; any that repeat a training prompt are dropped and
    replaced, so both lists have exactly the sizes asked for, balanced over ``families``.
    """
    train = generate_examples(n_train, families=families, seed=seed)
    seen = {(e.instruction, e.input) for e in train}
    test: list[Example] = []
    rng = random.Random(seed + 1_000_003)
    i = 0
    while len(test) < n_test:
        family = families[i % len(families)]
        for _ in range(1000):
            ex = GENERATORS[family](rng)
            if (ex.instruction, ex.input) not in seen:
                break
        else:
            raise ValueError(f"family {family!r} has too few distinct prompts for {n_test} held-out examples.")
        seen.add((ex.instruction, ex.input))
        test.append(ex)
        i += 1
    return train, test


def diversity(examples: Iterable[Example], n: int = 2) -> float:
    """Distinct-n (chapter 1's :func:`slm_course.synthetic.distinct_n`) over prompt + answer texts."""
    return distinct_n([f"{e.instruction} {e.input} {e.output}" for e in examples], n)


# --------------------------------------------------------------------------- prompt formats

ALPACA_HEADER = ("Below is an instruction that describes a task. "
                 "Write a response that appropriately completes the request.")


def format_alpaca(example: Example) -> str:
    """The Alpaca prompt (everything before the answer): header, ``### Instruction:``, optional
    ``### Input:``, and ``### Response:`` followed by a newline, where the answer starts."""
    text = f"{ALPACA_HEADER}\n\n### Instruction:\n{example.instruction}\n\n"
    if example.input:
        text += f"### Input:\n{example.input}\n\n"
    return text + "### Response:\n"


def format_short(example: Example) -> str:
    """A short prompt for a model finetuned from scratch on it: the instruction, the input on its own
    line when there is one, and ``=> `` on a new line where the answer starts. It costs a handful of
    tokens where ChatML's markers cost ~30 in a vocabulary without special ids for them."""
    return example.instruction + (f"\n{example.input}" if example.input else "") + "\n=> "


def format_chatml(messages: Sequence[dict], add_generation_prompt: bool = True) -> str:
    """ChatML, the chat template of SmolLM2: each message as ``<|im_start|>{role}\\n{content}<|im_end|>\\n``;
    with ``add_generation_prompt`` the text ends with ``<|im_start|>assistant\\n`` for the reply."""
    text = ""
    for message in messages:
        if not isinstance(message, dict) or "role" not in message or "content" not in message:
            raise TypeError(f"each message must be a dict with 'role' and 'content', got {message!r}.")
        text += f"<|im_start|>{message['role']}\n{message['content']}<|im_end|>\n"
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def to_messages(example: Example) -> list[dict]:
    """The example as a one-turn chat: a user message holding instruction and input."""
    content = example.instruction + (f"\n{example.input}" if example.input else "")
    return [{"role": "user", "content": content}]


def format_chat(example: Example, tokenizer=None) -> str:
    """The chat prompt: the tokenizer's own ``apply_chat_template`` when it has one, else :func:`format_chatml`."""
    if tokenizer is not None and hasattr(tokenizer, "apply_chat_template"):
        return tokenizer.apply_chat_template(to_messages(example), add_generation_prompt=True)
    return format_chatml(to_messages(example))


# --------------------------------------------------------------------------- tokens, collate, loss

def encode_example(example: Example, tokenizer, formatter: Callable[[Example], str] = format_alpaca,
                   eos_id: int | None = None) -> tuple[list[int], list[int]]:
    """``(prompt_ids, answer_ids)``: the formatted prompt and the answer, ``eos_id`` appended to the answer
    (so the model learns to stop). Prompt and answer are encoded separately, so the split is exact."""
    answer = tokenizer.encode(example.output)
    return tokenizer.encode(formatter(example)), answer + ([eos_id] if eos_id is not None else [])


def collate(pairs: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int,
            max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A padded batch ``(inputs, labels)``, both ``(B, T)`` int64, ``T`` ≤ ``max_length``.

    Each ``(prompt_ids, answer_ids)`` becomes ``ids = prompt + answer``; ``inputs = ids[:-1]``,
    ``labels = ids[1:]`` with every label that is a prompt token set to ``-100`` (only the answer
    is learned); rows are right-padded with ``pad_id`` in the inputs and ``-100`` in the labels.
    Too long a row loses the *start* of its prompt (at least one prompt token stays); an answer
    that alone does not fit in ``max_length`` raises ``ValueError``.
    """
    if not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, got {max_length!r}.")
    if not pairs:
        raise ValueError("collate needs at least one (prompt_ids, answer_ids) pair.")
    rows = []
    for prompt, answer in pairs:
        prompt, answer = list(prompt), list(answer)
        if not prompt or not answer:
            raise ValueError("each pair needs a non-empty prompt and a non-empty answer.")
        if len(answer) > max_length:
            raise ValueError(
                f"an answer of {len(answer)} tokens does not fit in max_length={max_length} (one prompt token "
                "must precede it): raise max_length or drop that example; answers are never cut."
            )
        keep = max_length + 1 - len(answer)  # prompt tokens that fit
        prompt = prompt[-keep:]
        ids = prompt + answer
        labels = [IGNORE_INDEX] * (len(prompt) - 1) + answer
        rows.append((ids[:-1], labels))
    return pad_rows(rows, pad_id)


def pad_rows(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int,
             label_pad: int = IGNORE_INDEX) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad ``(input_ids, label_ids)`` rows into ``(B, T)`` int64 tensors: inputs with ``pad_id``,
    labels with ``label_pad`` (``-100``, which the loss skips)."""
    T = max(len(x) for x, _ in rows)
    inputs = torch.full((len(rows), T), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), T), label_pad, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        inputs[i, : len(x)] = torch.tensor(x)
        labels[i, : len(y)] = torch.tensor(y)
    return inputs, labels


def sft_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy (nats per answer token) over labels that are not ``-100``: the ``loss_fn`` of
    supervised finetuning for :func:`slm_course.train.train`."""
    inputs, labels = batch
    logits = model(inputs)  # (B, T, vocab)
    return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX)


def shuffled_batches(n: int, batch_size: int, seed: int = 0, what: str = "examples") -> Callable[[int], list[int]]:
    """``indices(i)``: the positions (into ``n`` items) of micro-batch ``i`` of a seeded shuffle, a
    deterministic function of ``i``: epoch ``e`` walks the permutation of seed ``seed + e`` in slices of
    ``batch_size`` (the last, incomplete slice of an epoch is skipped)."""
    if batch_size < 1 or batch_size > n:
        raise ValueError(f"batch_size must be between 1 and the {n} {what}, got {batch_size}.")
    per_epoch = n // batch_size

    def indices(i: int) -> list[int]:
        epoch, k = divmod(i, per_epoch)
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + epoch))
        return order[k * batch_size : (k + 1) * batch_size].tolist()

    return indices


def sft_batches(pairs: Sequence[tuple[list[int], list[int]]], batch_size: int, pad_id: int, max_length: int,
                seed: int = 0) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """``batches(i)`` for :func:`slm_course.train.train`: micro-batch ``i`` of a seeded shuffle, a
    deterministic function of ``i`` (:func:`shuffled_batches`)."""
    indices = shuffled_batches(len(pairs), batch_size, seed)

    def batches(i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return collate([pairs[j] for j in indices(i)], pad_id, max_length)

    return batches


# --------------------------------------------------------------------------- exact match

def normalize_answer(text: str) -> str:
    """The answer as compared: the first line of the reply, stripped of surrounding spaces."""
    return text.strip().split("\n")[0].strip()


@torch.no_grad()
def answer(model: torch.nn.Module, tokenizer, examples: Sequence[Example],
           formatter: Callable[[Example], str] = format_alpaca, *, eos_id: int | None = None,
           max_new_tokens: int = 24) -> list[str]:
    """Greedy replies (normalized) to ``examples``; prompts of equal token length run as one batch."""
    was_training = model.training
    model.eval()
    prompts = [tokenizer.encode(formatter(e)) for e in examples]
    replies: list[str] = [""] * len(examples)
    by_length: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        by_length.setdefault(len(p), []).append(i)
    for length, idxs in by_length.items():
        idx = torch.tensor([prompts[i] for i in idxs], dtype=torch.long, device=model_device(model))
        out = _greedy(model, idx, max_new_tokens, eos_id)
        for row, i in enumerate(idxs):
            new = out[row, length:].tolist()
            if eos_id is not None and eos_id in new:
                new = new[: new.index(eos_id)]
            replies[i] = normalize_answer(tokenizer.decode(new))
    model.train(was_training)
    return replies


def _greedy(model: torch.nn.Module, idx: torch.Tensor, max_new_tokens: int, eos_id: int | None) -> torch.Tensor:
    """Greedy continuation ``(B, T + new)`` by chapter 5's ``generate`` (a plain loop if it is absent)."""
    try:
        from slm_course.generate import generate
    except ImportError:
        generate = None
    if generate is not None:
        return generate(model, idx, max_new_tokens, temperature=0.0, eos_id=eos_id)
    for _ in range(max_new_tokens):
        nxt = model(idx[:, -model.config.context_length:])[:, -1].argmax(-1, keepdim=True)
        idx = torch.cat([idx, nxt], dim=1)
        if eos_id is not None and bool((idx[:, -1] == eos_id).all()):
            break
    return idx


def exact_match(examples: Sequence[Example], replies: Sequence[str]) -> dict[str, float]:
    """Share of exact answers per family (keys in :data:`FAMILIES` order) and ``"all"``."""
    if len(examples) != len(replies):
        raise ValueError(f"{len(examples)} examples but {len(replies)} replies.")
    scores: dict[str, list[bool]] = {}
    for e, r in zip(examples, replies):
        scores.setdefault(e.family, []).append(normalize_answer(r) == e.output)
    table = {f: sum(scores[f]) / len(scores[f]) for f in FAMILIES if f in scores}
    table["all"] = sum(sum(v) for v in scores.values()) / max(1, len(examples))
    return table


def evaluate_exact_match(model: torch.nn.Module, tokenizer, examples: Sequence[Example],
                         formatter: Callable[[Example], str] = format_alpaca, *, eos_id: int | None = None,
                         max_new_tokens: int = 24) -> dict[str, float]:
    """Exact-match accuracy per family of the model's greedy replies (see :func:`exact_match`)."""
    return exact_match(examples, answer(model, tokenizer, examples, formatter, eos_id=eos_id,
                                        max_new_tokens=max_new_tokens))
