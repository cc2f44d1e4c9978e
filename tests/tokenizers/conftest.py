"""Shared inputs for the tokenizer tests: a few hundred varied strings, generated deterministically.

Any test taking a ``varied_string`` argument runs once per string.
"""
from __future__ import annotations

import random

END = "<|endoftext|>"

HAND_PICKED = [
    "", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n ", "\t\t \n  \n", "a  b   c    d",
    "   leading spaces", "trailing spaces   ", "trailing newline\n", "  \n  mixed \t whitespace \n",
    "Hello world", "Hello, world!", "hello\nworld", "HELLO WORLD", "The quick brown fox jumps over the lazy dog.",
    "I'm", "you're", "we've", "he'll", "she'd", "it's", "don't", "DON'T", "I'M", "'s", "'ll", "''", "' s",
    "rock 'n' roll", "O'Neil's dog's bone", "Ma'am, y'all'd've",
    "0", "7", "42", "123", "1234", "1234567890", "3.14159", "1,000,000", "-17", "2026-11-29", "0x1F", "1e-10",
    "café", "naïve", "Ångström", "über", "ñandú", "façade", "e\u0301", "Zoë's résumé",
    "你好", "你好世界", "日本語のテキスト", "한국어", "中文 and English", "ひらがな カタカナ",
    "🤗", "😀😃😄", "👨‍👩‍👧‍👦", "🇫🇷🇩🇪", "👍🏽", "Hi 🌍!", "emoji🤖inside",
    "Hello мир 世界 🌍", "Привет, как дела?", "Γειά σου Κόσμε", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया", "สวัสดี",
    "\u00a0", "non\u00a0breaking", "zero\u200bwidth", "line\u2028separator", "\x00\x01\x02", "\x7f", "\ufeffBOM",
    "tab\tseparated\tvalues", "def f(x):\n    return x ** 2\n", "if (a && b) { c++; }", "<html><body>hi</body></html>",
    "https://example.org/path?q=1&r=2", "user@example.org", "#hashtag @mention", "$$$ %%% ^^^", "...", "?!?!", "—–-",
    "«quoted» “smart” ‘single’", "a" * 50, "ab" * 30, " " * 40, "\n" * 10, "!" * 20, "9" * 30,
    END, f"a{END}b", f"{END}{END}", f" {END} ", f"\n{END}\n", f"Hello{END}world", f"text {END}",
    "<|endoftext", "endoftext|>", "<|end|>", "<|", "|>", f"<{END}>",
    "\ud83d lone surrogate",
]

PIECES = [
    " ", "  ", "\t", "\n", "\n\n", "the", " the", "The", "ing", "tion", "'s", "'re", "'ll", "n't", "'", "\"",
    "0", "12", "345", ".", ",", "!", "?", ";", ":", "-", "--", "(", ")", "é", "ü", "ß", "ç", "ø",
    "你", "好", "世界", "の", "한", "🤗", "🙂", "🚀", "👩‍💻", "Ω", "я", "ж", "ا", "ש", "क", "ก",
    END, "<|", "|>", "\u00a0", "_", "@", "#", "/", "\\", "€", "£", "%", "&", "*",
]


def generated_strings(n_pieces: int = 150, n_bytes: int = 60, seed: int = 0) -> list[str]:
    """Strings glued from ``PIECES`` and random ASCII/Unicode characters, plus random bytes decoded
    two ways (UTF-8 with replacement, Latin-1). Seeded, so the same list every run."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_pieces):
        parts = []
        for _ in range(rng.randrange(1, 12)):
            kind = rng.random()
            if kind < 0.6:
                parts.append(rng.choice(PIECES))
            elif kind < 0.8:
                parts.append("".join(rng.choice("abcdefghijklmnopqrstuvwxyzABCXYZ") for _ in range(rng.randrange(1, 9))))
            else:
                parts.append(chr(rng.randrange(0x20, 0x3000)))
        out.append("".join(parts))
    for k in range(n_bytes):
        raw = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40)))
        out.append(raw.decode("utf-8", errors="replace") if k % 2 else raw.decode("latin-1"))
    return out


def varied_strings() -> list[str]:
    """The hand-picked strings followed by the generated ones (≈330 in all)."""
    return HAND_PICKED + generated_strings()


def pytest_generate_tests(metafunc):
    if "varied_string" in metafunc.fixturenames:
        strings = varied_strings()
        metafunc.parametrize("varied_string", strings, ids=[f"s{i:03d}" for i in range(len(strings))])
