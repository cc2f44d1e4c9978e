"""A word-level tokenizer (chapter 1): the simplest way to turn text into integers.

Each word and each punctuation mark is a token; the vocabulary is every distinct token of a training
text, sorted, followed by special tokens. A word never seen in training maps to ``<|unk|>`` — the
weakness that byte-level BPE (``bpe.py``) removes.
"""
from __future__ import annotations

import re
from typing import Iterable, Sequence

# A word (letters, digits, underscore) or a single punctuation mark; whitespace is dropped.
WORD_SPLIT_PATTERN = r"\w+|[^\w\s]"
UNKNOWN_TOKEN = "<|unk|>"
END_OF_TEXT = "<|endoftext|>"


class WordTokenizer:
    """Maps words and punctuation marks to ids through a fixed vocabulary.

    ``vocab`` maps token string -> id (ids ``0 .. len(vocab) - 1``). Special tokens such as
    ``<|endoftext|>`` are recognised whole inside a text; if ``<|unk|>`` is in the vocabulary,
    unknown words encode to it, otherwise they raise ``ValueError``.
    """

    def __init__(self, vocab: dict[str, int], specials: Sequence[str] = ()) -> None:
        ids = sorted(vocab.values())
        if ids != list(range(len(vocab))):
            raise ValueError("A WordTokenizer vocabulary must map its tokens to the ids 0, 1, ..., len(vocab) - 1.")
        missing = [s for s in specials if s not in vocab]
        if missing:
            raise ValueError(f"Special tokens {missing} are not in the vocabulary; add them to it first.")
        self.vocab: dict[str, int] = dict(vocab)  # token -> id
        self.id_to_token: dict[int, str] = {i: t for t, i in vocab.items()}  # id -> token
        self.specials: tuple[str, ...] = tuple(specials)
        # Special tokens first, longest first, so "<|endoftext|>" is never cut into "<", "|", ...
        alternatives = [re.escape(s) for s in sorted(self.specials, key=len, reverse=True)]
        self._split = re.compile("|".join([*alternatives, WORD_SPLIT_PATTERN]))

    @classmethod
    def from_text(
        cls, text: str, specials: Iterable[str] = (END_OF_TEXT, UNKNOWN_TOKEN)
    ) -> "WordTokenizer":
        """Build the vocabulary of ``text``: its distinct words and punctuation marks, sorted
        (so the ids never depend on the order of the text), then ``specials`` in the given order."""
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer.from_text expects a str, got {type(text).__name__}.")
        specials = tuple(dict.fromkeys(specials))
        words = sorted(set(re.findall(WORD_SPLIT_PATTERN, text)) - set(specials))
        vocab = {token: i for i, token in enumerate([*words, *specials])}
        return cls(vocab, specials)

    def __len__(self) -> int:
        return len(self.vocab)

    def tokenize(self, text: str) -> list[str]:
        """``text`` cut into word, punctuation and special-token strings (whitespace dropped)."""
        if not isinstance(text, str):
            raise TypeError(f"WordTokenizer expects a str to tokenize, got {type(text).__name__}.")
        return self._split.findall(text)

    def encode(self, text: str) -> list[int]:
        """The ids of ``text``'s tokens; unknown words become ``<|unk|>`` (ValueError if it is absent)."""
        unk = self.vocab.get(UNKNOWN_TOKEN)
        ids = []
        for token in self.tokenize(text):
            token_id = self.vocab.get(token, unk)
            if token_id is None:
                raise ValueError(
                    f"{token!r} is not in the vocabulary and this tokenizer has no {UNKNOWN_TOKEN!r} token; "
                    f"build it with specials=(..., {UNKNOWN_TOKEN!r})."
                )
            ids.append(token_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Tokens joined by spaces, with the space before closing punctuation (``.,;:!?)]}``) removed.

        Whitespace was dropped by ``encode``, so ``decode(encode(text))`` is ``text`` only up to spacing
        (and with unknown words as ``<|unk|>``).
        """
        tokens = []
        for i in ids:
            if i not in self.id_to_token:
                raise ValueError(f"Token id {i!r} is not in this vocabulary (ids 0 to {len(self) - 1}).")
            tokens.append(self.id_to_token[i])
        text = " ".join(tokens)
        return re.sub(r" ([.,;:!?)\]}])", r"\1", text)

    def __repr__(self) -> str:
        return f"WordTokenizer(vocab size {len(self)}, specials {list(self.specials)})"
