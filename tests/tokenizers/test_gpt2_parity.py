"""GPT-2 compatibility: the course BPE loaded with GPT-2's merges gives tiktoken's ids exactly."""
from __future__ import annotations

import pytest
import regex

from slm_course.tokenizers import GPT2_SPLIT_PATTERN, BPETokenizer, gpt2_encoding

# The regex as written in the original GPT-2 release; GPT2_SPLIT_PATTERN is tiktoken's faster form.
ORIGINAL_GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""


def test_split_pattern_matches_the_original_gpt2_regex(varied_string):
    assert regex.findall(GPT2_SPLIT_PATTERN, varied_string) == regex.findall(ORIGINAL_GPT2_PATTERN, varied_string)


def test_split_pattern_keeps_the_space_with_the_next_word():
    assert regex.findall(GPT2_SPLIT_PATTERN, "Hello  world's 42!") == ["Hello", " ", " world", "'s", " 42", "!"]


@pytest.fixture(scope="module")
def gpt2_bpe() -> BPETokenizer:
    return BPETokenizer.from_gpt2()


@pytest.mark.asset
def test_gpt2_sizes(gpt2_bpe):
    assert len(gpt2_bpe) == 50257
    assert gpt2_bpe.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2_encoding().n_vocab == 50257
    assert gpt2_encoding().eot_token == 50256


@pytest.mark.asset
def test_gpt2_well_known_ids(gpt2_bpe):
    # Ids quoted throughout GPT-2 tutorials: "Hello" 15496, " world" 995, "!" 0, "<|endoftext|>" 50256.
    assert gpt2_bpe.encode("Hello world!<|endoftext|>") == [15496, 995, 0, 50256]
    assert gpt2_bpe.token_bytes(995) == b" world"


@pytest.mark.asset
def test_same_ids_as_tiktoken(gpt2_bpe, varied_string):
    expected = gpt2_encoding().encode(varied_string, allowed_special="all")
    assert gpt2_bpe.encode(varied_string) == expected


@pytest.mark.asset
def test_same_ids_as_tiktoken_without_specials(gpt2_bpe, varied_string):
    expected = gpt2_encoding().encode_ordinary(varied_string)
    assert gpt2_bpe.encode(varied_string, allowed_special="none") == expected


@pytest.mark.asset
def test_decode_round_trip(gpt2_bpe, varied_string):
    ids = gpt2_bpe.encode(varied_string)
    if "\ud83d" in varied_string:  # a lone surrogate has no UTF-8 form: both tokenizers encode U+FFFD
        varied_string = varied_string.replace("\ud83d", "\ufffd")
    assert gpt2_bpe.decode(ids) == varied_string
    assert gpt2_encoding().decode(ids) == varied_string


@pytest.mark.asset
def test_special_token_as_text_is_split_like_tiktoken(gpt2_bpe):
    ids = gpt2_bpe.encode("<|endoftext|>", allowed_special="none")
    assert 50256 not in ids and len(ids) > 1
    assert gpt2_bpe.decode(ids) == "<|endoftext|>"
    assert gpt2_bpe.encode("<|endoftext|>", allowed_special={"<|endoftext|>"}) == [50256]


@pytest.mark.asset
def test_gpt2_encoding_never_downloads(monkeypatch):
    import tiktoken.load

    def refuse(*args, **kwargs):
        raise AssertionError("tiktoken tried to read or download a file")

    monkeypatch.setattr(tiktoken.load, "read_file", refuse)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", refuse)
    gpt2_encoding.cache_clear()
    try:
        assert gpt2_encoding().encode("offline") == BPETokenizer.from_gpt2().encode("offline")
    finally:
        gpt2_encoding.cache_clear()


@pytest.mark.asset
@pytest.mark.parametrize(
    "text",
    [" " * 5000, "a" * 3000, "\n" * 2000 + "x", "x" + "\t " * 1000, "🤗" * 500, "ab1" * 700,
     "".join(chr(0x4E00 + (i * 7919) % 2000) for i in range(1500))],
    ids=["spaces", "letters", "newlines", "tab-space", "emoji", "ab1", "cjk"],
)
def test_long_chunks_same_ids_as_tiktoken(gpt2_bpe, text):
    assert gpt2_bpe.encode(text) == gpt2_encoding().encode(text)
