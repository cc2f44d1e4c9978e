"""The course's own small BPE tokenizer (trained in chapter 1, used by the training chapters).

With GPT-2's 50,257 ids the output layer of a small model dominates the compute on a CPU, so the
training chapters use a BPE with a few thousand ids, trained here once, deterministically, on the
first :data:`TRAIN_CHARS` characters of the Shakespeare training split
(:func:`slm_course.data.shakespeare_splits`), and cached as
``$SLM_COURSE_HOME/models/course-bpe-<vocab_size>/tokenizer.json``. ``slm-course build-shared``
builds the default one before the notebooks run; afterwards it is only loaded.
"""
from __future__ import annotations

from pathlib import Path

from slm_course.tokenizers.bpe import BPETokenizer

DEFAULT_VOCAB_SIZE = 2048
TRAIN_CHARS = 1_000_000  # a fixed prefix keeps the build to seconds; more text changes the merges little


def course_bpe_training_text() -> str:
    """The text the course BPE is trained on: the first ``TRAIN_CHARS`` characters of the Shakespeare
    training split (never the validation works)."""
    from slm_course.data import shakespeare_splits

    train_text, _ = shakespeare_splits()
    return train_text[:TRAIN_CHARS]


def train_course_bpe(vocab_size: int = DEFAULT_VOCAB_SIZE) -> BPETokenizer:
    """Train the course BPE (GPT-2's split regex, ``<|endoftext|>`` as the last id) without caching it."""
    tokenizer = BPETokenizer()
    tokenizer.train(course_bpe_training_text(), vocab_size)
    return tokenizer


def _cache_file(vocab_size: int) -> Path:
    from slm_course.paths import models_dir

    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 257:
        raise ValueError(f"vocab_size must be an int of at least 257 (256 bytes + <|endoftext|>), got {vocab_size!r}.")
    return models_dir() / f"course-bpe-{vocab_size}" / "tokenizer.json"


def course_bpe_path(vocab_size: int = DEFAULT_VOCAB_SIZE) -> Path:
    """Where the course BPE of ``vocab_size`` ids is cached; trains and saves it first if it is missing."""
    path = _cache_file(vocab_size)
    if not path.is_file():
        train_course_bpe(vocab_size).save(path)
    return path


def course_bpe(vocab_size: int = DEFAULT_VOCAB_SIZE) -> BPETokenizer:
    """The course's own BPE with ``vocab_size`` ids (default 2048), loaded from the cache (built if missing).

    A damaged cache file is rebuilt rather than trusted.
    """
    path = course_bpe_path(vocab_size)
    try:
        return BPETokenizer.load(path)
    except ValueError:
        path.unlink(missing_ok=True)
        return BPETokenizer.load(course_bpe_path(vocab_size))
