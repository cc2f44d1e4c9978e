"""Attention (chapter 2): masks, scores, the explicit and fused paths, the teaching modules."""
from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from slm_course.attention import (
    CausalAttention,
    MultiHeadAttention,
    SelfAttentionV1,
    SelfAttentionV2,
    attention_scores,
    causal_mask,
    masked_softmax,
    merge_heads,
    scaled_dot_product,
    simple_self_attention,
    split_heads,
)


def loop_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
    """Attention for one (T, d) sequence written with Python loops: an independent reference."""
    q, k, v = q.detach(), k.detach(), v.detach()
    out = torch.zeros_like(q)
    for i in range(q.shape[0]):
        visible = range(i + 1) if causal else range(k.shape[0])
        scores = torch.tensor([float(q[i] @ k[j]) / math.sqrt(q.shape[1]) for j in visible])
        weights = torch.exp(scores - scores.max())
        weights = weights / weights.sum()
        out[i] = sum(w * v[j] for w, j in zip(weights, visible))
    return out


def test_causal_mask_hides_the_future_only():
    mask = causal_mask(4)
    assert mask.dtype == torch.bool and mask.shape == (4, 4)
    for i in range(4):
        for j in range(4):
            assert bool(mask[i, j]) == (j > i)
    assert causal_mask(1).tolist() == [[False]]


def test_masked_softmax_gives_zero_weight_to_hidden_positions():
    scores = torch.randn(3, 5, 5)
    weights = masked_softmax(scores, causal_mask(5))
    assert_close(weights.sum(-1), torch.ones(3, 5))
    assert torch.all(weights[:, causal_mask(5)] == 0)
    assert_close(weights[:, 0, 0], torch.ones(3))  # the first token can only see itself
    assert_close(masked_softmax(scores, None), torch.softmax(scores, -1))
    with pytest.raises(TypeError, match="boolean"):
        masked_softmax(scores, causal_mask(5).int())


def test_attention_scores_are_scaled_by_the_square_root_of_the_head_size():
    q, k = torch.randn(2, 3, 16), torch.randn(2, 4, 16)
    assert_close(attention_scores(q, k), torch.einsum("bid,bjd->bij", q, k) / 4.0)


def test_scaling_keeps_the_spread_of_scores_near_one():
    torch.manual_seed(0)
    for d in (4, 64, 1024):
        q, k = torch.randn(512, d), torch.randn(512, d)
        assert 0.85 < attention_scores(q, k).std().item() < 1.15


def test_simple_self_attention_against_loops():
    x = torch.randn(6, 3)
    weights = torch.softmax(torch.stack([torch.stack([x[i] @ x[j] for j in range(6)]) for i in range(6)]), -1)
    assert_close(simple_self_attention(x), weights @ x)


def test_split_and_merge_heads():
    x = torch.arange(2 * 3 * 8, dtype=torch.float32).view(2, 3, 8)
    heads = split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2)
    assert_close(heads[1, 2, 0], x[1, 0, 4:6])  # head 2 of token 0 holds features 4 and 5
    assert_close(merge_heads(heads), x)
    with pytest.raises(ValueError, match="divisible"):
        split_heads(x, 3)


@pytest.mark.parametrize("causal", [True, False])
def test_explicit_and_fused_paths_agree_with_loops(causal):
    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 3, 5, 4) for _ in range(3))
    fused = scaled_dot_product(q, k, v, causal=causal)
    explicit, weights = scaled_dot_product(q, k, v, causal=causal, return_weights=True)
    assert_close(explicit, fused)
    assert weights.shape == (2, 3, 5, 5)
    assert_close(explicit[1, 2], loop_attention(q[1, 2], k[1, 2], v[1, 2], causal))


def test_queries_shorter_than_keys_are_the_last_positions():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    full = scaled_dot_product(q, k, v, causal=True)
    last_two = scaled_dot_product(q[:, :, -2:], k, v, causal=True)
    last_two_explicit, _ = scaled_dot_product(q[:, :, -2:], k, v, causal=True, return_weights=True)
    assert_close(last_two, full[:, :, -2:])
    assert_close(last_two_explicit, full[:, :, -2:])


def test_two_dimensional_inputs_and_grouped_heads_on_the_fused_path():
    torch.manual_seed(0)
    q, k, v = (torch.randn(5, 4) for _ in range(3))  # one sequence, no batch or head dimension
    assert_close(scaled_dot_product(q, k, v, causal=True), scaled_dot_product(q, k, v, causal=True, return_weights=True)[0])
    # 6 query heads sharing 2 K/V heads: the same as repeating each K/V head in place for its 3 queries
    q, k, v = torch.randn(2, 6, 5, 4), torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    repeated = scaled_dot_product(q, k.repeat_interleave(3, dim=1), v.repeat_interleave(3, dim=1), causal=True)
    assert torch.equal(scaled_dot_product(q, k, v, causal=True), repeated)
    with pytest.raises(ValueError, match="explicit path"):
        scaled_dot_product(q, k, v, causal=True, return_weights=True)
    with pytest.raises(ValueError, match="whole multiple"):
        scaled_dot_product(q, k[:, :1].expand(2, 4, 5, 4), v[:, :1].expand(2, 4, 5, 4), causal=True)


@pytest.mark.parametrize("return_weights", [False, True])
def test_an_allowed_mask_gives_one_chosen_position_per_row(return_weights):
    # Row b's single query sits at position index[b]: it must equal that row of full causal attention.
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 2, 6, 4) for _ in range(3))
    full = scaled_dot_product(q, k, v, causal=True)
    index = torch.tensor([5, 0, 3])
    rows = torch.arange(3)
    allowed = (torch.arange(6) <= index[:, None])[:, None, None]  # (B, 1, 1, T)
    out = scaled_dot_product(q[rows, :, index].unsqueeze(2), k, v, causal=False, allowed=allowed,
                             return_weights=return_weights)
    out = out[0] if return_weights else out
    assert_close(out[:, :, 0], full[rows, :, index])
    with pytest.raises(ValueError, match="causal=False"):
        scaled_dot_product(q, k, v, causal=True, allowed=allowed)
    with pytest.raises(ValueError, match="boolean"):
        scaled_dot_product(q, k, v, causal=False, allowed=allowed.float())


@pytest.mark.parametrize("return_weights", [False, True])
def test_more_causal_queries_than_keys_is_a_clear_error(return_weights):
    q, k = torch.randn(1, 2, 6, 4), torch.randn(1, 2, 4, 4)
    with pytest.raises(ValueError, match="6 queries but only 4 keys"):
        scaled_dot_product(q, k, k, causal=True, return_weights=return_weights)
    out = scaled_dot_product(q, k, k, causal=False, return_weights=return_weights)  # fine without the mask
    assert (out[0] if return_weights else out).shape == (1, 2, 6, 4)


def test_a_fully_masked_row_gives_nan_as_documented():
    scores = torch.randn(3, 4)
    mask = torch.tensor([[False, True, True, True], [True, True, True, True], [False, False, True, True]])
    weights = masked_softmax(scores, mask)
    assert torch.isnan(weights[1]).all()  # nothing left to attend to
    assert not torch.isnan(weights[[0, 2]]).any()
    assert_close(weights[[0, 2]].sum(-1), torch.ones(2))
    assert "NaN" in masked_softmax.__doc__


def test_dropout_on_weights_only_in_training():
    torch.manual_seed(0)
    q, k, v = (torch.randn(1, 1, 8, 4) for _ in range(3))
    _, eval_weights = scaled_dot_product(q, k, v, dropout_p=0.5, training=False, return_weights=True)
    _, train_weights = scaled_dot_product(q, k, v, dropout_p=0.5, training=True, return_weights=True)
    assert_close(eval_weights.sum(-1), torch.ones(1, 1, 8))
    dropped = train_weights == 0
    assert dropped[~causal_mask(8).expand_as(dropped)].any()  # some visible weights were dropped
    kept = ~dropped
    assert_close(train_weights[kept], 2.0 * eval_weights[kept])  # survivors scaled by 1 / (1 - p)


def test_self_attention_v1_and_v2_agree_after_copying_weights():
    torch.manual_seed(0)
    v1, v2 = SelfAttentionV1(3, 2), SelfAttentionV2(3, 2)
    with torch.no_grad():
        v2.query.weight.copy_(v1.W_query.T)
        v2.key.weight.copy_(v1.W_key.T)
        v2.value.weight.copy_(v1.W_value.T)
    x = torch.randn(6, 3)
    assert_close(v1(x), v2(x))
    assert_close(v1(x), loop_attention(x @ v1.W_query, x @ v1.W_key, x @ v1.W_value, causal=False))


def test_causal_attention_ignores_the_future():
    torch.manual_seed(0)
    attention = CausalAttention(4, 6, context_length=8).eval()
    x = torch.randn(2, 5, 4)
    changed = x.clone()
    changed[:, 3:] = torch.randn(2, 2, 4)  # change the last two tokens
    out, weights = attention(x, return_weights=True)
    assert out.shape == (2, 5, 6) and weights.shape == (2, 5, 5)
    assert_close(attention(changed)[:, :3], out[:, :3])
    assert not torch.allclose(attention(changed)[:, 3:], out[:, 3:])
    with pytest.raises(ValueError, match="context_length"):
        attention(torch.randn(1, 9, 4))


def test_multi_head_with_one_head_matches_causal_attention():
    torch.manual_seed(0)
    single = CausalAttention(4, 6, context_length=8).eval()
    multi = MultiHeadAttention(4, 6, context_length=8, num_heads=1).eval()
    with torch.no_grad():
        multi.qkv.weight.copy_(torch.cat([single.query.weight, single.key.weight, single.value.weight]))
        multi.out_proj.weight.copy_(torch.eye(6))  # no bias to zero: bias=False is the default
    x = torch.randn(2, 5, 4)
    assert_close(multi(x), single(x))


@pytest.mark.parametrize("bias", [False, True])
def test_multi_head_bias_flag_covers_every_projection(bias):
    mha = MultiHeadAttention(4, 4, context_length=8, num_heads=2, bias=bias)
    assert (mha.qkv.bias is not None) == bias
    assert (mha.out_proj.bias is not None) == bias
    assert sum(p.numel() for p in mha.parameters()) == 4 * 12 + 4 * 4 + bias * (12 + 4)


def test_multi_head_explicit_and_fused_paths_agree():
    torch.manual_seed(0)
    fused = MultiHeadAttention(8, 12, context_length=16, num_heads=3, fused=True).eval()
    explicit = MultiHeadAttention(8, 12, context_length=16, num_heads=3, fused=False).eval()
    explicit.load_state_dict(fused.state_dict())
    x = torch.randn(2, 7, 8)
    out, weights = fused(x, return_weights=True)
    assert out.shape == (2, 7, 12) and weights.shape == (2, 3, 7, 7)
    assert_close(fused(x), out)
    assert_close(explicit(x), out)
    assert torch.all(weights[..., causal_mask(7)] == 0)


def test_multi_head_heads_are_independent_slices():
    torch.manual_seed(0)
    mha = MultiHeadAttention(4, 4, context_length=8, num_heads=2).eval()
    x = torch.randn(1, 5, 4)
    _, weights = mha(x, return_weights=True)
    q, k, _ = mha.qkv(x).chunk(3, dim=-1)
    for h in range(2):
        part = slice(2 * h, 2 * h + 2)
        assert_close(weights[0, h], masked_softmax(attention_scores(q[0, :, part], k[0, :, part]), causal_mask(5)))


def test_multi_head_rejects_bad_shapes():
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(4, 10, context_length=8, num_heads=3)
    with pytest.raises(ValueError, match="context_length"):
        MultiHeadAttention(4, 4, context_length=4, num_heads=2)(torch.randn(1, 5, 4))
