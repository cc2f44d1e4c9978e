"""Tokenizers (chapter 1): from text to the integer ids a language model reads.

- :class:`WordTokenizer`: one id per word or punctuation mark, ``<|unk|>`` for anything unseen.
- :class:`BPETokenizer`: byte-level BPE, trained from scratch (``train``) or with GPT-2's merges
  (``from_gpt2``, giving tiktoken's GPT-2 ids exactly); ``encode``, ``decode``, ``save``, ``load``.
- :func:`gpt2_encoding`: tiktoken's GPT-2 encoding built offline from the course asset.
- :func:`course_bpe`: the course's own small BPE (2,048 ids) the training chapters use.
"""
from __future__ import annotations

from slm_course.tokenizers.base import GPT2_SPLIT_PATTERN, bytes_to_unicode
from slm_course.tokenizers.bpe import BPETokenizer
from slm_course.tokenizers.course import course_bpe, course_bpe_path
from slm_course.tokenizers.gpt2 import gpt2_encoding
from slm_course.tokenizers.training import Merge, count_pairs, merge_pair
from slm_course.tokenizers.word import WordTokenizer

__all__ = [
    "GPT2_SPLIT_PATTERN",
    "BPETokenizer",
    "Merge",
    "WordTokenizer",
    "bytes_to_unicode",
    "count_pairs",
    "course_bpe",
    "course_bpe_path",
    "gpt2_encoding",
    "merge_pair",
]
