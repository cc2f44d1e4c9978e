"""Filtering training text by quality, after the phi-1 recipe (chapter 1).

phi-1 ("Textbooks Are All You Need") asked a large model to rate a small fraction of its code
files for "educational value", trained a small classifier on those ratings, and let the cheap
classifier filter everything else. The same three steps here, on the Shakespeare corpus:

1. a **teacher** labels a small fraction of chunks. Our teacher is a deterministic rule standing in
   for the LLM annotator (:func:`teacher_score`): it rewards complete speeches and drops headers,
   stage directions and lists of names;
2. a **student** classifier, logistic regression on hashed bag-of-words features
   (:func:`hashed_features`, :func:`train_quality_classifier`), learns those labels;
3. the student scores the rest; chunks with probability >= 0.5 are kept (:func:`run_quality_filter`).

Because our teacher is cheap we can also measure what one cannot afford at scale: how often the
student agrees with the teacher on text neither saw during training.
"""
from __future__ import annotations

import random
import re
import zlib
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

# A speaker tag on its own line: "HAMLET.", "Fool.", "SIR TOBY.", "Ham." (at most 4 words).
SPEAKER_PATTERN = re.compile(r"^[A-Z][A-Za-z'\- .]{0,29}\.$")
# One entry of a cast list: "Claudius, King of Denmark."
CAST_LINE_PATTERN = re.compile(r"^[A-Z][^,.]*,[^.]*\.\s*$")
HEADER_STARTS = ("ACT ", "SCENE", "PERSONS REPRESENTED", "DRAMATIS PERSONAE", "BY WILLIAM SHAKESPEARE", "THE END")
SENTENCE_END = re.compile(r"[.!?]['\"]?\s*$")
FEATURE_PATTERN = r"\w+|[^\w\s]"  # the word tokenizer's split: words and single punctuation marks


def split_chunks(text: str, min_chars: int = 1) -> list[str]:
    """``text`` cut at blank lines into paragraphs (one speech, one stage direction, one header, ...),
    each stripped; paragraphs shorter than ``min_chars`` are dropped."""
    return [p.strip() for p in re.split(r"\n\s*\n", text) if len(p.strip()) >= min_chars]


def split_speaker(chunk: str) -> tuple[str | None, str]:
    """``(speaker, body)``: the speaker tag of a speech and the words spoken, else ``(None, chunk)``.

    The first line is a speaker tag when more lines follow and it matches :data:`SPEAKER_PATTERN`
    with at most 4 words (``"HAMLET.\\nTo be, ..."`` -> ``("HAMLET", "To be, ...")``).
    """
    first, _, rest = chunk.strip().partition("\n")
    first = first.strip()
    if rest.strip() and SPEAKER_PATTERN.match(first) and len(first.split()) <= 4:
        return first[:-1], rest.strip()
    return None, chunk.strip()


def is_boilerplate(body: str) -> bool:
    """True for text that is not worth training on: a stage direction (``[Exit.]``), a header
    (``ACT II.``, a title in capitals, ``by William Shakespeare``), a cast list, or Gutenberg notes."""
    text = body.strip()
    if not text or text.startswith("[") or not re.search(r"[a-z]", text):
        return True
    if text.upper().startswith(HEADER_STARTS) or "gutenberg" in text.lower():
        return True
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    cast_lines = sum(bool(CAST_LINE_PATTERN.match(line)) for line in lines)
    return len(lines) >= 2 and cast_lines >= 2 * len(lines) / 3


def teacher_score(chunk: str) -> float:
    """The teacher's quality score in [0, 1] of one chunk.

    0 for boilerplate (:func:`is_boilerplate` of the body). Otherwise the sum of
    ``0.5 * min(words, 30) / 30`` (words of the body, split on whitespace), ``0.3`` when the body
    ends a sentence (``.``, ``!`` or ``?``, maybe then a quote), and ``0.2`` when it is a speech with
    a speaker tag (:func:`split_speaker`).
    """
    speaker, body = split_speaker(chunk)
    if is_boilerplate(body):
        return 0.0
    score = 0.5 * min(len(body.split()), 30) / 30
    if SENTENCE_END.search(body):
        score += 0.3
    if speaker is not None:
        score += 0.2
    return score


def teacher_label(chunk: str, threshold: float = 0.6) -> int:
    """1 (keep) when :func:`teacher_score` is at least ``threshold``, else 0 (drop)."""
    return int(teacher_score(chunk) >= threshold)


# --------------------------------------------------------------------------- the student classifier

def stable_hash(token: str) -> int:
    """A hash of ``token`` that is the same in every process (CRC-32; Python's ``hash`` is salted)."""
    return zlib.crc32(token.encode("utf-8"))


def feature_tokens(chunk: str) -> list[str]:
    """The tokens a chunk's features count: its lower-cased words and punctuation marks, plus two
    shape tokens, ``<last>`` + its last token (did it end a sentence?) and ``<len>`` + a length
    bucket (``min(n_tokens // 8, 8)``), signals a bag of words alone cannot see."""
    tokens = re.findall(FEATURE_PATTERN, chunk.lower())
    last = tokens[-1] if tokens else ""
    return [*tokens, f"<last>{last}", f"<len>{min(len(tokens) // 8, 8)}"]


def hashed_features(chunks: Sequence[str], n_features: int = 1024) -> torch.Tensor:
    """Bag-of-words features, shape ``(len(chunks), n_features)``, float32.

    Each of a chunk's :func:`feature_tokens` adds 1 to column ``stable_hash(token) % n_features``
    (the "hashing trick": no vocabulary to store); counts are then squashed with ``log1p``.
    """
    if not isinstance(n_features, int) or n_features < 1:
        raise ValueError(f"n_features must be a positive int, got {n_features!r}.")
    if isinstance(chunks, str):
        raise TypeError("hashed_features expects a list of chunks, not one string; wrap it in a list.")
    rows, cols = [], []
    for row, chunk in enumerate(chunks):
        for token in feature_tokens(chunk):
            rows.append(row)
            cols.append(stable_hash(token) % n_features)
    counts = torch.zeros(len(chunks), n_features)
    if rows:
        counts.index_put_((torch.tensor(rows), torch.tensor(cols)), torch.ones(len(rows)), accumulate=True)
    return torch.log1p(counts)


class QualityClassifier(nn.Module):
    """Logistic regression: ``p(keep) = sigmoid(x @ w + b)``; ``forward`` returns logits ``(N,)``."""

    def __init__(self, n_features: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features).squeeze(-1)

    @torch.no_grad()
    def predict_proba(self, features: torch.Tensor) -> torch.Tensor:
        """``p(keep)`` of each row of ``features``, shape ``(N,)``."""
        return torch.sigmoid(self(features))


def train_quality_classifier(
    features: torch.Tensor, labels: torch.Tensor, *, steps: int = 200, lr: float = 0.02,
    weight_decay: float = 1e-4, seed: int = 0,
) -> tuple[QualityClassifier, list[float]]:
    """Fit a :class:`QualityClassifier` on ``features`` ``(N, F)`` and 0/1 ``labels`` ``(N,)``.

    Full-batch AdamW for ``steps`` steps on binary cross-entropy, weights seeded with ``seed``.
    Returns the model and the loss of every step (a history to plot).
    """
    if features.dim() != 2 or labels.shape != features.shape[:1]:
        raise ValueError(
            f"features must be (N, F) and labels (N,), got {tuple(features.shape)} and {tuple(labels.shape)}."
        )
    torch.manual_seed(seed)
    model = QualityClassifier(features.shape[1])
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    targets = labels.float()
    history = []
    for _ in range(steps):
        loss = nn.functional.binary_cross_entropy_with_logits(model(features), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    return model, history


@dataclass
class QualityFilterResult:
    """What :func:`run_quality_filter` did. Indices refer to the input ``chunks``."""

    labelled: list[int]  # chunks the teacher labelled (the classifier's training set)
    held_out: list[int]  # teacher-labelled chunks kept aside to measure agreement
    rest: list[int]  # chunks only the classifier scored
    rest_keep: torch.Tensor  # bool (len(rest),): the classifier's keep decision
    rest_proba: torch.Tensor  # float (len(rest),): the classifier's p(keep)
    held_out_agreement: float  # share of held-out chunks where classifier and teacher agree
    rest_agreement: float  # the same on the rest (affordable only because our teacher is a rule)
    history: list[float] = field(repr=False, default_factory=list)  # training loss per step

    @property
    def kept_fraction(self) -> float:
        return self.rest_keep.float().mean().item() if len(self.rest) else 0.0


def run_quality_filter(
    chunks: Sequence[str], *, label_fraction: float = 0.1, held_out_fraction: float = 0.2,
    n_features: int = 1024, steps: int = 200, seed: int = 0, batch_size: int = 4096,
) -> QualityFilterResult:
    """The phi-1 recipe on ``chunks``: the teacher labels a random ``label_fraction`` of them (a
    ``held_out_fraction`` of those is kept aside), a classifier is trained on the rest of the labels,
    and it decides keep/drop for every unlabelled chunk (scored ``batch_size`` at a time).
    Seeded: the same result on every run."""
    if not 0.0 < label_fraction < 1.0 or not 0.0 < held_out_fraction < 1.0:
        raise ValueError("label_fraction and held_out_fraction must be between 0 and 1 (exclusive).")
    order = list(range(len(chunks)))
    random.Random(seed).shuffle(order)
    n_labelled = round(label_fraction * len(chunks))
    n_held = round(held_out_fraction * n_labelled)
    if n_labelled - n_held < 2 or n_held < 1:
        raise ValueError(f"{len(chunks)} chunks at label_fraction={label_fraction} are too few to train and test on.")
    held_out, labelled, rest = order[:n_held], order[n_held:n_labelled], sorted(order[n_labelled:])
    teacher = torch.tensor([teacher_label(c) for c in chunks], dtype=torch.long)
    features = hashed_features([chunks[i] for i in labelled], n_features)
    model, history = train_quality_classifier(features, teacher[labelled], steps=steps, seed=seed)

    def proba(indices: list[int]) -> torch.Tensor:
        parts = [model.predict_proba(hashed_features([chunks[i] for i in indices[s : s + batch_size]], n_features))
                 for s in range(0, len(indices), batch_size)]
        return torch.cat(parts) if parts else torch.zeros(0)

    held_keep = proba(held_out) >= 0.5
    rest_proba = proba(rest)
    rest_keep = rest_proba >= 0.5
    held_agree = (held_keep == teacher[held_out].bool()).float().mean().item()
    rest_agree = (rest_keep == teacher[rest].bool()).float().mean().item() if rest else float("nan")
    return QualityFilterResult(labelled, held_out, rest, rest_keep, rest_proba, held_agree, rest_agree, history)
