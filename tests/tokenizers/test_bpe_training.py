"""Training, encoding, saving and loading the course's byte-level BPE (no asset needed)."""
from __future__ import annotations

import json

import pytest

from slm_course.tokenizers import BPETokenizer, Merge, count_pairs, merge_pair
from slm_course.tokenizers.bpe import bpe_merge, bpe_merge_heap
from slm_course.tokenizers.training import learn_merges

# A small English-like corpus: enough repeated words for a few hundred merges.
CORPUS = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair. "
    "Café naïve façade — 你好世界 🤗 3.14159 and 2026!\n\n"
) * 20


def test_worked_example_aaabdaaabac():
    """The classic example, derived by hand (a=97, b=98, c=99, d=100; GPT-2's regex keeps the word whole).

    "aaabdaaabac" has the pairs aa aa ab bd da aa aa ab ba ac, so
    1. aa (4 times) -> 256:  [aa a b d aa a b a c]   (left to right: "aaa" becomes "aa" + "a")
    2. (256, 97) "aa"+"a" and (97, 98) "a"+"b" both occur twice; the tie goes to the smaller ids,
       (97, 98) -> 257 "ab":  [aa ab d aa ab a c]
    3. (256, 257) "aa"+"ab" (twice) -> 258 "aaab":  [aaab d aaab a c]
    4. (258,100) (100,258) (258,97) (97,99) once each; the smallest ids win: (97, 99) -> 259 "ac".
    With <|endoftext|> the vocabulary has 256 + 4 + 1 = 261 ids.
    """
    tok = BPETokenizer()
    merges = tok.train("aaabdaaabac", vocab_size=261)
    assert merges == [Merge(97, 97, 256, 4), Merge(97, 98, 257, 2), Merge(256, 257, 258, 2), Merge(97, 99, 259, 1)]
    assert [tok.token_bytes(i) for i in range(256, 260)] == [b"aa", b"ab", b"aaab", b"ac"]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 259]
    assert tok.special_tokens == {"<|endoftext|>": 260}
    assert len(tok) == 261


def test_merge_pair_is_left_to_right_and_non_overlapping():
    assert merge_pair([1, 2, 1, 2, 2], (1, 2), 9) == [9, 9, 2]
    assert merge_pair([5, 5, 5], (5, 5), 7) == [7, 5]
    assert merge_pair([], (1, 2), 9) == []


def test_count_pairs_counts_overlaps_and_accumulates():
    assert count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}
    assert count_pairs([7, 7, 7]) == {(7, 7): 2}
    assert count_pairs([5]) == {}
    assert count_pairs([1, 2], {(1, 2): 3}, weight=10) == {(1, 2): 13}


def test_untrained_tokenizer_is_plain_bytes():
    tok = BPETokenizer()
    assert tok.encode("hé") == list("hé".encode("utf-8"))
    assert len(tok) == 256


@pytest.fixture(scope="module")
def trained() -> BPETokenizer:
    tok = BPETokenizer()
    tok.train(CORPUS, vocab_size=350)
    return tok


def test_training_reaches_the_vocab_size_with_specials_last(trained):
    assert len(trained) == 350
    assert trained.special_tokens == {"<|endoftext|>": 349}
    assert sorted(trained.ranks.values()) == list(range(349))
    assert len(trained.merges) == 349 - 256


def test_merge_counts_never_increase_and_tokens_are_their_pairs(trained):
    counts = [m.count for m in trained.merges]
    assert counts == sorted(counts, reverse=True)  # BPE always merges the most frequent pair left
    for m in trained.merges:
        assert trained.token_bytes(m.new_id) == trained.token_bytes(m.left) + trained.token_bytes(m.right)


def test_first_merge_is_the_most_frequent_pair(trained):
    # Counted independently: the most frequent adjacent byte pair within GPT-2 chunks of the corpus.
    from collections import Counter

    pairs = Counter()
    for chunk in trained.pretokenize(CORPUS):
        data = chunk.encode("utf-8")
        pairs.update(zip(data, data[1:]))
    (best, count), = pairs.most_common(1)
    assert trained.merges[0] == Merge(best[0], best[1], 256, count)


def test_training_is_deterministic(trained):
    again = BPETokenizer()
    assert again.train(CORPUS, vocab_size=350) == trained.merges
    assert again.ranks == trained.ranks


def test_training_compresses(trained):
    assert len(trained.encode(CORPUS)) < 0.5 * len(CORPUS.encode("utf-8"))


def test_round_trip_and_same_ids_as_tiktoken_on_a_trained_table(trained, varied_string):
    ids = trained.encode(varied_string)
    assert ids == trained.to_tiktoken().encode(varied_string, allowed_special="all")
    if "\ud83d" not in varied_string:
        assert trained.decode(ids) == varied_string


def test_special_tokens_only_when_allowed(trained):
    text = "the age<|endoftext|>of"
    eot = trained.special_tokens["<|endoftext|>"]
    assert eot in trained.encode(text)
    assert trained.encode(text, allowed_special={"<|endoftext|>"}) == trained.encode(text)
    plain = trained.encode(text, allowed_special="none")
    assert eot not in plain and trained.decode(plain) == text


def test_save_load_round_trip(trained, tmp_path):
    path = trained.save(tmp_path / "sub" / "tokenizer.json")
    assert [p.name for p in path.parent.iterdir()] == ["tokenizer.json"]  # no temporary file left behind
    loaded = BPETokenizer.load(path)
    assert loaded.ranks == trained.ranks
    assert loaded.special_tokens == trained.special_tokens
    assert loaded.merges == trained.merges
    assert loaded.pattern == trained.pattern
    assert loaded.encode(CORPUS[:500]) == trained.encode(CORPUS[:500])
    assert json.loads(path.read_text(encoding="utf-8"))["tokens"][32] == "Ġ"  # GPT-2's printable space


def test_pair_already_a_token_reuses_its_id():
    tokens = [bytes([b]) for b in range(256)] + [b"ab"]
    with pytest.warns(UserWarning, match="ran out of pairs"):
        merges = learn_merges({b"ab": 5}, tokens, n_tokens=300)
    assert merges == [Merge(97, 98, 256, 5)]
    assert len(tokens) == 257


def test_small_text_stops_early_with_a_warning():
    tok = BPETokenizer()
    with pytest.warns(UserWarning, match="ran out of pairs"):
        tok.train("abc", vocab_size=1000)
    assert len(tok) == 256 + 2 + 1  # ab, abc, <|endoftext|>


def test_clear_errors(tmp_path, trained):
    with pytest.raises(ValueError, match="at least 257"):
        BPETokenizer().train("some text", vocab_size=200)
    with pytest.raises(TypeError, match="str"):
        BPETokenizer().train(b"bytes", vocab_size=300)
    with pytest.raises(ValueError, match="not in this tokenizer"):
        trained.decode([1, 350])
    with pytest.raises(ValueError, match="not in this tokenizer"):
        trained.decode([-1])
    with pytest.raises(ValueError, match="not special tokens"):
        trained.encode("x", allowed_special={"<|im_start|>"})
    with pytest.raises(TypeError, match="str"):
        trained.encode(123)
    not_json = tmp_path / "notes.txt"
    not_json.write_text("just some notes", encoding="utf-8")
    with pytest.raises(ValueError, match="not a tokenizer file"):
        BPETokenizer.load(not_json)
    other_json = tmp_path / "config.json"
    other_json.write_text(json.dumps({"n_layer": 12}), encoding="utf-8")
    with pytest.raises(ValueError, match="Not a course BPE tokenizer"):
        BPETokenizer.load(other_json)
    broken = trained.to_dict()
    del broken["tokens"][65]
    with pytest.raises(ValueError, match="256 single bytes"):
        BPETokenizer.from_dict(broken)


def test_heap_merge_gives_the_simple_merge_ids(trained):
    import random

    rng = random.Random(1)
    alphabet = [t for t in trained.ranks if len(t) < 4]  # pieces of tokens, so that many pairs join
    for _ in range(200):
        chunk = b"".join(rng.choice(alphabet) for _ in range(rng.randrange(2, 120)))
        assert bpe_merge_heap(chunk, trained.ranks) == bpe_merge(chunk, trained.ranks)


def test_verbose_prints_one_line_per_merge(capsys):
    merges = BPETokenizer().train("aaabdaaabac", vocab_size=261, verbose=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == len(merges) == 4
    assert lines[0] == "merge 1: b'a' + b'a' -> 256 b'aa' (4 times)"
