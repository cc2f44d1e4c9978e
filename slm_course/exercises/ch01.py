"""Chapter 1 exercises (data preparation): a word vocabulary, encoding with an unknown token, one
BPE merge step, sliding-window training pairs, distinct-n diversity and a teacher rule.

The learner writes each piece in ``solutions/01_data_preparation.ipynb`` (the exercise copy); the
expected values come from the package: :mod:`slm_course.tokenizers`, :mod:`slm_course.data`,
:mod:`slm_course.synthetic` and :mod:`slm_course.quality`.
"""
from __future__ import annotations

from slm_course.data import SlidingWindowDataset
from typing import Any

from slm_course.exercises.core import Case, Problem, call, compare_values
from slm_course.quality import teacher_score
from slm_course.synthetic import distinct_n
from slm_course.tokenizers import WordTokenizer, merge_pair
from slm_course.tokenizers.training import learn_merges

SPECIALS = ("<|endoftext|>", "<|unk|>")
REORDERED_SPECIALS = ("<|unk|>", "<|endoftext|>")
PAD_SPECIALS = ("<|unk|>", "<|pad|>", "<|endoftext|>")  # <|unk|> is not the last id; another special
VERSE = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer"
DIALOGUE = "Ber. Who's there?\nFran. Nay, answer me: stand, and unfold yourself.\nBer. Long live the king!"


def _build_vocab_cases() -> list[Case]:
    return [
        Case("build_vocab(VERSE)", call(VERSE), lambda: WordTokenizer.from_text(VERSE, SPECIALS).vocab),
        Case("build_vocab(DIALOGUE)", call(DIALOGUE), lambda: WordTokenizer.from_text(DIALOGUE, SPECIALS).vocab),
        Case("build_vocab('b a b, a!', specials=())", call("b a b, a!", specials=()),
             lambda: WordTokenizer.from_text("b a b, a!", ()).vocab),
        Case("build_vocab('The the THE.', specials=('<|pad|>',))", call("The the THE.", specials=("<|pad|>",)),
             lambda: WordTokenizer.from_text("The the THE.", ("<|pad|>",)).vocab),
        # Not in sorted order: the specials keep the order they are given in.
        Case(f"build_vocab(DIALOGUE, specials={REORDERED_SPECIALS})", call(DIALOGUE, specials=REORDERED_SPECIALS),
             lambda: WordTokenizer.from_text(DIALOGUE, REORDERED_SPECIALS).vocab),
        # Digits are words; sorted as strings ("10" before "9"); punctuation sorts before letters.
        Case("build_vocab('Call 911, or 9 10!', specials=())", call("Call 911, or 9 10!", specials=()),
             lambda: WordTokenizer.from_text("Call 911, or 9 10!", ()).vocab),
        Case("build_vocab('', specials=('<|unk|>',))", call("", specials=("<|unk|>",)),
             lambda: WordTokenizer.from_text("", ("<|unk|>",)).vocab),
        # Not only ASCII: \w matches accented letters; surrounding whitespace is no token.
        Case("build_vocab('  Café naïve, señor Ölz.\n', specials=())", call("  Café naïve, señor Ölz.\n", specials=()),
             lambda: WordTokenizer.from_text("  Café naïve, señor Ölz.\n", ()).vocab),
    ]


def _special_tokens(vocab: dict[str, int]) -> list[str]:
    return [t for t in vocab if t.startswith("<|") and t.endswith("|>")]


def _encode_cases() -> list[Case]:
    vocab = WordTokenizer.from_text(VERSE, SPECIALS).vocab
    pad_vocab = WordTokenizer.from_text(VERSE, PAD_SPECIALS).vocab
    inputs = [
        ("To be, or not to be", vocab, "vocab of VERSE"),  # every word known
        ("To sleep, perchance to dream", vocab, "vocab of VERSE"),  # unknown words
        ("the question<|endoftext|>Whether", vocab, "vocab of VERSE"),  # a special token inside the text
        ("", vocab, "vocab of VERSE"),  # nothing to encode
        # Looks like a special token but is not in the vocabulary: cut like any other text.
        ("the question<|sep|>Whether", vocab, "vocab of VERSE"),
        # Other specials, and <|unk|> is not the last id.
        ("To sleep<|pad|><|pad|>the mind<|endoftext|>", pad_vocab, f"vocab of VERSE with specials {PAD_SPECIALS}"),
        # "'" has id 0 in this vocabulary: `vocab.get(t) or unk` would turn it into <|unk|>.
        ("Whether 'tis nobler, 'twas", vocab, "vocab of VERSE, where \"'\" has id 0"),
    ]
    return [
        Case(f"encode_with_unk({text!r}, {name})", call(text, vocab),
             lambda text=text, vocab=vocab: WordTokenizer(vocab, _special_tokens(vocab)).encode(text))
        for text, vocab, name in inputs
    ]


def _first_merge(ids: list[int]) -> tuple[int, int]:
    """The pair the package's BPE trainer merges first in ``ids``. Ids past 255 are first renumbered by rank
    (an order-keeping map, so counts and the smallest-pair tie-break are unchanged), then mapped back."""
    values = sorted(set(ids))
    rank = {v: i for i, v in enumerate(values)}
    merge = learn_merges({bytes(rank[i] for i in ids): 1}, [bytes([b]) for b in range(256)], 257)[0]
    return (values[merge.left], values[merge.right])


def _tie_compare(ids: list[int]):
    """Compare (pair, new_ids) by position, and explain a tie when the learner chose another pair as frequent."""
    parts = (("the pair", "the new ids"), "position")

    def compare(expected: Any, actual: Any) -> str | None:
        reason = compare_values(expected, actual, parts=parts)
        if reason is None or not (isinstance(actual, tuple) and len(actual) == 2 and isinstance(actual[0], tuple)):
            return reason
        counts = {p: list(zip(ids, ids[1:])).count(p) for p in set(zip(ids, ids[1:]))}
        chosen, best = actual[0], expected[0]
        if chosen != best and counts.get(chosen) == counts[best]:
            tied = sorted(p for p, c in counts.items() if c == counts[best])
            return (f"{reason}. The pairs {', '.join(map(str, tied))} tie with {counts[best]} occurrences each; "
                    f"on a tie the smallest pair wins, {best}")
        return reason

    return compare


def _merge_step_cases() -> list[Case]:
    def expected(ids: list[int], new_id: int):
        pair = _first_merge(ids)
        return pair, merge_pair(ids, pair, new_id)

    inputs = [
        (list("hello hello help".encode()), 256),  # one clear winner
        ([9, 8, 1, 2, 9, 8, 1, 2], 300),  # a three-way tie: the smallest pair wins
        ([7, 7, 7, 7, 7], 256),  # overlapping occurrences: merged left to right
        ([3, 1, 3, 1, 3], 999),
        ([9, 9, 9, 1, 2], 256),  # (9, 9) occurs twice (overlapping), so it beats the smaller (1, 2)
        ([0, 0, 5, 0, 0, 5], 1000),  # id 0 is an id like any other: (0, 0) ties (0, 5) and wins
        ([300, 301, 12, 300, 301, 1], 302),  # ids of several digits (earlier merges)
    ]
    return [Case(f"bpe_merge_step({ids}, new_id={new_id})", call(ids, new_id),
                 lambda ids=ids, new_id=new_id: expected(ids, new_id), _tie_compare(ids)) for ids, new_id in inputs]


def _window_cases() -> list[Case]:
    def expected(ids: list[int], context_length: int, stride: int):
        return [(x.tolist(), y.tolist()) for x, y in SlidingWindowDataset(ids, context_length, stride)]

    ids = list(range(10, 21))  # 11 ids
    settings = [(ids, 4, 4), (ids, 4, 2), (ids, 3, 1), (ids, 10, 5), (list(range(9)), 2, 3),
                ([7, 0, 7], 2, 1),  # id 0 inside; the last window's target ends exactly at the end
                ([5, 0, 12, 0], 3, 2),  # exactly context_length + 1 ids: one window, the stride never used
                (list(range(100, 115)), 3, 5)]  # a stride longer than the window: ids between are skipped
    parts = ("window", ("input", "target"), "position")
    # The last two by name, the rest by position.
    return [Case(f"sliding_window_pairs({ids}, context_length={c}, stride={s})",
                 call(ids, context_length=c, stride=s) if i >= len(settings) - 2 else call(ids, c, s),
                 lambda ids=ids, c=c, s=s: expected(ids, c, s), parts=parts) for i, (ids, c, s) in enumerate(settings)]


def _distinct_cases() -> list[Case]:
    texts = [
        (["the cat sat on the mat", "the cat ran"], 1),
        (["the cat sat on the mat", "the cat ran"], 2),
        (["Once upon a time, a fox.", "Once upon a time, a bear!"], 3),
        (["It's late; it's LATE.", "late"], 2),
        (["one", "two"], 2),
        (["a b a b a", "b a"], 4),  # passed by name: n=4
    ]
    return [Case(f"distinct_n({t}, {'n=' if n == 4 else ''}{n})", call(t, n=n) if n == 4 else call(t, n),
                 lambda t=t, n=n: distinct_n(t, n)) for t, n in texts]


def _teacher_cases() -> list[Case]:
    chunks = [
        "HAMLET.\nTo be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer",
        "BERNARDO.\nWho's there?",
        "[Enter Horatio and Marcellus.]",
        "From fairest creatures we desire increase,\nThat thereby beauty's rose might never die.",
        "FALSTAFF.\n" + " ".join(["Honour pricks me on, yea, but how if honour prick me off when I come on?"] * 3),
        "ACT III.",
        "HAMLET.\nWhat says the ghost? 'Remember me.'",  # the last sentence ends inside a quote
        "MARCELLUS.\nPeace! Break thee off; look where it comes again,",  # a "!" inside, but no ending
        "HAMLET.\n[Dies.]",  # a speech whose body is a stage direction
    ]
    return [Case(f"teacher_score({chunk[:40]!r}…)", call(chunk), lambda chunk=chunk: teacher_score(chunk))
            for chunk in chunks]


q1 = Problem(
    name="q1", chapter="01", target="build_vocab", title="a word vocabulary", cases=_build_vocab_cases,
    hints=[
        "Cut the text into words and single punctuation marks with the statement's regular expression, "
        "keep each distinct token once in sorted order (case matters), number them from 0, then give "
        "the special tokens the next ids in the order they are given.",
        "With the statement's pattern, 'b a, b' cuts into ['b', 'a', ',', 'b']; a set keeps each token "
        "once, and Python sorts strings by code point, so ',' comes before 'a'. Those get ids 0, 1, 2; "
        "the specials then take 3, 4, … in the order given.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="01", target="encode_with_unk", title="encoding with an unknown-token fallback",
    cases=_encode_cases,
    hints=[
        "Cut the text so that the vocabulary's special tokens (`<|…|>`) are matched whole before the word "
        "pattern can cut them into `<`, `|`, …; then look each token up, falling back to the id of "
        "`<|unk|>`. Careful: an id can be 0, and 0 is falsy.",
        "The key step is the pattern: each special token escaped (its `|` is not an alternation), joined "
        "by '|' in front of the word pattern, longest first, so at each position a whole special is "
        "tried before its pieces. For the fallback, a dictionary's get with a default keeps the id 0, "
        "where `vocab.get(t) or unk` would not.",
    ],
    points=2,
)

q3 = Problem(
    name="q3", chapter="01", target="bpe_merge_step", title="one BPE merge step", cases=_merge_step_cases,
    hints=[
        "Count every adjacent pair (overlapping ones too), pick the most frequent, breaking ties by the "
        "smallest pair, then rewrite the ids left to right, replacing each occurrence by new_id. Return "
        "a tuple (pair, new_ids), the pair itself a tuple.",
        "Choosing the pair: `min` over the counted pairs with the key (minus its count, the pair itself) "
        "puts the most frequent first and breaks ties by the smallest pair. Merging, worked on [7, 7, 7] "
        "with the pair (7, 7) and new id 256: scanning left to right gives [256, 7]; after a match skip "
        "both ids.",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="01", target="sliding_window_pairs", title="sliding-window input/target pairs",
    cases=_window_cases,
    hints=[
        "Windows start at 0, stride, 2·stride, …; a window needs context_length + 1 ids (the target "
        "reaches one further than the input). Stop before a window would run off the end. Each pair is "
        "a tuple (input, target) of two lists.",
        "Worked on the ids 0 to 4 with context_length 2 and stride 2: windows start at 0 and 2; the "
        "first input is 0 1 with target 1 2, the second input 2 3 with target 3 4. A start is allowed "
        "while start plus context_length is still a valid index.",
    ],
    points=2,
)

q5 = Problem(
    name="q5", chapter="01", target="distinct_n", title="distinct-n diversity", cases=_distinct_cases,
    hints=[
        "Collect the n-grams of every text separately (they never cross from one text to the next), "
        "then divide how many are different by how many there are. Return 0.0 when there are none.",
        "Worked on ['a b a b'] with n = 2: the bigrams are (a, b), (b, a), (a, b) — 2 different of 3, so "
        "2/3. A text of w words holds w − n + 1 n-grams when w ≥ n, none otherwise; make each n-gram a "
        "tuple so that a set can hold it.",
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="01", target="teacher_score", title="the teacher's quality score", cases=_teacher_cases,
    hints=[
        "`speaker, body = split_speaker(chunk)`; boilerplate scores 0. Otherwise add up three terms: "
        "the length of the body (capped at 30 words), a complete last sentence (a quote may close it), "
        "and having a speaker.",
        "The three terms, worked on a chunk with a speaker and a 12-word body ending in '.': 0.5 · 12/30 "
        "= 0.2 for the length, 0.3 for the complete sentence, 0.2 for the speaker: 0.7 in all. The "
        "ending test is a search for one of . ! ? then an optional closing quote, then only whitespace.",
    ],
    points=2,
)
