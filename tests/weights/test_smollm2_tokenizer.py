"""SmolLM2's tokenizer as the course rebuilds it from the GGUF header, against llama.cpp's reading of the same
file (the runtime chapter 10 serves with) on text where digits, spaces and newlines meet.

SmolLM2's pre-tokenizer (``tokenizer.ggml.pre = "smollm"``) isolates every digit before GPT-2's regex, as its
original tokenizer does; GPT-2's regex alone would give different ids wherever whitespace stands right before a
digit (``"a  1"``). Marked ``asset``: needs the ``smollm2-gguf`` asset; the llama.cpp test also needs
llama-cpp-python (``make serve-extra``; ``make test`` installs it) and is skipped without it.
"""
from __future__ import annotations

import random

import pytest

from slm_course.weights import smollm2_gguf_path
from slm_course.weights.gguf_file import read_metadata
from slm_course.weights.tokenizer import GGUFTokenizer

pytestmark = pytest.mark.asset

CRAFTED = ["a  1", "x 12", "  3 apples", "1 2 3", "\n5", "a\n 7", "year 2024,  42", "3.14 ", "  \n 9x", "\t8",
           "hello world 12345 end", "Total:\t\t 100", "line one\n\n  2. second", "  ", " 0", "０１２ full-width",
           "٣ Arabic-Indic  ٤", "x\r\n 3", "¹²³ superscripts", "$ 5.99 or  $6", "v1.2.3  build 7"]


def digit_strings(n: int = 300, seed: int = 0) -> list[str]:
    """Random strings built from the pieces that meet around digits: runs of spaces, tabs, newlines, letters."""
    rng = random.Random(seed)
    pieces = [" ", "  ", "   ", "\t", "\n", "\n\n", " \n", "\r\n", "7", "42", "2024", "3.5", "a", "word", "The", ",", ".", "-",
              "'s", "(", ")", "é", "日本", "😀"]
    return [''.join(rng.choice(pieces) for _ in range(rng.randint(1, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def ours() -> GGUFTokenizer:
    import gguf

    return GGUFTokenizer.from_metadata(read_metadata(gguf.GGUFReader(str(smollm2_gguf_path()))))


def test_the_file_asks_for_digits_first(ours):
    assert ours.pre == "smollm"
    assert ours.chunks("a  1") == ["a", "  ", "1"]
    assert ours.chunks("x 12") == ["x", " ", "1", "2"]
    plain = GGUFTokenizer(ours.tokens, [" ".join(p) for p in ours.merge_ranks], chat_template=None)
    assert plain.chunks("a  1") == ["a", " ", " 1"]  # GPT-2's regex alone: what the file does not ask for


def test_the_cached_tokenizer_keeps_its_pre_tokenizer(ours):
    from slm_course.weights import smollm2

    _, cached = smollm2()
    assert cached.pre == "smollm"
    for s in CRAFTED:
        assert cached.encode(s) == ours.encode(s)


def test_course_tokenizer_equals_llama_cpp_on_digits_and_whitespace(ours):
    from slm_course.deploy import llama_cpp_available

    if not llama_cpp_available():
        pytest.skip("llama-cpp-python is not installed (optional extra: make serve-extra)")
    import llama_cpp

    llm = llama_cpp.Llama(model_path=str(smollm2_gguf_path()), vocab_only=True, verbose=False)
    strings = CRAFTED + digit_strings()
    differ = [s for s in strings if ours.encode(s) != llm.tokenize(s.encode("utf-8"), add_bos=False, special=True)]
    assert differ == []
    assert any("  " in s and any(c.isdigit() for c in s) for s in strings)  # the cases that used to differ are there
