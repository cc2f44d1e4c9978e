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

    def numbers_sorted_as_numbers(text, specials=("<|endoftext|>", "<|unk|>")):  # "9" before "10"
        tokens = sorted(set(re.findall(WORD, text)), key=lambda t: (0, int(t), t) if t.isdigit() else (1, 0, t))
        return {t: i for i, t in enumerate([*tokens, *specials])}

    def words_only(text, specials=("<|endoftext|>", "<|unk|>")):  # drops punctuation marks
        tokens = sorted(set(re.findall(r"\w+", text)))
        return {t: i for i, t in enumerate([*tokens, *specials])}

    wrong = [insertion_order, lower_cased, specials_first, specials_sorted, sorted_ignoring_case,
             default_specials_always, numbers_sorted_as_numbers, words_only]
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

    def falsy_id_zero(text, vocab):  # `vocab.get(t) or unk` turns the token whose id is 0 into <|unk|>
        specials = [t for t in vocab if t.startswith("<|") and t.endswith("|>")]
        pattern = "|".join([*map(re.escape, specials), WORD])
        return [vocab.get(t) or vocab["<|unk|>"] for t in re.findall(pattern, text)]

    def adds_unknowns_to_vocab(text, vocab):  # setdefault edits the caller's vocabulary
        specials = [t for t in vocab if t.startswith("<|") and t.endswith("|>")]
        pattern = "|".join([*map(re.escape, specials), WORD])
        return [vocab.setdefault(t, vocab["<|unk|>"]) for t in re.findall(pattern, text)]

    wrong = [split_on_whitespace, specials_cut_up, unknown_is_zero, only_endoftext_special,
             split_on_endoftext, unknown_is_last_id, any_bracketed_word_is_special, falsy_id_zero,
             adds_unknowns_to_vocab]
    assert_check_behaviour(ch01.q2, SOLVED["encode_with_unk"], STUB["encode_with_unk"], wrong)
    assert "changed its input `vocab` in place" in ch01.q2.check(adds_unknowns_to_vocab, quiet=True).reason

    def with_try_except(text, vocab):  # a correct alternative
        specials = sorted((t for t in vocab if t.startswith("<|") and t.endswith("|>")), key=len, reverse=True)
        ids = []
        for token in re.findall("|".join([*map(re.escape, specials), WORD]), text):
            try:
                ids.append(vocab[token])
            except KeyError:
                ids.append(vocab["<|unk|>"])
        return ids

    assert ch01.q2.check(with_try_except, quiet=True).correct


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

    def pair_as_list(ids, new_id):  # the statement says a tuple (pair, new_ids), the pair a tuple
        counts = Counter(zip(ids, ids[1:]))
        pair = min(counts, key=lambda p: (-counts[p], p))
        return [list(pair), merge_pair(ids, pair, new_id)]

    def merges_in_place(ids, new_id):  # rewrites the caller's list
        counts = Counter(zip(ids, ids[1:]))
        pair = min(counts, key=lambda p: (-counts[p], p))
        i = 0
        while i < len(ids) - 1:
            if (ids[i], ids[i + 1]) == pair:
                ids[i : i + 2] = [new_id]
            i += 1
        return pair, ids

    def smallest_first(ids, new_id):  # ties broken first, frequency second
        counts = Counter(zip(ids, ids[1:]))
        pair = min(counts)
        return pair, merge_pair(ids, pair, new_id)

    wrong = [first_seen_on_tie, largest_on_tie, right_to_left, no_overlapping_count, counts_non_overlapping,
             stops_one_early, pair_as_list, merges_in_place, smallest_first]
    assert_check_behaviour(ch01.q3, SOLVED["bpe_merge_step"], STUB["bpe_merge_step"], wrong)
    reason = ch01.q3.check(first_seen_on_tie, quiet=True).reason
    assert "occurrences each; on a tie the smallest pair wins, (101, 108)" in reason, reason
    assert "the pair" in reason
    assert "expected a tuple, got a list" in ch01.q3.check(pair_as_list, quiet=True).reason
    assert "in place" in ch01.q3.check(merges_in_place, quiet=True).reason


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

    def lists_not_tuples(ids, context_length, stride):  # [input, target] where a tuple is asked for
        return [[ids[s : s + context_length], ids[s + 1 : s + context_length + 1]]
                for s in range(0, len(ids) - context_length, stride)]

    def tuples_of_tuples(ids, context_length, stride):
        return [(tuple(ids[s : s + context_length]), tuple(ids[s + 1 : s + context_length + 1]))
                for s in range(0, len(ids) - context_length, stride)]

    def needs_two_extra(ids, context_length, stride):  # `len(ids) - context_length - 1`: drops the last window
        return [(ids[s : s + context_length], ids[s + 1 : s + context_length + 1])
                for s in range(0, len(ids) - context_length - 1, stride)]

    wrong = [target_not_shifted, keeps_short_last_window, ignores_stride, lists_not_tuples, tuples_of_tuples,
             needs_two_extra]
    assert_check_behaviour(ch01.q4, SOLVED["sliding_window_pairs"], STUB["sliding_window_pairs"], wrong)
    reason = ch01.q4.check(target_not_shifted, quiet=True).reason
    assert "window 0, target, position 0: expected 11, got 10" in reason, reason
    assert "window 0: expected a tuple, got a list" in ch01.q4.check(lists_not_tuples, quiet=True).reason


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

    def int_zero_is_fine(texts, n):  # returning the int 0 for "no n-grams" is a correct alternative
        grams = [g for t in texts for w in [re.findall(r"[a-z0-9']+", t.lower())]
                 for g in zip(*(w[i:] for i in range(n)))]
        return len(set(grams)) / len(grams) if grams else 0

    assert ch01.q5.check(int_zero_is_fine, quiet=True).correct
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


def test_mistakes_the_statements_rule_out():
    # build_vocab: an ASCII-only word pattern cuts "Café" into "Caf" and "é".
    def ascii_words(text, specials=("<|endoftext|>", "<|unk|>")):
        tokens = sorted(set(re.findall(r"[A-Za-z0-9_]+|[^A-Za-z0-9_\s]", text)))
        return {t: i for i, t in enumerate([*tokens, *specials])}

    assert ch01.q1.check(ascii_words, quiet=True).status == "incorrect"

    # bpe_merge_step: ids past 255 (a learner who keeps bytes) fail.
    def through_bytes(ids, new_id):
        data = bytes(ids)  # ValueError past 255
        counts = Counter(zip(data, data[1:]))
        pair = min(counts, key=lambda p: (-counts[p], p))
        return pair, merge_pair(ids, pair, new_id)

    assert ch01.q3.check(through_bytes, quiet=True).status == "incorrect"

    # sliding_window_pairs: the statement's names are used; a stride longer than the window skips ids.
    def other_names(ids, size, step):
        return [(ids[s:s + size], ids[s + 1:s + size + 1]) for s in range(0, len(ids) - size, step)]

    def stride_capped(ids, context_length, stride):  # min(stride, context_length): overlapping instead
        step = min(stride, context_length)
        return [(ids[s:s + context_length], ids[s + 1:s + context_length + 1])
                for s in range(0, len(ids) - context_length, step)]

    for answer in (other_names, stride_capped):
        assert ch01.q4.check(answer, quiet=True).status == "incorrect", answer.__name__
