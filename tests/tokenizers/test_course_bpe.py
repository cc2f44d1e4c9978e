"""The course's own BPE: trained once, cached under $SLM_COURSE_HOME/models, then loaded."""
from __future__ import annotations

import pytest

from slm_course.tokenizers import BPETokenizer, course as course_module, course_bpe, course_bpe_path

SMALL_TEXT = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 40


@pytest.fixture()
def small_home(tmp_path, monkeypatch):
    """A private cache and a small training text, so the build takes milliseconds."""
    monkeypatch.setenv("SLM_COURSE_HOME", str(tmp_path))
    monkeypatch.setattr(course_module, "course_bpe_training_text", lambda: SMALL_TEXT)
    return tmp_path


def test_built_once_then_loaded(small_home, monkeypatch):
    path = course_bpe_path(300)
    assert path == small_home / "models" / "course-bpe-300" / "tokenizer.json"
    assert path.is_file()

    def must_not_train(*args, **kwargs):
        raise AssertionError("the cached tokenizer should have been loaded, not retrained")

    monkeypatch.setattr(course_module, "train_course_bpe", must_not_train)
    assert course_bpe_path(300) == path
    tok = course_bpe(300)
    assert len(tok) == 300 and tok.special_tokens == {"<|endoftext|>": 299}
    assert tok.decode(tok.encode(SMALL_TEXT)) == SMALL_TEXT


def test_same_as_training_directly(small_home):
    direct = BPETokenizer()
    direct.train(SMALL_TEXT, 300)
    assert course_bpe(300).ranks == direct.ranks


def test_damaged_cache_is_rebuilt(small_home):
    path = course_bpe_path(300)
    path.write_text("{not json", encoding="utf-8")
    assert len(course_bpe(300)) == 300


def test_bad_vocab_size(small_home):
    with pytest.raises(ValueError, match="at least 257"):
        course_bpe(100)


@pytest.mark.asset
@pytest.mark.slow
def test_real_course_bpe():
    """The shared build (made by `slm-course build-shared`; built here if missing, ~10 s)."""
    from slm_course.data import shakespeare_splits

    tok = course_bpe()
    assert len(tok) == 2048 and tok.special_tokens == {"<|endoftext|>": 2047}
    _, val_text = shakespeare_splits()
    sample = val_text[:20_000]
    ids = tok.encode(sample)
    assert tok.decode(ids) == sample
    # Merges learned on other plays still pay on unseen ones: over 2 bytes per token (1 without merges;
    # a 2k-vocabulary BPE gives roughly 2.5-3 on English).
    assert len(sample.encode("utf-8")) / len(ids) > 2.0
