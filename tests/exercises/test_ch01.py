"""Chapter 1's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
from __future__ import annotations

import re
from collections import Counter

from slm_course.exercises import ch01
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects
from slm_course.quality import is_boilerplate, split_speaker
from slm_course.tokenizers import merge_pair

SOLVED = notebook_objects("01")
STUB = notebook_objects("01", stub=True)
WORD = r"\w+|[^\w\s]"


def test_build_vocab():
    def insertion_order(text, specials=("<|endoftext|>", "<|unk|>")):  # ids depend on the text's order
        tokens = list(dict.fromkeys(re.findall(WORD, text)))
        return {t: i for i, t in enumerate([*tokens, *specials])}

    def lower_cased(text, specials=("<|endoftext|>", "<|unk|>")):
        tokens = sorted(set(re.findall(WORD, text.lower())))
        return {t: i for i, t in enumerate([*tokens, *specials])}

    def specials_first(text, specials=("<|endoftext|>", "<|unk|>")):
        tokens = sorted(set(re.findall(WORD, text)))
        return {t: i for i, t in enumerate([*specials, *tokens])}

    def specials_sorted(text, specials=("<|endoftext|>", "<|unk|>")):  # not in the order given
        tokens = sorted(set(re.findall(WORD, text)))
        return {t: i for i, t in enumerate([*tokens, *sorted(specials)])}

    def sorted_ignoring_case(text, specials=("<|endoftext|>", "<|unk|>")):  # "be" before "To"
        tokens = sorted(set(re.findall(WORD, text)), key=str.lower)
        return {t: i for i, t in enumerate([*tokens, *specials])}

    def default_specials_always(text, specials=("<|endoftext|>", "<|unk|>")):  # ignores the argument
        tokens = sorted(set(re.findall(WORD, text)))
        return {t: i for i, t in enumerate([*tokens, "<|endoftext|>", "<|unk|>"])}

    wrong = [insertion_order, lower_cased, specials_first, specials_sorted, sorted_ignoring_case,
             default_specials_always]
    assert_check_behaviour(ch01.q1, SOLVED["build_vocab"], STUB["build_vocab"], wrong)


def test_encode_with_unk():
    def split_on_whitespace(text, vocab):  # punctuation stays glued to words
        return [vocab.get(t, vocab["<|unk|>"]) for t in text.split()]

    def specials_cut_up(text, vocab):  # "<|endoftext|>" becomes "<", "|", "endoftext", "|", ">"
        return [vocab.get(t, vocab["<|unk|>"]) for t in re.findall(WORD, text)]

    def unknown_is_zero(text, vocab):
        pattern = "|".join([re.escape("<|endoftext|>"), re.escape("<|unk|>"), WORD])
        return [vocab.get(t, 0) for t in re.findall(pattern, text)]

    def only_endoftext_special(text, vocab):  # other specials such as "<|pad|>" get cut up
        return [vocab.get(t, vocab["<|unk|>"]) for t in re.findall(r"<\|endoftext\|>|" + WORD, text)]

    def split_on_endoftext(text, vocab):
        ids = []
        for piece in re.split(r"(<\|endoftext\|>)", text):
            if piece == "<|endoftext|>":
                ids.append(vocab[piece])
            else:
                ids += [vocab.get(t, vocab["<|unk|>"]) for t in re.findall(WORD, piece)]
        return ids

    def unknown_is_last_id(text, vocab):  # <|unk|> is not always the last entry
        specials = [t for t in vocab if t.startswith("<|") and t.endswith("|>")]
        pattern = "|".join([*map(re.escape, specials), WORD])
        return [vocab.get(t, len(vocab) - 1) for t in re.findall(pattern, text)]

    def any_bracketed_word_is_special(text, vocab):  # "<|sep|>" is one token though not in the vocab
        return [vocab.get(t, vocab["<|unk|>"]) for t in re.findall(r"<\|\w+\|>|" + WORD, text)]

    wrong = [split_on_whitespace, specials_cut_up, unknown_is_zero, only_endoftext_special,
             split_on_endoftext, unknown_is_last_id, any_bracketed_word_is_special]
    assert_check_behaviour(ch01.q2, SOLVED["encode_with_unk"], STUB["encode_with_unk"], wrong)


def test_bpe_merge_step():
    def first_seen_on_tie(ids, new_id):  # Counter.most_common keeps insertion order on ties
        pair = Counter(zip(ids, ids[1:])).most_common(1)[0][0]
        return pair, merge_pair(ids, pair, new_id)

    def largest_on_tie(ids, new_id):
        counts = Counter(zip(ids, ids[1:]))
        pair = max(counts, key=lambda p: (counts[p], p))
        return pair, merge_pair(ids, pair, new_id)

    def right_to_left(ids, new_id):  # [7, 7, 7] becomes [7, new_id] instead of [new_id, 7]
        counts = Counter(zip(ids, ids[1:]))
        pair = min(counts, key=lambda p: (-counts[p], p))
        return pair, merge_pair(ids[::-1], pair[::-1], new_id)[::-1]

    def no_overlapping_count(ids, new_id):  # counts pairs at even positions only
        counts = Counter(zip(ids[::2], ids[1::2]))
        pair = min(counts, key=lambda p: (-counts[p], p))
        return pair, merge_pair(ids, pair, new_id)

    def counts_non_overlapping(ids, new_id):  # [9, 9, 9] holds (9, 9) once this way, not twice
        counts = {pair: len(ids) - len(merge_pair(ids, pair, -1)) for pair in zip(ids, ids[1:])}
        pair = min(counts, key=lambda p: (-counts[p], p))
        return pair, merge_pair(ids, pair, new_id)

    def stops_one_early(ids, new_id):  # `while i < len(ids) - 1` loses an unmerged last id
        counts = Counter(zip(ids, ids[1:]))
        pair = min(counts, key=lambda p: (-counts[p], p))
        merged, i = [], 0
        while i < len(ids) - 1:
            if (ids[i], ids[i + 1]) == pair:
                merged.append(new_id)
                i += 2
            else:
                merged.append(ids[i])
                i += 1
        return pair, merged

    wrong = [first_seen_on_tie, largest_on_tie, right_to_left, no_overlapping_count, counts_non_overlapping,
             stops_one_early]
    assert_check_behaviour(ch01.q3, SOLVED["bpe_merge_step"], STUB["bpe_merge_step"], wrong)


def test_sliding_window_pairs():
    def target_not_shifted(ids, context_length, stride):
        return [(ids[s : s + context_length], ids[s : s + context_length])
                for s in range(0, len(ids) - context_length, stride)]

    def keeps_short_last_window(ids, context_length, stride):  # lets the target run off the end
        return [(ids[s : s + context_length], ids[s + 1 : s + context_length + 1])
                for s in range(0, len(ids) - context_length + 1, stride)]

    def ignores_stride(ids, context_length, stride):
        return [(ids[s : s + context_length], ids[s + 1 : s + context_length + 1])
                for s in range(0, len(ids) - context_length, context_length)]

    wrong = [target_not_shifted, keeps_short_last_window, ignores_stride]
    assert_check_behaviour(ch01.q4, SOLVED["sliding_window_pairs"], STUB["sliding_window_pairs"], wrong)


def test_distinct_n():
    def across_texts(texts, n):  # joins the texts, so n-grams cross from one to the next
        words = re.findall(r"[a-z0-9']+", " ".join(texts).lower())
        grams = [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        return len(set(grams)) / len(grams) if grams else 0.0

    def split_on_whitespace(texts, n):  # keeps punctuation and case
        grams = []
        for text in texts:
            words = text.split()
            grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        return len(set(grams)) / len(grams) if grams else 0.0

    def over_words(texts, n):  # divides by the number of words, not of n-grams
        grams, n_words = [], 0
        for text in texts:
            words = re.findall(r"[a-z0-9']+", text.lower())
            n_words += len(words)
            grams += [tuple(words[i : i + n]) for i in range(len(words) - n + 1)]
        return len(set(grams)) / n_words if n_words else 0.0

    wrong = [across_texts, split_on_whitespace, over_words]
    assert_check_behaviour(ch01.q5, SOLVED["distinct_n"], STUB["distinct_n"], wrong)


def test_teacher_score():
    def no_cap(chunk):
        speaker, body = split_speaker(chunk)
        if is_boilerplate(body):
            return 0.0
        score = 0.5 * len(body.split()) / 30
        return score + 0.3 * bool(re.search(r"[.!?]['\"]?\s*$", body)) + 0.2 * (speaker is not None)

    def counts_the_speaker(chunk):  # scores the whole chunk, tag included
        speaker, body = split_speaker(chunk)
        if is_boilerplate(body):
            return 0.0
        score = 0.5 * min(len(chunk.split()), 30) / 30
        return score + 0.3 * bool(re.search(r"[.!?]['\"]?\s*$", body)) + 0.2 * (speaker is not None)

    def ignores_boilerplate(chunk):
        speaker, body = split_speaker(chunk)
        score = 0.5 * min(len(body.split()), 30) / 30
        return score + 0.3 * bool(re.search(r"[.!?]['\"]?\s*$", body)) + 0.2 * (speaker is not None)

    def no_closing_quote(chunk):  # "... 'Remember me.'" does end a sentence
        speaker, body = split_speaker(chunk)
        if is_boilerplate(body):
            return 0.0
        score = 0.5 * min(len(body.split()), 30) / 30
        return score + 0.3 * bool(re.search(r"[.!?]\s*$", body)) + 0.2 * (speaker is not None)

    def mark_anywhere(chunk):  # a "!" in the middle is not the end of the body
        speaker, body = split_speaker(chunk)
        if is_boilerplate(body):
            return 0.0
        score = 0.5 * min(len(body.split()), 30) / 30
        return score + 0.3 * bool(re.search(r"[.!?]", body)) + 0.2 * (speaker is not None)

    def boilerplate_of_chunk(chunk):  # "HAMLET.\n[Dies.]" is a stage direction with a speaker tag
        speaker, body = split_speaker(chunk)
        if is_boilerplate(chunk):
            return 0.0
        score = 0.5 * min(len(body.split()), 30) / 30
        return score + 0.3 * bool(re.search(r"[.!?]['\"]?\s*$", body)) + 0.2 * (speaker is not None)

    wrong = [no_cap, counts_the_speaker, ignores_boilerplate, no_closing_quote, mark_anywhere, boilerplate_of_chunk]
    assert_check_behaviour(ch01.q6, SOLVED["teacher_score"], STUB["teacher_score"], wrong)


def test_every_problem_is_tested_and_has_hints():
    from slm_course.exercises.core import problems_of

    problems = problems_of(ch01)
    assert [p.name for p in problems] == ["q1", "q2", "q3", "q4", "q5", "q6"]
    for problem in problems:
        assert len(problem.hints) >= 2 and problem.target in SOLVED
