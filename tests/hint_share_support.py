"""How much of an exercise's solution its last hint spells out (DESIGN.md: never more than a third).

The solution's code tokens are those of the region between ``### BEGIN SOLUTION`` and ``### END SOLUTION``
(names, operators, numbers, strings; comments and docstrings left out, since the stub keeps the signature and
the docstring). The hint's tokens are read the same way from its text. The share is the length of the longest
common subsequence of the two token lists over the number of solution tokens: the fraction of the solution a
learner could copy from the hint, in order. Prose words that happen to be names (``the``, ``mean``) count
only where they stand in the same order as in the code, so a hint that explains the idea in words scores low.
"""
from __future__ import annotations

import io
import json
import re
import tokenize
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_WORD = re.compile(r"[A-Za-z_][A-Za-z_0-9]*|\d+(?:\.\d+)?(?:e-?\d+)?|\"[^\"\n]*\"|'[^'\n]*'|==|!=|<=|>=|\*\*|//|->|[^\sA-Za-z_0-9]")


def solution_region(chapter: str, name: str) -> str:
    """The code between the solution markers of exercise ``name`` in ``solutions/<chapter>_*.ipynb``."""
    notebook = next((ROOT / "solutions").glob(f"{chapter}_*.ipynb"))
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        if cell.get("metadata", {}).get("slm_course", {}).get("exercise") == name:
            source = "".join(cell["source"])
            start, end = source.index("### BEGIN SOLUTION"), source.index("### END SOLUTION")
            return source[source.index("\n", start) + 1:end]
    raise KeyError(f"no exercise cell {name} in {notebook.name}")


def code_tokens(code: str) -> list[str]:
    """The code tokens of a block of Python (dedented first): no comments, docstrings or layout."""
    lines = code.splitlines()
    indent = min((len(l) - len(l.lstrip()) for l in lines if l.strip()), default=0)
    text = "\n".join(l[indent:] for l in lines) + "\n"
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
            tokenize.ENCODING, tokenize.ENDMARKER}
    out, previous = [], tokenize.NEWLINE
    try:
        for token in tokenize.generate_tokens(io.StringIO(text).readline):
            # a string standing alone as a statement is a docstring, not code
            if token.type == tokenize.STRING and previous in (tokenize.NEWLINE, tokenize.INDENT, tokenize.NL, tokenize.DEDENT):
                previous = token.type
                continue
            if token.type not in skip:
                out.append(token.string)
            if token.type not in (tokenize.COMMENT, tokenize.NL):
                previous = token.type
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return text_tokens(text)
    return out


def text_tokens(text: str) -> list[str]:
    """Tokens of free text (a hint): words, numbers, quoted strings and operator characters."""
    return _WORD.findall(text)


def _lcs(a: list[str], b: list[str]) -> int:
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b):
            current.append(previous[j] + 1 if x == y else max(previous[j + 1], current[j]))
        previous = current
    return previous[-1]


def hint_share(solution_code: str, hint: str) -> float:
    """The share of ``solution_code``'s tokens that ``hint`` spells out in order (0 to 1)."""
    solution = code_tokens(solution_code)
    if not solution:
        return 0.0
    return _lcs(solution, text_tokens(hint)) / len(solution)
