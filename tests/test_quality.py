"""The phi-1-style quality filter: teacher rule, hashed features, student classifier (chapter 1)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from slm_course.quality import (
    feature_tokens,
    hashed_features,
    is_boilerplate,
    run_quality_filter,
    split_chunks,
    split_speaker,
    stable_hash,
    teacher_label,
    teacher_score,
    train_quality_classifier,
)

SPEECH = "HAMLET.\nTo be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer."
SHORT = "AJAX.\nYou dog!"
STAGE = "[Enter Horatio and Marcellus.]"
HEADER = "ACT I."
CAST = "Claudius, King of Denmark.\nHamlet, Son to the former King.\nPolonius, Lord Chamberlain."


def test_split_chunks_at_blank_lines():
    assert split_chunks("a\nb\n\n\nc\n \nd  ") == ["a\nb", "c", "d"]
    assert split_chunks("ab\n\nc", min_chars=2) == ["ab"]


def test_split_speaker():
    assert split_speaker(SPEECH)[0] == "HAMLET"
    assert split_speaker(SPEECH)[1].startswith("To be")
    assert split_speaker("SIR TOBY.\nLike aqua-vitae.") == ("SIR TOBY", "Like aqua-vitae.")
    assert split_speaker("HAMLET.") == (None, "HAMLET.")  # nothing follows the tag
    assert split_speaker("Then he said this to me.\nAnd more.")[0] is None  # too many words for a tag
    assert split_speaker(CAST)[0] is None


@pytest.mark.parametrize("text", [STAGE, HEADER, CAST, "THE TRAGEDY OF HAMLET", "by William Shakespeare", ""])
def test_boilerplate(text: str):
    assert is_boilerplate(text)
    assert teacher_score(text) == 0.0 and teacher_label(text) == 0


def test_teacher_score_by_hand():
    body_words = len(split_speaker(SPEECH)[1].split())  # 17
    assert teacher_score(SPEECH) == pytest.approx(0.5 * body_words / 30 + 0.3 + 0.2)
    assert teacher_score(SHORT) == pytest.approx(0.5 * 2 / 30 + 0.3 + 0.2)
    # Without a closing mark and without a speaker: only the length term; capped at 30 words.
    assert teacher_score(" ".join(["word"] * 50)) == pytest.approx(0.5)
    assert teacher_score('She said "go."') == pytest.approx(0.5 * 3 / 30 + 0.3)
    assert teacher_label(SPEECH) == 1 and teacher_label(SHORT) == 0
    assert teacher_label(SHORT, threshold=0.5) == 1


def test_feature_tokens_and_hashing_are_stable():
    assert feature_tokens("Go, now!") == ["go", ",", "now", "!", "<last>!", "<len>0"]
    x = hashed_features(["the the cat", "cat"], n_features=64)
    assert x.shape == (2, 64) and x.dtype == torch.float32
    the, cat = stable_hash("the") % 64, stable_hash("cat") % 64
    if the != cat:
        assert x[0, the] == pytest.approx(torch.log1p(torch.tensor(2.0)).item())
        assert x[1, the] == 0
    assert x[1, cat] > 0
    assert torch.equal(x, hashed_features(["the the cat", "cat"], n_features=64))
    with pytest.raises(TypeError):
        hashed_features("one string")
    with pytest.raises(ValueError):
        hashed_features(["a"], n_features=0)


def test_classifier_learns_a_separable_rule():
    torch.manual_seed(0)
    x = torch.randn(200, 8)
    y = (x[:, 0] > 0).long()
    model, history = train_quality_classifier(x, y, steps=150, lr=0.1, seed=0)
    assert len(history) == 150 and history[-1] < history[0] / 2
    accuracy = ((model.predict_proba(x) >= 0.5).long() == y).float().mean().item()
    assert accuracy > 0.95
    again, _ = train_quality_classifier(x, y, steps=150, lr=0.1, seed=0)
    assert torch.equal(again.linear.weight, model.linear.weight)
    with pytest.raises(ValueError, match="labels"):
        train_quality_classifier(x, y[:10])


def test_stable_hash_does_not_depend_on_the_hash_seed():
    code = "from slm_course.quality import stable_hash; print(stable_hash('thee'))"
    outputs = {
        subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONHASHSEED": seed},
                       capture_output=True, text=True, check=True).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {str(stable_hash("thee"))}


def _toy_corpus(n: int = 400) -> list[str]:
    kinds = [
        lambda i: f"SPEAKER {'ABCDEFG'[i % 7]}.\nI tell thee, friend, the night is long and the road is hard, {i}.",
        lambda i: f"[Exit servant {i}.]",
        lambda i: f"ACT {i}.",
        lambda i: f"LORD {'ABCDE'[i % 5]}.\nO!",
    ]
    return [kinds[i % 4](i) for i in range(n)]


def test_run_quality_filter_on_a_toy_corpus():
    chunks = _toy_corpus()
    result = run_quality_filter(chunks, label_fraction=0.25, steps=150, seed=0)
    assert len(result.labelled) + len(result.held_out) == 100 and len(result.held_out) == 20
    assert sorted(result.labelled + result.held_out + result.rest) == list(range(400))
    assert result.held_out_agreement > 0.9 and result.rest_agreement > 0.9
    kept = [chunks[i] for i, k in zip(result.rest, result.rest_keep.tolist()) if k]
    assert kept and all(c.startswith("SPEAKER") for c in kept)
    assert 0.2 < result.kept_fraction < 0.3
    again = run_quality_filter(chunks, label_fraction=0.25, steps=150, seed=0)
    assert torch.equal(again.rest_keep, result.rest_keep)
    with pytest.raises(ValueError, match="too few"):
        run_quality_filter(chunks[:10], label_fraction=0.1)
