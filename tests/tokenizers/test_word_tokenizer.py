"""The word-level tokenizer of chapter 1."""
from __future__ import annotations

import pytest

from slm_course.tokenizers import WordTokenizer

TEXT = "the cat sat. the dog barked!"


@pytest.fixture()
def tok() -> WordTokenizer:
    return WordTokenizer.from_text(TEXT)


def test_vocabulary_is_sorted_words_then_specials(tok):
    # By hand: punctuation sorts before letters in code-point order.
    expected = ["!", ".", "barked", "cat", "dog", "sat", "the", "<|endoftext|>", "<|unk|>"]
    assert tok.vocab == {t: i for i, t in enumerate(expected)}
    assert len(tok) == 9


def test_vocabulary_does_not_depend_on_word_order():
    assert WordTokenizer.from_text("b a c a").vocab == WordTokenizer.from_text("c b a").vocab


def test_encode_and_decode(tok):
    assert tok.tokenize("the dog sat.") == ["the", "dog", "sat", "."]
    assert tok.encode("the dog sat.") == [6, 4, 5, 1]
    assert tok.decode([6, 4, 5, 1]) == "the dog sat."
    assert tok.decode(tok.encode(TEXT)) == TEXT


def test_unknown_words_become_unk(tok):
    unk = tok.vocab["<|unk|>"]
    assert tok.encode("the cow sat on the mat") == [6, unk, 5, unk, 6, unk]
    assert tok.decode(tok.encode("the cow sat.")) == "the <|unk|> sat."


def test_special_tokens_are_kept_whole(tok):
    eot = tok.vocab["<|endoftext|>"]
    assert tok.encode("the cat<|endoftext|>the dog") == [6, 3, eot, 6, 4]


def test_whitespace_is_not_kept(tok):
    assert tok.encode("the\n\ncat\t sat") == tok.encode("the cat sat")


def test_clear_errors():
    plain = WordTokenizer.from_text("a b", specials=())
    with pytest.raises(ValueError, match="<\\|unk\\|>"):
        plain.encode("a z")
    with pytest.raises(ValueError, match="not in this vocabulary"):
        plain.decode([0, 5])
    with pytest.raises(TypeError, match="str"):
        WordTokenizer.from_text(["a", "b"])
    with pytest.raises(ValueError, match="ids 0, 1"):
        WordTokenizer({"a": 0, "b": 2})
