"""How fast is the course's pure-Python BPE next to tiktoken's Rust one? (chapter 1's tokenizers)

Prints, on the same 1 MB of Shakespeare (the first 1,000,000 characters of the training split):
- encode throughput in tokens/s of ``BPETokenizer.from_gpt2()`` (fresh per-chunk cache) and of
  ``gpt2_encoding()`` (tiktoken, one thread), their ratio, and a check that both give the same ids;
- the time to train a BPE of ``--vocab-size`` ids (default 2048, the course BPE) on that text.

Run: ``SLM_COURSE_HOME=.cache .venv/bin/python benchmarks/bpe_throughput.py``. Wall-clock timings:
they vary with the machine and with whatever else runs on it; the best of ``--repeats`` runs is shown.
"""
from __future__ import annotations

import argparse
import time

from slm_course.data import shakespeare_splits
from slm_course.tokenizers import BPETokenizer, gpt2_encoding

N_CHARS = 1_000_000


def best_time(function, repeats: int) -> tuple[float, object]:
    """The fastest of ``repeats`` calls of ``function()`` in seconds, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vocab-size", type=int, default=2048, help="vocabulary of the BPE trained (default 2048)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement; the best is reported")
    args = parser.parse_args()

    text = shakespeare_splits()[0][:N_CHARS]
    n_bytes = len(text.encode("utf-8"))
    print(f"text: first {len(text):,} characters of the Shakespeare training split ({n_bytes / 1e6:.2f} MB)")

    # A fresh tokenizer each run, so the per-chunk cache starts empty (it warms up within the text).
    course_s, course_ids = best_time(lambda: BPETokenizer.from_gpt2().encode_ordinary(text), args.repeats)
    encoding = gpt2_encoding()
    tiktoken_s, tiktoken_ids = best_time(lambda: encoding.encode_ordinary(text), args.repeats)
    if course_ids != tiktoken_ids:
        raise SystemExit("The course BPE and tiktoken disagree on this text: a bug.")
    n_tokens = len(course_ids)
    course_rate, tiktoken_rate = n_tokens / course_s, n_tokens / tiktoken_s
    print(f"GPT-2 merges, {n_tokens:,} tokens, same ids from both")
    print(f"  course BPE (Python): {course_rate:12,.0f} tokens/s  ({course_s:.3f} s)")
    print(f"  tiktoken (Rust):     {tiktoken_rate:12,.0f} tokens/s  ({tiktoken_s:.3f} s)")
    print(f"  tiktoken / course = {tiktoken_rate / course_rate:.1f}x")

    def train():
        tokenizer = BPETokenizer()
        tokenizer.train(text, args.vocab_size)
        return tokenizer

    train_s, trained = best_time(train, args.repeats)
    ratio = n_bytes / len(trained.encode_ordinary(text))
    print(f"BPE training, vocab {args.vocab_size} on {n_bytes / 1e6:.2f} MB: {train_s:.2f} s "
          f"({len(trained.merges)} merges; {ratio:.2f} bytes/token on the same text)")


if __name__ == "__main__":
    main()
