"""The course's own diagrams: each returns a titled Figure, draws what its title says, and is deterministic."""
from __future__ import annotations

import io

import matplotlib
import pytest

matplotlib.use("Agg")

from slm_course.data import SlidingWindowDataset  # noqa: E402
from slm_course.diagrams import ch01, ch02, ch03, ch10, roadmap  # noqa: E402
from slm_course.diagrams.drawing import count_gids, gids, texts  # noqa: E402
from slm_course.model import SLMConfig, repeat_kv, rope_frequencies  # noqa: E402

ALL = {
    "roadmap": lambda: roadmap(3, show=False),
    "sliding_windows": lambda: ch01.sliding_windows(list(range(100, 112)), 4, 3, show=False),
    "bpe_merge": lambda: ch01.bpe_merge(show=False),
    "attention_flow": lambda: ch02.attention_flow(show=False),
    "multi_head": lambda: ch02.multi_head(show=False),
    "prenorm_block": lambda: ch03.prenorm_block(show=False),
    "rope_rotations": lambda: ch03.rope_rotations(show=False),
    "grouped_query_attention": lambda: ch03.grouped_query_attention(show=False),
    "int4_group_packing": lambda: ch10.int4_group_packing(show=False),
    "weight_only_linear": lambda: ch10.weight_only_linear(show=False),
}


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


@pytest.mark.parametrize("name", list(ALL))
def test_returns_a_titled_figure_and_is_deterministic(name):
    from matplotlib.figure import Figure

    figure = ALL[name]()
    assert isinstance(figure, Figure)
    title = figure.get_suptitle() or figure.axes[0].get_title()
    assert len(title) > 10
    assert png(figure) == png(ALL[name]())  # drawn twice, the same pixels


@pytest.mark.parametrize("ids_count, context, stride", [(12, 4, 3), (12, 4, 4), (10, 3, 1), (7, 6, 2)])
def test_sliding_windows_draws_the_datasets_windows(ids_count, context, stride):
    ids = list(range(500, 500 + ids_count))
    figure = ch01.sliding_windows(ids, context, stride, show=False)
    dataset = SlidingWindowDataset(ids, context, stride)
    windows = len({g.split("-")[1] for g in gids(figure) if g.startswith("input-")})
    assert windows == len(dataset)
    assert f"{len(dataset)} (input, target) pairs" in figure.get_suptitle()
    for k, (x, y) in enumerate(dataset):
        drawn_inputs = [int(t) for t in texts_with_gid(figure, f"input-{k}")]
        drawn_targets = [int(t) for t in texts_with_gid(figure, f"target-{k}")]
        assert drawn_inputs == x.tolist() and drawn_targets == y.tolist()


def texts_with_gid(figure, gid):
    """The labels centred in the patches carrying ``gid``, left to right."""
    ax = figure.axes[0]
    found = []
    for patch in ax.patches:
        if patch.get_gid() != gid:
            continue
        cx, cy = patch.get_x() + patch.get_width() / 2, patch.get_y() + patch.get_height() / 2
        found += [t.get_text() for t in ax.texts if t.get_position() == (cx, cy)]
    return found


def test_sliding_windows_refuses_too_few_ids():
    with pytest.raises(ValueError, match="too few"):
        ch01.sliding_windows([1, 2, 3], 3, 1, show=False)


def test_bpe_merge_picks_the_most_frequent_pair_and_merges_every_occurrence():
    figure = ch01.bpe_merge("low lower lowest", show=False)
    assert "('l', 'o')" in figure.get_suptitle()  # 3 times; ties ('o', 'w') broken by the smaller ids
    assert count_gids(figure, "pair") == 2 * 3  # both halves of each of the three occurrences
    assert count_gids(figure, "merged") == 3
    figure = ch01.bpe_merge("aaab aab", show=False)
    assert "('a', 'a')" in figure.get_suptitle()
    assert count_gids(figure, "merged") == 2  # "aaab" merges once (non-overlapping), "aab" once
    with pytest.raises(ValueError, match="no two adjacent bytes"):
        ch01.bpe_merge("a", show=False)


def test_attention_flow_draws_every_stage_with_the_causal_mask():
    n = 4
    figure = ch02.attention_flow(n, show=False)
    assert count_gids(figure, "stage-inputs") == n * 3
    assert count_gids(figure, "stage-qkv") == 3 * n * 2
    for stage in ("scores", "masked", "weights"):
        assert count_gids(figure, f"stage-{stage}") == n * n
    assert count_gids(figure, "stage-context") == n * 2
    assert texts(figure).count("−∞") == n * (n - 1) // 2  # only the masked stage shows −∞
    assert texts(figure).count("1.00") >= 1  # the first row's single weight


@pytest.mark.parametrize("heads", [1, 2, 3, 4])
def test_multi_head_draws_one_coloured_slice_per_head(heads):
    figure = ch02.multi_head(n_heads=heads, head_dim=2, n_tokens=4, show=False)
    for h in range(heads):
        assert count_gids(figure, f"slice-{h}") == 4 * 2
        assert count_gids(figure, f"weights-{h}") == 4 * 4
        fills = {p.get_facecolor() for p in figure.axes[0].patches if p.get_gid() == f"weights-{h}" and
                 p.get_facecolor()[:3] != (0.8392156862745098,) * 3}
        assert fills  # tinted in its own colour
    assert count_gids(figure, f"slice-{heads}") == 0
    assert f"{heads} heads" in figure.get_suptitle()


def test_prenorm_block_has_two_norms_two_sublayers_and_two_additions():
    figure = ch03.prenorm_block("RMSNorm", "SwiGLU", show=False)
    assert count_gids(figure, "norm") == 2 and count_gids(figure, "add") == 2
    assert count_gids(figure, "attention") == 1 and count_gids(figure, "mlp") == 1
    assert texts(figure).count("RMSNorm") == 2 and "SwiGLU" in texts(figure)


def test_rope_rotations_turn_each_pair_by_position_times_its_speed():
    import math

    head_dim, positions = 8, (0, 1, 2, 3)
    figure = ch03.rope_rotations(head_dim, positions, show=False)
    assert len(figure.axes) == head_dim // 2
    cos, sin = rope_frequencies(head_dim, max(positions) + 1)
    for i, ax in enumerate(figure.axes):
        for p in positions:
            [vector] = [a for a in ax.texts if a.get_gid() == f"pair-{i}-position-{p}"]
            x, y = vector.xy
            assert math.isclose(x, float(cos[p, i]), abs_tol=1e-6) and math.isclose(y, float(sin[p, i]), abs_tol=1e-6)
    with pytest.raises(ValueError, match="even"):
        ch03.rope_rotations(7, show=False)


@pytest.mark.parametrize("heads, kv", [(9, 3), (8, 2), (4, 4), (6, 1)])
def test_gqa_links_each_query_head_to_its_kv_head(heads, kv):
    figure = ch03.grouped_query_attention(heads, kv, show=False)
    assert count_gids(figure, "kv-0") == heads and count_gids(figure, "kv-1") == kv and count_gids(figure, "kv-2") == 1
    assert all(count_gids(figure, f"link-{p}") == heads for p in range(3))
    assert all(count_gids(figure, f"query-{p}") == heads for p in range(3))
    owner = repeat_kv(__import__("torch").arange(kv, dtype=__import__("torch").float32).view(1, kv, 1, 1), heads)
    assert owner.flatten().tolist() == [h // (heads // kv) for h in range(heads)]  # groups are contiguous
    with pytest.raises(ValueError, match="multiple"):
        ch03.grouped_query_attention(9, 2, show=False)


def test_smollm2_layout_is_what_the_chapter_draws():
    config = SLMConfig.from_name("smollm2-135m")
    assert (config.n_heads, config.n_kv_heads) == (9, 3)  # ch03.grouped_query_attention's default


def test_show_true_displays_once_and_returns_none(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    assert ch01.bpe_merge() is None
    assert len(shown) == 1


@pytest.mark.parametrize("n_weights, group_size, seed", [(16, 8, 0), (16, 4, 1), (12, 6, 2)])
def test_int4_group_packing_draws_the_quantizers_numbers(n_weights, group_size, seed):
    import torch
    from torch import nn

    from slm_course.quantize import Int4Linear, minmax_quantize, pack_int4

    figure = ch10.int4_group_packing(n_weights, group_size, seed, show=False)
    row = torch.tensor([[float(t) for g in range(n_weights // group_size) for t in texts_with_gid(figure, f"weight-{g}")]])
    assert row.shape == (1, n_weights)
    expected = minmax_quantize(row, 4, "group", group_size, fp16_scales=True)  # what Int4Linear stores
    codes = [int(t) for g in range(n_weights // group_size) for t in texts_with_gid(figure, f"code-{g}")]
    assert codes == expected.q[0].tolist()
    assert [int(t.replace(" ", ""), 2) for t in texts_with_gid(figure, "byte")] == pack_int4(expected.q)[0].tolist()
    for g in range(n_weights // group_size):
        [label] = [t for t in texts(figure) if t.startswith(f"group {g}: ")]
        assert f"max {row[0, g * group_size:(g + 1) * group_size].max().item():.2f}," in label
        assert f"min {expected.minimum.flatten()[g].item():.4f}" in label
        assert f"= {expected.scale.flatten()[g].item():.5f}" in label
    drawn = [float(t) for t in texts_with_gid(figure, "dequantized")]
    assert drawn == [float(f"{v:.2f}") for v in expected.dequantize()[0].tolist()]
    assert f"= {expected.nbytes():g} bytes for {n_weights} weights" in " ".join(texts(figure))
    layer = nn.Linear(n_weights, 1, bias=False)  # Int4Linear stores these same bytes, scales and minima
    with torch.no_grad():
        layer.weight.copy_(row)
    stored = Int4Linear.from_linear(layer, group_size, use_kernel=False)
    assert stored.packed[0].tolist() == pack_int4(expected.q)[0].tolist()
    assert torch.equal(stored.scale.float().flatten(), expected.scale.flatten())
    assert torch.equal(stored.minimum.float().flatten(), expected.minimum.flatten())
    with pytest.raises(ValueError, match="multiple of group_size"):
        ch10.int4_group_packing(16, 5, show=False)


def test_weight_only_linear_bars_are_the_layers_stored_bytes_per_weight():
    import torch
    from torch import nn

    from slm_course.deploy.hardware import BYTES
    from slm_course.quantize import Int4Linear, Int8Linear, weight_bytes

    before = torch.random.get_rng_state()
    figure = ch10.weight_only_linear(64, 96, 32, show=False)
    assert torch.equal(torch.random.get_rng_state(), before)  # drawing leaves the caller's seed alone
    heights = {p.get_gid()[4:]: p.get_height() for ax in figure.axes for p in ax.patches
               if (p.get_gid() or "").startswith("bar-")}
    linear = nn.Linear(64, 96, bias=False)
    assert heights == {
        "fp32": BYTES["fp32"], "bf16": BYTES["bf16"],
        "int8": weight_bytes(Int8Linear.from_linear(linear, use_kernel=False)) / (64 * 96),
        "int4 (g32)": weight_bytes(Int4Linear.from_linear(linear, 32, use_kernel=False)) / (64 * 96),
    }
    assert heights["int8"] == 1 + 4 / 64 and heights["int4 (g32)"] == 0.5 + 4 / 32  # fp32 row scale; fp16 scale + min
    for part in ("stored", "activations", "dequantize", "kernel", "matmul", "output"):
        assert count_gids(figure, part) == 1
    assert "one 96 × 64 layer" in texts(figure)
