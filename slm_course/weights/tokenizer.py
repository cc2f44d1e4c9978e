"""The SmolLM2 tokenizer rebuilt from a GGUF header (chapter 6): vocabulary, merges, chat template.

A GGUF file carries its tokenizer: ``tokenizer.ggml.tokens`` (each id's token, spelled in GPT-2's
printable byte characters, ``Ġ`` for a space), ``tokenizer.ggml.merges`` (the BPE merges in priority
order, ``"Ġ t"``), ``tokenizer.ggml.token_type`` (3 marks a control token such as ``<|im_end|>``),
the BOS/EOS ids, ``tokenizer.ggml.add_bos_token`` and ``tokenizer.chat_template`` (Jinja).

Encoding is chapter 1's byte-level BPE with one difference: the merge order is given by the
*merge list* (pair → rank), as in Hugging Face's BPE, rather than by token id as in tiktoken. Control
tokens written in the text stay whole; the rest is cut into chunks and merged within each chunk.

How the text is cut is the file's ``tokenizer.ggml.pre``. SmolLM2's says ``"smollm"``: its original
tokenizer first isolates every digit (Hugging Face's ``Digits(individual_digits=True)``), then cuts each
stretch between digits with GPT-2's regex. llama.cpp does the same for this type. The difference shows
only where whitespace stands right before a digit: ``"a  1"`` is ``a``, ``"  "``, ``1`` (a two-space token),
where GPT-2's regex alone gives ``a``, ``" "``, ``" 1"`` and then three ids. ``transformers``' conversion of
the GGUF file uses GPT-2's regex alone, so the course equals it everywhere except there, and equals
llama.cpp there too (tests/weights/test_smollm2_asset.py, tests/test_deploy.py).
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import regex

from slm_course.tokenizers.base import GPT2_SPLIT_PATTERN, bytes_to_unicode, printable_to_bytes

CONTROL = 3  # tokenizer.ggml.token_type of a control (special) token
USER_DEFINED = 4  # a token matched whole in the text, but not special
# tokenizer.ggml.pre values whose digits are cut out one by one before GPT-2's regex (llama.cpp's list)
DIGITS_FIRST = frozenset({"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva"})
_DIGIT = regex.compile(r"(\p{N})")


def pair_merge(word: Sequence[str], merge_ranks: dict[tuple[str, str], int]) -> list[str]:
    """Merge one chunk's symbols: join the adjacent pair with the lowest merge rank (leftmost on a
    tie), again and again, until no adjacent pair is in the merge list. ``["Ġ","t","h","e"]`` → ``["Ġthe"]``."""
    parts = list(word)
    while len(parts) > 1:
        best, at = None, -1
        for i in range(len(parts) - 1):
            rank = merge_ranks.get((parts[i], parts[i + 1]))
            if rank is not None and (best is None or rank < best):
                best, at = rank, i
        if best is None:
            break
        parts[at:at + 2] = [parts[at] + parts[at + 1]]
    return parts


class GGUFTokenizer:
    """Byte-level BPE from a GGUF header: ``encode``, ``decode``, ``apply_chat_template``.

    Attributes: ``tokens`` (id → printable token), ``ids`` (printable token → id), ``merge_ranks``
    (pair → priority), ``specials`` (control tokens matched whole in the text), ``bos_id``, ``eos_id``,
    ``add_bos`` (the file's ``add_bos_token``: SmolLM2 says False, so ``encode`` adds no BOS),
    ``chat_template`` (Jinja source or None), ``pre`` (the file's pre-tokenizer type: ``"smollm"``
    isolates each digit before GPT-2's regex; None or another type uses GPT-2's regex alone).
    """

    def __init__(self, tokens: Sequence[str], merges: Sequence[str], token_types: Sequence[int] = (),
                 bos_id: int | None = None, eos_id: int | None = None, add_bos: bool = False,
                 chat_template: str | None = None, pre: str | None = None) -> None:
        self.tokens = list(tokens)
        self.ids = {t: i for i, t in enumerate(self.tokens)}
        self.merge_ranks = {tuple(m.split(" ", 1)): r for r, m in enumerate(merges)}
        alphabet = set(bytes_to_unicode().values())
        types = list(token_types) or [1] * len(self.tokens)
        # Control tokens spelled outside the byte alphabet are llama.cpp mislabels; transformers skips them too.
        self.specials = {t: i for i, (t, k) in enumerate(zip(self.tokens, types))
                         if k in (CONTROL, USER_DEFINED) and set(t) <= alphabet}
        self.bos_id, self.eos_id, self.add_bos = bos_id, eos_id, bool(add_bos)
        self.chat_template = chat_template
        self.pre = pre
        self._digits_first = pre in DIGITS_FIRST
        self._byte_char = bytes_to_unicode()
        self._split = regex.compile(GPT2_SPLIT_PATTERN)
        by_length = sorted(self.specials, key=len, reverse=True)  # longest first, so a longer special wins
        self._special_split = regex.compile("(" + "|".join(regex.escape(s) for s in by_length) + ")") if by_length else None
        self._cache: dict[str, list[int]] = {}

    @classmethod
    def from_metadata(cls, meta: dict[str, Any]) -> "GGUFTokenizer":
        """Build from a GGUF header read by ``slm_course.weights.gguf_file.read_metadata``."""
        model = meta.get("tokenizer.ggml.model")
        if model != "gpt2":
            raise ValueError(f"The GGUF tokenizer is {model!r}; the course rebuilds byte-level BPE ('gpt2') tokenizers only.")
        return cls(meta["tokenizer.ggml.tokens"], meta.get("tokenizer.ggml.merges", []),
                   meta.get("tokenizer.ggml.token_type", []), meta.get("tokenizer.ggml.bos_token_id"),
                   meta.get("tokenizer.ggml.eos_token_id"), meta.get("tokenizer.ggml.add_bos_token", False),
                   meta.get("tokenizer.chat_template"), meta.get("tokenizer.ggml.pre"))

    def to_dict(self) -> dict[str, Any]:
        """Everything needed to rebuild the tokenizer (saved beside the cached model)."""
        merges = [f"{a} {b}" for (a, b), _ in sorted(self.merge_ranks.items(), key=lambda kv: kv[1])]
        types = [CONTROL if i in self.specials.values() else 1 for i in range(len(self.tokens))]
        return {"tokens": self.tokens, "merges": merges, "token_types": types, "bos_id": self.bos_id,
                "eos_id": self.eos_id, "add_bos": self.add_bos, "chat_template": self.chat_template, "pre": self.pre}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "GGUFTokenizer":
        return cls(**data)

    @property
    def vocab_size(self) -> int:
        """Number of ids (49,152 for SmolLM2)."""
        return len(self.tokens)

    def __len__(self) -> int:
        return self.vocab_size

    def __repr__(self) -> str:
        return f"GGUFTokenizer({self.vocab_size} tokens, {len(self.merge_ranks)} merges, bos={self.bos_id}, eos={self.eos_id})"

    # ---------------------------------------------------------------- encoding
    def _encode_chunk(self, chunk: str) -> list[int]:
        cached = self._cache.get(chunk)
        if cached is None:
            symbols = [self._byte_char[b] for b in chunk.encode("utf-8")]  # bytes as printable characters
            cached = [self.ids[p] for p in pair_merge(symbols, self.merge_ranks)]
            if len(self._cache) < 200_000:
                self._cache[chunk] = cached
        return cached

    def chunks(self, text: str) -> list[str]:
        """The pre-tokenizer's chunks of ``text`` (BPE merges never cross them): ``"a  1"`` → ``["a", "  ", "1"]``."""
        if not self._digits_first:
            return self._split.findall(text)
        out: list[str] = []
        for k, piece in enumerate(_DIGIT.split(text)):
            if k % 2:  # a digit, alone
                out.append(piece)
            elif piece:
                out.extend(self._split.findall(piece))
        return out

    def encode_ordinary(self, text: str) -> list[int]:
        """Ids of ``text`` with no special-token matching and no BOS."""
        ids: list[int] = []
        for chunk in self.chunks(text):
            ids.extend(self._encode_chunk(chunk))
        return ids

    def encode(self, text: str, add_bos: bool | None = None) -> list[int]:
        """Token ids of ``text``; control tokens written in it (``<|im_start|>``) become their single id.

        ``add_bos`` (default: the file's setting, False for SmolLM2) puts ``bos_id`` first.
        """
        if not isinstance(text, str):
            raise TypeError(f"encode expects a str, got {type(text).__name__}.")
        text = text.encode("utf-8", "replace").decode("utf-8")  # a lone surrogate has no UTF-8 form: it becomes "?"
        ids: list[int] = []
        pieces = self._special_split.split(text) if self._special_split else [text]
        for k, piece in enumerate(pieces):
            if k % 2:  # odd pieces are the matched specials
                ids.append(self.specials[piece])
            elif piece:
                ids.extend(self.encode_ordinary(piece))
        if (self.add_bos if add_bos is None else add_bos) and self.bos_id is not None:
            ids.insert(0, self.bos_id)
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids`` (special tokens included as their text; invalid UTF-8 becomes U+FFFD)."""
        out = bytearray()
        for i in ids:
            i = int(i)
            if not 0 <= i < len(self.tokens):
                raise ValueError(f"token id {i} is outside the vocabulary (0 to {len(self.tokens) - 1}).")
            token = self.tokens[i]
            out += token.encode("utf-8") if token in self.specials else printable_to_bytes(token)
        return out.decode("utf-8", errors="replace")

    # ---------------------------------------------------------------- chat
    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The prompt text for a conversation, rendered from the file's Jinja chat template.

        ``messages``: ``[{"role": "user", "content": "Hi"}, …]`` (roles system/user/assistant).
        With ``add_generation_prompt`` the text ends where the assistant's answer should begin.
        """
        if self.chat_template is None:
            raise ValueError("This GGUF file has no tokenizer.chat_template; format the prompt yourself.")
        if not isinstance(messages, list) or not all(isinstance(m, dict) and {"role", "content"} <= set(m) for m in messages):
            raise TypeError('messages must be a list of dicts like {"role": "user", "content": "Hi"}.')
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        template = env.from_string(self.chat_template)
        bos = self.tokens[self.bos_id] if self.bos_id is not None else ""
        eos = self.tokens[self.eos_id] if self.eos_id is not None else ""
        return template.render(messages=messages, add_generation_prompt=add_generation_prompt,
                               bos_token=bos, eos_token=eos)
