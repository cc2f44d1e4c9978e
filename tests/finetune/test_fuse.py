"""Chapter 8: knowledge fusion — fused teacher distributions and the distillation loss."""
import pytest
import torch
import torch.nn.functional as F

from slm_course.finetune.fuse import distillation_loss, fused_targets, fusion_loss_fn
from slm_course.model import SLM, SLMConfig

CONFIG = SLMConfig(vocab_size=32, context_length=16, d_model=16, n_layers=1, n_heads=2)


def _models(n, seed=0):
    torch.manual_seed(seed)
    return [SLM(CONFIG) for _ in range(n)]


def _batch():
    g = torch.Generator().manual_seed(0)
    inputs = torch.randint(0, 32, (3, 8), generator=g)
    labels = torch.randint(0, 32, (3, 8), generator=g)
    labels[:, :3] = -100
    return inputs, labels


def test_average_is_the_mean_of_teacher_probabilities():
    t1, t2 = _models(2)
    x, y = _batch()
    expected = (F.softmax(t1(x), -1) + F.softmax(t2(x), -1)) / 2
    torch.testing.assert_close(fused_targets([t1, t2], x, y, "average"), expected)


def test_min_ce_takes_the_teacher_that_knows_each_sequence_best():
    t1, t2 = _models(2)
    x, y = _batch()
    with torch.no_grad():
        ce = [F.cross_entropy(t(x).transpose(1, 2), y, reduction="none", ignore_index=-100).sum(1) for t in (t1, t2)]
    best = torch.stack(ce).argmin(0)
    fused = fused_targets([t1, t2], x, y, "min_ce")
    for row in range(3):
        teacher = (t1, t2)[int(best[row])]
        torch.testing.assert_close(fused[row], F.softmax(teacher(x), -1)[row].detach())
    # a teacher that puts all its mass on the true labels wins every row
    class Oracle(torch.nn.Module):
        def forward(self, idx):
            return F.one_hot(y.clamp(min=0), 32).float() * 20
    fused = fused_targets([t1, Oracle()], x, y, "min_ce")
    assert torch.equal(fused.argmax(-1)[y != -100], y[y != -100])


def test_distillation_loss_by_hand_and_its_limits():
    torch.manual_seed(0)
    logits, targets = torch.randn(2, 4, 5), F.softmax(torch.randn(2, 4, 5), -1)
    labels = torch.tensor([[-100, 1, 2, -100], [0, -100, 4, 3]])
    mask = labels != -100
    hard = F.cross_entropy(logits[mask], labels[mask])
    soft = -(targets[mask] * F.log_softmax(logits[mask], -1)).sum(-1).mean()
    torch.testing.assert_close(distillation_loss(logits, targets, labels, alpha=0.3), 0.7 * hard + 0.3 * soft)
    torch.testing.assert_close(distillation_loss(logits, targets, labels, alpha=0.0), hard)
    with pytest.raises(ValueError, match="alpha"):
        distillation_loss(logits, targets, labels, alpha=2)
    with pytest.raises(ValueError, match="no labelled"):
        distillation_loss(logits, targets, torch.full_like(labels, -100))


def test_student_moves_towards_the_fused_teachers_and_teachers_stay_frozen():
    t1, t2, student = _models(3)
    x, y = _batch()
    before = [p.clone() for p in t1.parameters()]
    loss_fn = fusion_loss_fn([t1, t2], "average", alpha=1.0)
    targets = fused_targets([t1, t2], x, y)
    mask = y != -100

    @torch.no_grad()
    def kl():
        return float(F.kl_div(F.log_softmax(student(x), -1)[mask], targets[mask], reduction="batchmean"))

    start = kl()
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)
    for _ in range(30):
        opt.zero_grad()
        loss_fn(student, (x, y)).backward()
        opt.step()
    assert kl() < 0.3 * start
    assert all(torch.equal(a, b) for a, b in zip(before, t1.parameters()))
    assert not any(p.requires_grad for p in t1.parameters())


def test_teachers_with_other_vocabularies_are_refused():
    small = SLM(SLMConfig(vocab_size=16, context_length=16, d_model=16, n_layers=1, n_heads=2))
    x, y = _batch()
    with pytest.raises(ValueError, match="shared"):
        fused_targets([_models(1)[0], small], x % 16, y.clamp(max=15))
