"""Training byte-level BPE (chapter 1): learn merges from a text's chunk counts.

Start from the 256 single bytes. Repeatedly find the most frequent adjacent pair of tokens, make it a
new token, and replace it everywhere. Two tricks keep this fast on a megabyte of text:

- work on the *distinct* chunks of the pre-tokenized text with their counts, not on the text itself
  (a megabyte of Shakespeare has ~200k chunks but only ~25k distinct ones);
- keep the pair counts up to date: a merge only changes the chunks that held the pair, so only their
  pairs are recounted, and a heap finds the most frequent pair without scanning all of them.
"""
from __future__ import annotations

import heapq
import warnings
from collections import defaultdict
from typing import NamedTuple

from slm_course.train.progress import progress_bar


class Merge(NamedTuple):
    """One step of BPE training."""

    left: int  # id of the left token of the pair
    right: int  # id of the right token of the pair
    new_id: int  # id of the merged token (left's bytes followed by right's bytes)
    count: int  # how often the pair occurred in the (chunked) training text when it was merged


def count_pairs(ids: list[int], counts: dict[tuple[int, int], int] | None = None, weight: int = 1) -> dict[tuple[int, int], int]:
    """How often each adjacent pair occurs in ``ids``, added (``weight`` times) to ``counts`` if given.

    ``count_pairs([1, 2, 3, 1, 2]) == {(1, 2): 2, (2, 3): 1, (3, 1): 1}`` — overlapping pairs count:
    ``count_pairs([7, 7, 7]) == {(7, 7): 2}``.
    """
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + weight
    return counts


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """``ids`` with every non-overlapping occurrence of ``pair`` (left to right) replaced by ``new_id``.

    ``merge_pair([1, 2, 1, 2, 2], (1, 2), 9) == [9, 9, 2]``.
    """
    out = []
    i, n = 0, len(ids)
    while i < n:
        if i + 1 < n and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(
    chunk_counts: dict[bytes, int],
    tokens: list[bytes],
    n_tokens: int,
    verbose: bool = False,
    progress: bool = False,
) -> list[Merge]:
    """Merge pairs until ``tokens`` holds ``n_tokens`` byte strings; return the merges in order.

    ``chunk_counts`` maps each distinct pre-tokenized chunk (bytes) to how often it occurs.
    ``tokens`` is the vocabulary so far, id -> bytes, whose first 256 entries are the single bytes
    ``0..255`` in order; it is extended in place. The most frequent pair wins; ties go to the pair
    with the smaller ids, so training is deterministic. A pair whose bytes are already a token (the
    same bytes reached by another split) is merged into that token instead of a duplicate.
    Stops early, with a warning, when no pair is left to merge.
    """
    if [bytes([b]) for b in range(256)] != tokens[:256]:
        raise ValueError("learn_merges needs the 256 single bytes as the first 256 tokens, in byte order.")
    token_id = {t: i for i, t in enumerate(tokens)}  # bytes -> id
    words = [list(chunk) for chunk in chunk_counts]  # each chunk as token ids (bytes at first)
    freqs = list(chunk_counts.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)  # (left, right) -> occurrences
    where: dict[tuple[int, int], set[int]] = defaultdict(set)  # (left, right) -> chunks holding it
    for index, (word, freq) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += freq
            where[pair].add(index)
    # Max-heap of (-count, pair); entries go stale when counts change and are checked when popped.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[Merge] = []
    with progress_bar(n_tokens - len(tokens), desc="BPE merges", enabled=progress) as bar:
        while len(tokens) < n_tokens:
            best = None
            while heap:
                neg_count, pair = heapq.heappop(heap)
                current = pair_counts.get(pair, 0)
                if current == -neg_count and current > 0:
                    best = pair
                    break
                if current > 0:  # stale entry: put the pair back with its true count
                    heapq.heappush(heap, (-current, pair))
            if best is None:
                warnings.warn(
                    f"BPE training ran out of pairs to merge at {len(tokens)} tokens (asked for {n_tokens}); "
                    "train on more text or ask for a smaller vocabulary.",
                    stacklevel=3,
                )
                break
            count = pair_counts[best]
            merged = tokens[best[0]] + tokens[best[1]]
            new_id = token_id.get(merged)
            if new_id is None:
                new_id = len(tokens)
                tokens.append(merged)
                token_id[merged] = new_id
                bar.update(1)
            merges.append(Merge(best[0], best[1], new_id, count))
            if verbose:
                print(f"merge {len(merges)}: {tokens[best[0]]!r} + {tokens[best[1]]!r} -> {new_id} {merged!r} ({count} times)")

            delta: dict[tuple[int, int], int] = defaultdict(int)  # change in each pair's count
            for index in sorted(where.pop(best)):
                word = words[index]
                new_word = merge_pair(word, best, new_id)
                if len(new_word) == len(word):  # stale index: the pair left this chunk earlier
                    continue
                freq = freqs[index]
                for pair in zip(word, word[1:]):
                    delta[pair] -= freq
                for pair in zip(new_word, new_word[1:]):
                    delta[pair] += freq
                    where[pair].add(index)
                words[index] = new_word
            for pair, change in delta.items():
                if change == 0:
                    continue
                pair_counts[pair] += change
                if change > 0:
                    heapq.heappush(heap, (-pair_counts[pair], pair))
                elif pair_counts[pair] <= 0:
                    del pair_counts[pair]
    return merges
