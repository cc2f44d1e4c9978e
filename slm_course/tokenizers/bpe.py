"""A byte-level BPE tokenizer (chapter 1): trained from scratch, or loaded with GPT-2's merges.

A token is a byte string. Single bytes are always tokens, so any text encodes with no unknown token.
Encoding cuts the text with a regex (:data:`GPT2_SPLIT_PATTERN`), then inside each chunk repeatedly
joins the adjacent pair of tokens whose joined bytes have the lowest *rank* (= token id), exactly as
tiktoken does; with GPT-2's table (:meth:`BPETokenizer.from_gpt2`) the ids equal tiktoken's GPT-2 ids.
Special tokens such as ``<|endoftext|>`` get ids after the merged tokens.
"""
from __future__ import annotations

import heapq
import json
import os
from collections import Counter
from collections.abc import Iterable, Sequence, Set
from pathlib import Path
from typing import Literal

import regex

from slm_course.paths import atomic_write_text
from slm_course.tokenizers.base import (
    GPT2_SPLIT_PATTERN,
    bytes_to_printable,
    printable_to_bytes,
)
from slm_course.tokenizers.training import Merge, learn_merges

FORMAT = "slm-course-bpe/1"  # the "format" field of a saved tokenizer file
END_OF_TEXT = "<|endoftext|>"
_CACHE_LIMIT = 200_000  # chunks remembered by encode before the cache is cleared
_LONG_CHUNK = 64  # bytes; longer chunks (say, a run of 10,000 spaces) merge with a heap


def _without_lone_surrogates(text: str) -> str:
    """``text`` with each lone surrogate (half an emoji from a bad file, say: it has no UTF-8 bytes)
    replaced by U+FFFD, as tiktoken does; any other text comes back unchanged."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def bpe_merge(chunk: bytes, ranks: dict[bytes, int]) -> list[int]:
    """Token ids of one chunk: join the adjacent pair whose joined bytes have the lowest rank (leftmost
    on a tie), again and again until no joined pair is a token. This is tiktoken's rule.

    Each step scans all pairs, so the time grows with the square of the chunk's length: fine for words.
    """
    parts = [chunk[i : i + 1] for i in range(len(chunk))]  # start from single bytes
    while len(parts) > 1:
        best_rank, best_at = None, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best_at = rank, i
        if best_rank is None:
            break
        parts[best_at : best_at + 2] = [parts[best_at] + parts[best_at + 1]]
    return [ranks[p] for p in parts]


def bpe_merge_heap(chunk: bytes, ranks: dict[bytes, int]) -> list[int]:
    """The same ids as :func:`bpe_merge`, in ``O(n log n)``: candidate pairs wait in a heap ordered by
    (rank, position), the parts form a linked list, and a popped pair that has changed is skipped."""
    n = len(chunk)
    parts: list[bytes | None] = [chunk[i : i + 1] for i in range(n)]  # part starting at byte i, None once absorbed
    next_at = list(range(1, n + 1))  # start of the following part (n: none)
    prev_at = list(range(-1, n - 1))  # start of the preceding part (-1: none)
    heap = [(ranks[chunk[i : i + 2]], i) for i in range(n - 1) if chunk[i : i + 2] in ranks]
    heapq.heapify(heap)
    while heap:
        rank, i = heapq.heappop(heap)
        j = next_at[i]
        if parts[i] is None or j >= n or ranks.get(parts[i] + parts[j]) != rank:
            continue  # stale: one of the two parts has been merged since this pair was pushed
        parts[i], parts[j] = parts[i] + parts[j], None
        k = next_at[i] = next_at[j]
        if k < n:
            prev_at[k] = i
            right = ranks.get(parts[i] + parts[k])
            if right is not None:
                heapq.heappush(heap, (right, i))
        h = prev_at[i]
        if h >= 0:
            left = ranks.get(parts[h] + parts[i])
            if left is not None:
                heapq.heappush(heap, (left, h))
    ids, i = [], 0
    while i < n:
        ids.append(ranks[parts[i]])
        i = next_at[i]
    return ids


class BPETokenizer:
    """Byte-level BPE: ``train``, ``encode``, ``decode``, ``save``, ``load``.

    State: ``ranks`` maps each mergeable token (bytes) to its id, which is also its merge priority;
    ``special_tokens`` maps special strings to their ids; ``pattern`` is the pre-tokenization regex;
    ``merges`` is the training history (empty for a loaded GPT-2 table); ``vocab`` maps every id
    (specials included) to the bytes it stands for.
    A fresh ``BPETokenizer()`` knows only the 256 single bytes (id = byte value).
    """

    def __init__(self, pattern: str = GPT2_SPLIT_PATTERN, specials: Sequence[str] = (END_OF_TEXT,)) -> None:
        self.pattern = pattern
        self.specials: tuple[str, ...] = tuple(dict.fromkeys(specials))  # added after training
        self.ranks: dict[bytes, int] = {bytes([b]): b for b in range(256)}  # token bytes -> id
        self.special_tokens: dict[str, int] = {}  # special string -> id
        self.merges: list[Merge] = []
        self._refresh()

    # ----------------------------------------------------------------- state
    def _refresh(self) -> None:
        """Rebuild what is derived from ``ranks``, ``special_tokens`` and ``pattern``."""
        self._compiled = regex.compile(self.pattern)
        self.vocab: dict[int, bytes] = {i: t for t, i in self.ranks.items()}  # id -> bytes
        for text, i in self.special_tokens.items():
            self.vocab[i] = text.encode("utf-8")
        self._cache: dict[bytes, list[int]] = {}
        missing = [b for b in range(256) if bytes([b]) not in self.ranks]
        if missing:
            raise ValueError(f"A byte-level BPE table must hold all 256 single bytes; {len(missing)} are missing.")

    def __len__(self) -> int:
        """Number of ids: merged tokens, single bytes and special tokens."""
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"BPETokenizer({len(self.ranks)} byte tokens, specials {self.special_tokens})"

    # -------------------------------------------------------------- training
    def pretokenize(self, text: str) -> list[str]:
        """``text`` cut into the chunks BPE merges within (``"Hello world"`` -> ``["Hello", " world"]``)."""
        return self._compiled.findall(text)

    def train(self, text: str, vocab_size: int, verbose: bool = False, progress: bool = False) -> list[Merge]:
        """Learn merges from ``text`` until there are ``vocab_size`` ids, special tokens included.

        Starts over from the 256 single bytes; the special tokens take the last ids. Returns the
        merge history (also kept as ``self.merges``): one :class:`Merge` per step, with the merged
        pair's ids, the new id and how often the pair occurred — handy to plot. ``verbose`` prints
        every merge, ``progress`` shows a progress bar. Deterministic: ties go to the smaller ids.
        """
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.train expects a str, got {type(text).__name__}.")
        smallest = 256 + len(self.specials)
        if not isinstance(vocab_size, int) or vocab_size < smallest:
            raise ValueError(
                f"vocab_size must be an int of at least {smallest} (256 bytes + {len(self.specials)} special "
                f"tokens), got {vocab_size!r}."
            )
        chunk_counts = Counter(chunk.encode("utf-8") for chunk in self.pretokenize(_without_lone_surrogates(text)))
        tokens = [bytes([b]) for b in range(256)]
        merges = learn_merges(chunk_counts, tokens, vocab_size - len(self.specials), verbose, progress)
        self.ranks = {t: i for i, t in enumerate(tokens)}
        self.special_tokens = {s: len(tokens) + k for k, s in enumerate(self.specials)}
        self.merges = merges
        self._refresh()
        return merges

    # -------------------------------------------------------------- encoding
    def _encode_chunk(self, chunk: bytes) -> list[int]:
        """Token ids of one chunk (see :func:`bpe_merge`)."""
        whole = self.ranks.get(chunk)
        if whole is not None:  # tiktoken's shortcut: a chunk that is itself a token stays whole
            return [whole]
        if len(chunk) > _LONG_CHUNK:
            return bpe_merge_heap(chunk, self.ranks)
        return bpe_merge(chunk, self.ranks)

    def encode_ordinary(self, text: str) -> list[int]:
        """Token ids of ``text``, special-token strings encoded as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode expects a str, got {type(text).__name__}.")
        cache = self._cache
        if len(cache) > _CACHE_LIMIT:
            cache.clear()
        ids: list[int] = []
        try:
            for chunk in self._compiled.findall(text):
                piece = chunk.encode("utf-8")
                cached = cache.get(piece)
                if cached is None:
                    cached = cache[piece] = self._encode_chunk(piece)
                ids.extend(cached)
        except UnicodeEncodeError:  # a lone surrogate: replace it and start again, as tiktoken does
            return self.encode_ordinary(_without_lone_surrogates(text))
        return ids

    def encode(self, text: str, allowed_special: Literal["all", "none"] | Set[str] = "all") -> list[int]:
        """Token ids of ``text``.

        ``allowed_special``: ``"all"`` (default) turns every special-token string in the text into its
        id, ``"none"`` encodes them as ordinary text, a set allows just those specials. (tiktoken instead
        *raises* on a special it was not allowed; here it is simply encoded as text.)
        """
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.encode expects a str, got {type(text).__name__}.")
        if allowed_special == "all":
            allowed = set(self.special_tokens)
        elif allowed_special == "none":
            allowed = set()
        elif isinstance(allowed_special, Set):
            unknown = set(allowed_special) - set(self.special_tokens)
            if unknown:
                raise ValueError(f"{sorted(unknown)} are not special tokens of this tokenizer ({list(self.special_tokens)}).")
            allowed = set(allowed_special)
        else:
            raise TypeError(f'allowed_special must be "all", "none" or a set of strings, got {allowed_special!r}.')
        if not allowed:
            return self.encode_ordinary(text)
        # Longest first, so a special that contains another one wins.
        splitter = "(" + "|".join(regex.escape(s) for s in sorted(allowed, key=len, reverse=True)) + ")"
        ids: list[int] = []
        for k, part in enumerate(regex.split(splitter, text)):
            if k % 2:  # the captured special tokens sit at odd positions
                ids.append(self.special_tokens[part])
            elif part:
                ids.extend(self.encode_ordinary(part))
        return ids

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The bytes ``ids`` stand for (special tokens as their UTF-8 text)."""
        vocab = self.vocab
        ids = list(ids)
        try:
            return b"".join(vocab[i] for i in ids)
        except (KeyError, TypeError):
            bad = next(i for i in ids if not isinstance(i, int) or i not in vocab)
            raise ValueError(f"Token id {bad!r} is not in this tokenizer (ids 0 to {len(self) - 1}).") from None

    def decode(self, ids: Iterable[int]) -> str:
        """The text ``ids`` stand for. A byte sequence that is not valid UTF-8 (ids cut in the middle of a
        character) shows the replacement character ``�``, as tiktoken's ``decode`` does."""
        return self.decode_bytes(list(ids)).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one id stands for (``bpe.token_bytes(bpe.encode(" the")[0]) == b" the"`` for GPT-2)."""
        return self.decode_bytes([token_id])

    # ------------------------------------------------------------ save / load
    def to_dict(self) -> dict:
        """A JSON-ready description: tokens in id order, written in GPT-2's printable byte characters."""
        by_id = sorted((i, t) for t, i in self.ranks.items())
        if [i for i, _ in by_id] != list(range(len(by_id))):
            raise ValueError("Token ids must be 0, 1, ..., n - 1 to be saved.")
        return {
            "format": FORMAT,
            "pattern": self.pattern,
            "tokens": [bytes_to_printable(t) for _, t in by_id],
            "special_tokens": dict(self.special_tokens),
            "merges": [list(m) for m in self.merges],
        }

    @classmethod
    def from_dict(cls, data: dict) -> "BPETokenizer":
        """The tokenizer described by :meth:`to_dict`'s output."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f'Not a course BPE tokenizer: expected a JSON object with "format": "{FORMAT}".')
        try:
            tokens = [printable_to_bytes(t) for t in data["tokens"]]
            specials = {str(k): int(v) for k, v in data["special_tokens"].items()}
            merges = [Merge(*map(int, m)) for m in data.get("merges", [])]
            pattern = str(data["pattern"])
        except (KeyError, TypeError, AttributeError) as err:
            raise ValueError(f"Tokenizer data is incomplete or malformed ({err!r}).") from None
        if len(set(tokens)) != len(tokens):
            raise ValueError("Tokenizer data lists the same token bytes twice.")
        tok = cls(pattern=pattern, specials=tuple(specials))
        tok.ranks = {t: i for i, t in enumerate(tokens)}
        tok.special_tokens = specials
        tok.merges = merges
        if set(specials.values()) & set(range(len(tokens))):
            raise ValueError("Special-token ids collide with the ids of ordinary tokens.")
        tok._refresh()
        return tok

    def save(self, path: str | os.PathLike) -> Path:
        """Write the tokenizer to one JSON file (atomically: never half-written). Returns the path."""
        return atomic_write_text(path, _json_one_item_per_line(self.to_dict()))

    @classmethod
    def load(cls, path: str | os.PathLike) -> "BPETokenizer":
        """Read a tokenizer written by :meth:`save`; ``ValueError`` if the file is not one."""
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ValueError(f"{path} is not a tokenizer file written by BPETokenizer.save ({err}).") from None
        try:
            return cls.from_dict(data)
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None

    @classmethod
    def from_gpt2(cls) -> "BPETokenizer":
        """GPT-2's tokenizer: its 50,000 merges and 256 bytes from the ``gpt2-bpe`` asset, ``<|endoftext|>`` = 50256."""
        from slm_course.tokenizers.gpt2 import GPT2_SPECIAL_TOKENS, gpt2_ranks

        tok = cls(pattern=GPT2_SPLIT_PATTERN, specials=tuple(GPT2_SPECIAL_TOKENS))
        tok.ranks = dict(gpt2_ranks())
        tok.special_tokens = dict(GPT2_SPECIAL_TOKENS)
        tok._refresh()
        return tok

    def to_tiktoken(self, name: str = "course-bpe"):
        """The same table as a ``tiktoken.Encoding`` (tiktoken's fast Rust encoder, same ids)."""
        import tiktoken

        return tiktoken.Encoding(
            name=name, pat_str=self.pattern, mergeable_ranks=dict(self.ranks), special_tokens=dict(self.special_tokens)
        )


def _json_one_item_per_line(data: dict) -> str:
    """``data`` as JSON with each list item (a token, a merge) on its own line: readable and diffable."""
    fields = []
    for key, value in data.items():
        if isinstance(value, list):
            items = ",\n".join(json.dumps(item, ensure_ascii=False) for item in value)
            fields.append(f"{json.dumps(key)}: [\n{items}\n]")
        else:
            fields.append(f"{json.dumps(key)}: {json.dumps(value, ensure_ascii=False)}")
    return "{\n" + ",\n".join(fields) + "\n}\n"
