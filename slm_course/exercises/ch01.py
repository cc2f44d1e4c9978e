"""Chapter 1 exercises (data preparation): a word vocabulary, encoding with an unknown token, one
BPE merge step, sliding-window training pairs, distinct-n diversity and a teacher rule.

The learner writes each piece in ``solutions/01_data_preparation.ipynb`` (the exercise copy); the
expected values come from the package: :mod:`slm_course.tokenizers`, :mod:`slm_course.data`,
:mod:`slm_course.synthetic` and :mod:`slm_course.quality`.
"""
from __future__ import annotations

from slm_course.data import SlidingWindowDataset
from slm_course.exercises.core import Case, Problem, call
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
    ]
    return [
        Case(f"encode_with_unk({text!r}, {name})", call(text, vocab),
             lambda text=text, vocab=vocab: WordTokenizer(vocab, _special_tokens(vocab)).encode(text))
        for text, vocab, name in inputs
    ]


def _first_merge(ids: list[int]) -> tuple[int, int]:
    """The pair the package's BPE trainer merges first in ``ids`` (byte values 0..255)."""
    merge = learn_merges({bytes(ids): 1}, [bytes([b]) for b in range(256)], 257)[0]
    return (merge.left, merge.right)


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
    ]
    return [Case(f"bpe_merge_step({ids}, new_id={new_id})", call(ids, new_id),
                 lambda ids=ids, new_id=new_id: expected(ids, new_id)) for ids, new_id in inputs]


def _window_cases() -> list[Case]:
    def expected(ids: list[int], context_length: int, stride: int):
        return [(x.tolist(), y.tolist()) for x, y in SlidingWindowDataset(ids, context_length, stride)]

    ids = list(range(10, 21))  # 11 ids
    settings = [(ids, 4, 4), (ids, 4, 2), (ids, 3, 1), (ids, 10, 5), (list(range(9)), 2, 3)]
    return [Case(f"sliding_window_pairs({ids}, context_length={c}, stride={s})", call(ids, c, s),
                 lambda ids=ids, c=c, s=s: expected(ids, c, s)) for ids, c, s in settings]


def _distinct_cases() -> list[Case]:
    texts = [
        (["the cat sat on the mat", "the cat ran"], 1),
        (["the cat sat on the mat", "the cat ran"], 2),
        (["Once upon a time, a fox.", "Once upon a time, a bear!"], 3),
        (["It's late; it's LATE.", "late"], 2),
        (["one", "two"], 2),
    ]
    return [Case(f"distinct_n({t}, {n})", call(t, n), lambda t=t, n=n: distinct_n(t, n)) for t, n in texts]


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
        "Cut the text with `re.findall(r\"\\w+|[^\\w\\s]\", text)`: words and single punctuation marks. "
        "Keep each distinct token once, in sorted order, then append the special tokens.",
        "`tokens = sorted(set(re.findall(...)))`, then `{token: i for i, token in enumerate([*tokens, *specials])}`. "
        "Do not lower-case: `The` and `the` are different tokens.",
    ],
    points=1,
)

q2 = Problem(
    name="q2", chapter="01", target="encode_with_unk", title="encoding with an unknown-token fallback",
    cases=_encode_cases,
    hints=[
        "First cut the text into tokens, matching special tokens such as `<|endoftext|>` whole before "
        "the word pattern can cut them into `<`, `|`, ...; then look each token up, falling back to "
        "the id of `<|unk|>`.",
        "`specials = [t for t in vocab if t.startswith('<|') and t.endswith('|>')]`; "
        "`pattern = '|'.join([*map(re.escape, specials), r\"\\w+|[^\\w\\s]\"])`; "
        "`[vocab.get(t, vocab['<|unk|>']) for t in re.findall(pattern, text)]`.",
    ],
    points=2,
)

q3 = Problem(
    name="q3", chapter="01", target="bpe_merge_step", title="one BPE merge step", cases=_merge_step_cases,
    hints=[
        "Count every adjacent pair `(ids[i], ids[i + 1])` (overlapping ones too), pick the most frequent, "
        "breaking ties by the smallest pair, then rewrite the list left to right.",
        "`counts = Counter(zip(ids, ids[1:]))`; `pair = min(counts, key=lambda p: (-counts[p], p))`. "
        "When rewriting, after a match skip both ids (`i += 2`), otherwise copy one (`i += 1`).",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="01", target="sliding_window_pairs", title="sliding-window input/target pairs",
    cases=_window_cases,
    hints=[
        "Windows start at 0, stride, 2·stride, ...; a window needs context_length + 1 ids (the target "
        "reaches one further than the input). Stop before a window would run off the end.",
        "`for start in range(0, len(ids) - context_length, stride):` append "
        "`(ids[start:start + context_length], ids[start + 1:start + context_length + 1])`.",
    ],
    points=2,
)

q5 = Problem(
    name="q5", chapter="01", target="distinct_n", title="distinct-n diversity", cases=_distinct_cases,
    hints=[
        "Collect the n-grams of every text separately (they never cross from one text to the next), "
        "then divide how many are different by how many there are. Return 0.0 when there are none.",
        "`words = re.findall(r\"[a-z0-9']+\", text.lower())`; "
        "`grams += [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]`; "
        "`len(set(grams)) / len(grams) if grams else 0.0`.",
    ],
    points=1,
)

q6 = Problem(
    name="q6", chapter="01", target="teacher_score", title="the teacher's quality score", cases=_teacher_cases,
    hints=[
        "`speaker, body = split_speaker(chunk)`; boilerplate scores 0. Otherwise add up three terms: "
        "the length of the body (capped), a complete last sentence, and having a speaker.",
        "`score = 0.5 * min(len(body.split()), 30) / 30`; add 0.3 if "
        "`re.search(r\"[.!?]['\\\"]?\\s*$\", body)`; add 0.2 if `speaker is not None`.",
    ],
    points=2,
)
