"""Chapter 8's new figures draw the package's own numbers: the SFT collate's labels, TIES's stages, fusion's targets."""
from __future__ import annotations

import io

import matplotlib
import pytest
import torch
import torch.nn.functional as F

matplotlib.use("Agg")

from slm_course.diagrams import ch08  # noqa: E402
from slm_course.diagrams.drawing import count_gids, texts  # noqa: E402
from slm_course.finetune import fuse, instruct, merge  # noqa: E402
from slm_course.model import SLM, SLMConfig  # noqa: E402

# Two rows of the real collate: the first is cut from its prompt's start (max_length 12), the second is padded.
PAIRS = [(list(range(100, 120)), [7, 8, 9]), ([31, 32, 33], [41, 42])]


def _teachers(k=3, vocab=6):
    torch.manual_seed(0)
    config = SLMConfig(vocab_size=vocab, context_length=8, d_model=16, n_layers=1, n_heads=2)
    teachers = [SLM(config) for _ in range(k)]
    with torch.no_grad():
        for t in teachers:
            t.lm_head.weight.mul_(40)  # confident teachers, so the bars differ
    return teachers, torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1]]), torch.tensor([[-100, -100, 4, 5], [-100, 2, 1, 0]])


FIGURES = {
    "sft_label_mask": lambda: ch08.sft_label_mask(PAIRS, 0, 12, show=False),
    "ties_merge": lambda: ch08.ties_merge(show=False),
    "teacher_fusion": lambda: ch08.teacher_fusion(*_teachers(), show=False),
}


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def cell_texts(figure, gid):
    """The labels centred in the patches carrying ``gid``, in drawing order (left to right)."""
    ax = figure.axes[0]
    found = []
    for patch in ax.patches:
        if patch.get_gid() != gid:
            continue
        cx, cy = patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2
        found += [t.get_text() for t in ax.texts if t.get_position() == pytest.approx((cx, cy))]
    return found


@pytest.mark.parametrize("name", list(FIGURES))
def test_each_figure_is_titled_and_deterministic(name):
    figure = FIGURES[name]()
    assert len(figure.get_suptitle()) > 20
    assert png(figure) == png(FIGURES[name]())


def test_the_mask_figure_draws_the_collates_inputs_labels_and_counts():
    inputs, labels = instruct.collate(PAIRS, pad_id=0, max_length=12)
    figure = ch08.sft_label_mask(PAIRS, 0, 12, show=False, head=20, tail=20)  # short enough to show whole
    for r in range(2):
        assert cell_texts(figure, f"input-{r}") == [str(i) for i in inputs[r].tolist()]
        assert cell_texts(figure, f"label-{r}") == ["−100" if y == -100 else str(y) for y in labels[r].tolist()]
    data = ch08.sft_mask_data(PAIRS, 0, 12)
    assert data["counts"][0] == {"prompt": 9, "answer": 3, "pad": 0}  # 10 prompt tokens kept, the first unlabelled
    assert data["counts"][1] == {"prompt": 2, "answer": 2, "pad": 8}
    for r in range(2):
        learned = [t for t, role in enumerate(data["roles"][r]) if role == "answer"]
        assert learned == (labels[r] != -100).nonzero().flatten().tolist()
        assert [data["inputs"][r][t + 1] for t in learned[:-1]] == [data["labels"][r][t] for t in learned[:-1]]
        assert data["input_roles"][r][learned[0]] == "prompt" and data["input_roles"][r][learned[-1]] == "answer"
    drawn = "\n".join(texts(figure))
    assert "9 prompt (−100)" in drawn and "8 pad (−100)" in drawn


def test_the_mask_figure_elides_the_middle_of_a_long_batch():
    pairs = [(list(range(100, 160)), [7, 8]), ([5, 6], [9])]
    figure = ch08.sft_label_mask(pairs, 0, 128, show=False, head=3, tail=10)
    inputs, _ = instruct.collate(pairs, pad_id=0, max_length=128)
    assert cell_texts(figure, "input-0") == [str(i) for i in inputs[0, :3].tolist() + inputs[0, -10:].tolist()]
    assert "…" in texts(figure)


def test_the_ties_figure_draws_the_stages_merge_computes():
    base = torch.tensor([0.5, -0.2, 1.0, 0.3, -0.6, 0.8])
    a = base + torch.tensor([0.9, -0.4, 0.05, 0.6, -0.1, -0.7])
    b = base + torch.tensor([0.7, 0.3, -0.5, -0.8, 0.02, 0.2])
    figure = ch08.ties_merge(base, a, b, 0.5, show=False)
    merged = merge.ties({"w": base}, [{"w": a}, {"w": b}], density=0.5)["w"]
    assert cell_texts(figure, "merged") == [f"{v:.2f}" for v in merged.tolist()]
    for i, model in enumerate((a, b)):
        trimmed = merge.trim(model - base, 0.5).tolist()
        assert cell_texts(figure, f"trim-{i}") == [f"{v:+.2f}" if v else "0" for v in trimmed]
    data = ch08.ties_data(base, a, b, 0.5)
    dropped = sum(1 for i in range(2) for v, ok in zip(data["trimmed"][i], data["agree"][i]) if v and not ok)
    assert dropped == count_gids(figure, "dropped") == 1  # A's +0.60 loses to B's −0.80
    assert cell_texts(figure, "elect") == ["+", "+", "−", "−", "+", "−"]
    with pytest.raises(ValueError, match="1-D"):
        ch08.ties_data(base.reshape(2, 3), a.reshape(2, 3), b.reshape(2, 3))


def test_the_fusion_figure_draws_fused_targets_and_the_teacher_min_ce_picks():
    teachers, x, y = _teachers()
    data = ch08.fusion_data(teachers, x, y)
    torch.testing.assert_close(torch.tensor(data["average"]), fuse.fused_targets(teachers, x, y, "average")[0, -1])
    torch.testing.assert_close(torch.tensor(data["min_ce"]), fuse.fused_targets(teachers, x, y, "min_ce")[0, -1])
    with torch.no_grad():  # the mean cross-entropy over row 0's labelled tokens, by hand
        by_hand = [float(F.cross_entropy(t(x)[0, 2:], y[0, 2:])) for t in teachers]
    assert data["ce"] == pytest.approx(by_hand, abs=1e-5)
    assert data["chosen"] == min(range(3), key=by_hand.__getitem__)
    torch.testing.assert_close(torch.tensor(data["min_ce"]), torch.tensor(data["probs"][data["chosen"]]))
    figure = ch08.teacher_fusion(teachers, x, y, show=False)
    assert count_gids(figure, "teacher-") == 3 and count_gids(figure, "probs-") == 3 * 6
    assert count_gids(figure, "bars-average") == count_gids(figure, "bars-min_ce") == 6
    drawn = "\n".join(texts(figure))
    assert all(f"CE on the answer {ce:.2f}" in drawn for ce in data["ce"])
    assert f"p(true) {data['average'][5]:.2f}" in drawn and "(lowest)" in drawn
