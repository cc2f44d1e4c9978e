"""Pieces every course tokenizer shares (chapter 1): GPT-2's pre-tokenization regex, GPT-2's
byte-to-printable-character table.

Byte-level BPE works on the UTF-8 *bytes* of a text, so any string can be encoded with no unknown
token. Before merging, a regex cuts the text into chunks (words with their leading space, runs of
digits, runs of punctuation, whitespace) and merges never cross a chunk boundary.
"""
from __future__ import annotations

from functools import lru_cache

# GPT-2's pre-tokenization regex in the form tiktoken uses for "gpt2" (``r50k_base``). The original
# GPT-2 release wrote the same split as
#     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
# The possessive quantifiers (``++``) only skip backtracking; ``\s++$|\s+(?!\S)|\s`` splits whitespace
# as ``\s+(?!\S)|\s+`` does: a run of spaces leaves its last space to the word that follows.
# Alternatives, in order: English contractions, letters, digits, other symbols, whitespace.
GPT2_SPLIT_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)


@lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table from each byte value (0–255) to one printable character.

    The 188 bytes that print as themselves in Latin-1 (``!``–``~``, ``¡``–``¬``, ``®``–``ÿ``) keep
    their character; the other 68 (control bytes, space, ...) take ``chr(256)``, ``chr(257)``, ... in
    byte order. So a space becomes ``Ġ`` and a newline ``Ċ``. GPT-2's ``encoder.json`` and
    ``vocab.bpe`` write tokens in these characters, and the course's tokenizer files do too.
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


@lru_cache(maxsize=1)
def unicode_to_bytes() -> dict[str, int]:
    """The inverse of :func:`bytes_to_unicode`: printable character -> byte value."""
    return {ch: b for b, ch in bytes_to_unicode().items()}


def bytes_to_printable(token: bytes) -> str:
    """``token``'s bytes written in GPT-2's printable characters (``b" the"`` -> ``"Ġthe"``)."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in token)


def printable_to_bytes(text: str) -> bytes:
    """The inverse of :func:`bytes_to_printable`; raises ``ValueError`` on a character outside the table."""
    table = unicode_to_bytes()
    try:
        return bytes(table[ch] for ch in text)
    except KeyError as err:
        raise ValueError(
            f"{text!r} is not a token written in GPT-2's byte characters (no byte for {err.args[0]!r})."
        ) from None


