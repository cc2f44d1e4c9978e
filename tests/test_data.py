"""Corpus splits, sliding windows, DataLoaders and the ``datasets`` helper (chapter 1)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from slm_course.data import (
    SlidingWindowDataset,
    create_dataloader,
    load_text_dataset,
    read_work,
    shakespeare_files,
    shakespeare_split_files,
    shakespeare_splits,
    strip_gutenberg,
    validation_indices,
)


@pytest.fixture()
def fake_works(tmp_path: Path) -> Path:
    """Twenty small "works" with distinct lines, plus files the loader must ignore."""
    for i in range(20):
        (tmp_path / f"work_{i:02d}_gut.txt").write_text(f"TITLE {i}\n\nLine of work {i}.\n\nMore of work {i}.\n")
    (tmp_path / "work_00_gut_f.txt").write_text("Folio copy: must not be read.\n")
    (tmp_path / "metadata.txt").write_text("[work_00_gut]\nurl = x\n")
    return tmp_path


# --------------------------------------------------------------------------- corpus and split

def test_strip_gutenberg_drops_header_footer_and_normalises_line_ends():
    text = "Title page\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\nBody line.\r\n" \
           "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\nLicence text\r\n"
    assert strip_gutenberg(text) == "Body line."
    assert strip_gutenberg("  no markers here\n\n") == "no markers here"


def test_files_are_sorted_works_without_folio_copies(fake_works: Path):
    files = shakespeare_files(fake_works)
    assert [f.name for f in files] == [f"work_{i:02d}_gut.txt" for i in range(20)]


def test_missing_folder_gives_a_clear_error(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="fetch"):
        shakespeare_files(tmp_path)


def test_validation_indices_rule():
    assert validation_indices(42, 0.1) == [5, 15, 25, 35]
    assert validation_indices(10, 0.5) == [1, 3, 5, 7, 9]
    assert validation_indices(20, 0.25) == [2, 6, 10, 14, 18]
    for bad in (0.0, -0.1, 0.6, 1.0):
        with pytest.raises(ValueError, match="val_fraction"):
            validation_indices(42, bad)
    with pytest.raises(ValueError, match="no validation"):
        validation_indices(3, 0.1)


def test_split_is_by_whole_work_and_deterministic(fake_works: Path):
    train, val = shakespeare_splits(0.1, folder=fake_works)
    assert (train, val) == shakespeare_splits(0.1, folder=fake_works)
    val_works = {i for i in range(20) if f"work {i}." in val}
    train_works = {i for i in range(20) if f"work {i}." in train}
    assert val_works == {5, 15}
    assert train_works == set(range(20)) - val_works
    # Every line of a work lands on the same side as its title.
    for i in val_works:
        assert f"TITLE {i}\n" in val and f"More of work {i}." in val
    assert "Folio" not in train + val and "url =" not in train + val


@pytest.mark.asset
def test_real_corpus_split():
    files = shakespeare_files()
    assert len(files) == 42 and not any(f.name.endswith("_gut_f.txt") for f in files)
    train_files, val_files = shakespeare_split_files()
    assert len(val_files) == 4 and len(train_files) == 38
    train, val = shakespeare_splits()
    assert 0.05 < len(val) / (len(train) + len(val)) < 0.15
    for path in val_files:
        work = read_work(path)
        assert work in val
        # A long line from the middle of each validation work never appears in training text.
        lines = [line for line in work.splitlines() if len(line) > 50]
        assert lines[len(lines) // 2] not in train
    assert "Project Gutenberg" not in train and "\r" not in train


# --------------------------------------------------------------------------- sliding windows

@pytest.mark.parametrize("n,context,stride", [(10, 4, 1), (10, 4, 2), (10, 4, 4), (9, 4, 4), (5, 4, 3), (50, 7, 3)])
def test_windows_match_a_brute_force_enumeration(n: int, context: int, stride: int):
    ids = list(range(100, 100 + n))
    expected = [(ids[s : s + context], ids[s + 1 : s + context + 1]) for s in range(0, n, stride) if s + context < n]
    dataset = SlidingWindowDataset(ids, context, stride)
    assert len(dataset) == len(expected)
    for (x, y), (ex, ey) in zip(dataset, expected):
        assert x.dtype == torch.long and x.shape == (context,)
        assert x.tolist() == ex and y.tolist() == ey
    assert dataset[-1][0].tolist() == expected[-1][0]
    with pytest.raises(IndexError):
        dataset[len(dataset)]


def test_window_errors_say_what_to_do():
    with pytest.raises(ValueError, match="stride"):
        SlidingWindowDataset([1, 2, 3, 4], 2, 0)
    with pytest.raises(ValueError, match="context_length"):
        SlidingWindowDataset([1, 2, 3, 4], 0, 1)
    with pytest.raises(ValueError, match="at least 5 tokens"):
        SlidingWindowDataset([1, 2, 3, 4], 4, 1)
    with pytest.raises(TypeError, match="encode"):
        SlidingWindowDataset("some text", 2, 1)
    with pytest.raises(TypeError):
        SlidingWindowDataset(torch.rand(10), 2, 1)
    assert SlidingWindowDataset(torch.arange(6, dtype=torch.int32), 2, 2)[0][0].dtype == torch.long


def test_dataloader_shapes_and_seeded_order():
    ids = list(range(200))
    loader = create_dataloader(ids, context_length=8, stride=8, batch_size=4, seed=3)
    batches = list(loader)
    assert len(batches) == len(SlidingWindowDataset(ids, 8, 8)) // 4
    for x, y in batches:
        assert x.shape == (4, 8) and y.shape == (4, 8) and x.dtype == torch.long
        assert torch.equal(y[:, :-1], x[:, 1:])
    again = list(create_dataloader(ids, context_length=8, stride=8, batch_size=4, seed=3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))
    other = list(create_dataloader(ids, context_length=8, stride=8, batch_size=4, seed=4))
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(batches, other))
    # A second pass over the same loader gives a new order (the generator moves on).
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(batches, list(loader)))


def test_dataloader_without_shuffle_keeps_order_and_last_batch():
    ids = list(range(41))  # 5 windows of 8 with stride 8
    loader = create_dataloader(ids, context_length=8, stride=8, batch_size=2, shuffle=False, drop_last=False)
    firsts = [x[:, 0].tolist() for x, _ in loader]
    assert firsts == [[0, 8], [16, 24], [32]]
    with pytest.raises(ValueError, match="drop_last"):
        create_dataloader(ids, context_length=8, stride=8, batch_size=6)
    with pytest.raises(ValueError, match="batch_size"):
        create_dataloader(ids, context_length=8, stride=8, batch_size=0)


# --------------------------------------------------------------------------- Hugging Face datasets

def test_load_text_dataset_from_local_files(fake_works: Path):
    files = shakespeare_files(fake_works)
    splits = load_text_dataset(files, encode=lambda s: list(s.encode("utf-8")), test_size=0.25, seed=0)
    assert set(splits) == {"train", "test"}
    n_rows = splits["train"].num_rows + splits["test"].num_rows
    assert n_rows == 3 * 20  # three paragraphs per work
    assert splits["test"].num_rows == 15
    row = splits["train"][0]
    assert set(row) == {"text", "work", "input_ids", "n_tokens"}
    assert row["input_ids"] == list(row["text"].encode("utf-8")) and row["n_tokens"] == len(row["input_ids"])
    assert row["work"].startswith("work_") and not row["work"].endswith("_gut")
    again = load_text_dataset(files, test_size=0.25, seed=0)
    assert again["test"]["text"] == splits["test"]["text"]
    assert load_text_dataset(files, test_size=0.25, seed=1)["test"]["text"] != splits["test"]["text"]


def test_load_text_dataset_needs_files():
    with pytest.raises(ValueError, match="at least one"):
        load_text_dataset([])
