"""GPT-2's tokenizer, built offline from the ``gpt2-bpe`` course asset (chapter 1).

The asset holds GPT-2's two original files: ``encoder.json`` (token -> id, tokens written in GPT-2's
printable byte characters, see :func:`~slm_course.tokenizers.base.bytes_to_unicode`) and
``vocab.bpe`` (the 50,000 merges, most frequent first). In GPT-2 a token's id is also its merge rank,
which is all tiktoken needs: :func:`gpt2_encoding` builds the ``tiktoken.Encoding`` directly from
these ranks, so tiktoken never downloads anything nor reads its own cache.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from slm_course.tokenizers.base import GPT2_SPLIT_PATTERN, printable_to_bytes

GPT2_SPECIAL_TOKENS = {"<|endoftext|>": 50256}
GPT2_VOCAB_SIZE = 50257


def gpt2_asset_folder() -> Path:
    """The folder holding GPT-2's ``encoder.json`` and ``vocab.bpe`` (fetched on first use)."""
    from slm_course.assets import asset_path

    return Path(asset_path("gpt2-bpe"))


def read_gpt2_ranks(folder: str | Path) -> dict[bytes, int]:
    """GPT-2's mergeable tokens (bytes -> id = rank) read from ``encoder.json`` and checked against ``vocab.bpe``.

    The check: the 256 single bytes come first, and merge ``k`` of ``vocab.bpe`` (left + right) is the
    token with id ``256 + k``. So "lowest id" and "earliest merge" are the same order.
    """
    import json

    folder = Path(folder)
    encoder = json.loads((folder / "encoder.json").read_text(encoding="utf-8"))
    ranks = {printable_to_bytes(token): i for token, i in encoder.items() if token not in GPT2_SPECIAL_TOKENS}
    lines = (folder / "vocab.bpe").read_text(encoding="utf-8").split("\n")
    merges = [line.split() for line in lines[1:] if line.strip()]  # line 0 is a "#version" header
    if sorted(ranks.values()) != list(range(256 + len(merges))):
        raise ValueError(f"{folder}: encoder.json does not number 256 bytes + {len(merges)} merges as 0..n-1.")
    for k, (left, right) in enumerate(merges):
        if ranks.get(printable_to_bytes(left + right)) != 256 + k:
            raise ValueError(f"{folder}: merge {k} ({left!r} {right!r}) is not token {256 + k} of encoder.json.")
    return ranks


@lru_cache(maxsize=1)
def gpt2_ranks() -> dict[bytes, int]:
    """GPT-2's 50,256 mergeable tokens from the course asset (read once per process; do not modify)."""
    return read_gpt2_ranks(gpt2_asset_folder())


@lru_cache(maxsize=1)
def gpt2_encoding():
    """GPT-2's ``tiktoken.Encoding`` (50,257 ids, ``<|endoftext|>`` = 50256) built from the course asset.

    The same as ``tiktoken.get_encoding("gpt2")`` but offline: tiktoken is handed the ranks instead of
    fetching them.
    """
    import tiktoken

    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_SPLIT_PATTERN,
        mergeable_ranks=dict(gpt2_ranks()),
        special_tokens=dict(GPT2_SPECIAL_TOKENS),
        explicit_n_vocab=GPT2_VOCAB_SIZE,
    )
