"""Tests for slm_course.model.layers: norms, RoPE, the feed-forwards and grouped-query attention."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from slm_course.model import (
    Block,
    CausalSelfAttention,
    LayerNorm,
    RMSNorm,
    SLMConfig,
    SwiGLU,
    apply_rope,
    repeat_kv,
    rope_frequencies,
)


def test_layernorm_matches_torch():
    torch.manual_seed(0)
    norm = LayerNorm(16, eps=1e-5)
    with torch.no_grad():
        norm.weight.normal_()
        norm.bias.normal_()
    x = torch.randn(2, 3, 16) * 5 + 2
    expected = F.layer_norm(x, (16,), norm.weight, norm.bias, eps=1e-5)
    torch.testing.assert_close(norm(x), expected)


def test_rmsnorm_matches_torch_and_keeps_dtype():
    torch.manual_seed(0)
    norm = RMSNorm(16, eps=1e-6)
    with torch.no_grad():
        norm.weight.normal_()
    x = torch.randn(2, 3, 16) * 3 + 1
    torch.testing.assert_close(norm(x), F.rms_norm(x, (16,), norm.weight, eps=1e-6))
    assert norm(x.bfloat16()).dtype == torch.float32  # bf16 input times an fp32 weight
    half = RMSNorm(16).bfloat16()
    assert half(x.bfloat16()).dtype == torch.bfloat16


def test_rmsnorm_does_not_centre_but_layernorm_does():
    x = torch.full((1, 8), 3.0)
    assert torch.allclose(LayerNorm(8)(x), torch.zeros(1, 8))
    torch.testing.assert_close(RMSNorm(8)(x), torch.ones(1, 8), atol=1e-5, rtol=0)


def test_rope_is_a_rotation_of_complex_pairs():
    # Independent formulation: pair (x_i, x_{i+hd/2}) as the complex number x_i + j·x_{i+hd/2},
    # multiplied by exp(j · position · theta^(-2i/hd)).
    torch.manual_seed(0)
    head_dim, T, theta = 8, 5, 100.0
    x = torch.randn(1, 2, T, head_dim)
    cos, sin = rope_frequencies(head_dim, T, theta)
    rotated = apply_rope(x, cos, sin)
    half = head_dim // 2
    z = torch.complex(x[..., :half].double(), x[..., half:].double())
    freqs = theta ** (-2 * torch.arange(half, dtype=torch.float64) / head_dim)
    angles = torch.arange(T, dtype=torch.float64)[:, None] * freqs[None, :]
    expected = z * torch.polar(torch.ones_like(angles), angles)
    torch.testing.assert_close(rotated[..., :half].double(), expected.real, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(rotated[..., half:].double(), expected.imag, atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_relative_position():
    torch.manual_seed(0)
    q, k = torch.randn(16), torch.randn(16)
    cos, sin = rope_frequencies(16, 32)

    def score(m: int, n: int) -> float:
        qm = apply_rope(q.view(1, 1, 1, 16), cos[m:m + 1], sin[m:m + 1])
        kn = apply_rope(k.view(1, 1, 1, 16), cos[n:n + 1], sin[n:n + 1])
        return float((qm * kn).sum())

    assert math.isclose(score(5, 2), score(20, 17), rel_tol=1e-4, abs_tol=1e-5)
    assert not math.isclose(score(5, 2), score(5, 4), rel_tol=1e-3)
    cos0, sin0 = rope_frequencies(16, 1)
    torch.testing.assert_close(apply_rope(q.view(1, 1, 1, 16), cos0, sin0).flatten(), q)  # position 0: no turn


def test_rope_rejects_odd_head_dim():
    with pytest.raises(ValueError, match="even"):
        rope_frequencies(7, 4)


def test_swiglu_is_gated():
    config = SLMConfig(d_model=8, n_heads=2, mlp="swiglu", d_ff=12)
    mlp = SwiGLU(config)
    with torch.no_grad():
        mlp.gate.weight.zero_()  # silu(0) = 0: a closed gate lets nothing through
    assert torch.count_nonzero(mlp(torch.randn(2, 3, 8))) == 0
    assert sum(p.numel() for p in mlp.parameters()) == 3 * 8 * 12


def test_grouped_query_attention_equals_multi_head_with_repeated_kv():
    # A GQA layer behaves like a full multi-head layer whose K/V heads are copies within each group.
    torch.manual_seed(0)
    gqa_config = SLMConfig(d_model=24, n_heads=6, n_kv_heads=2, positions="rope")
    mha_config = gqa_config.replace(n_kv_heads=6)
    gqa, mha = CausalSelfAttention(gqa_config).eval(), CausalSelfAttention(mha_config).eval()
    hd = gqa_config.head_dim
    with torch.no_grad():
        mha.q_proj.weight.copy_(gqa.q_proj.weight)
        mha.out_proj.weight.copy_(gqa.out_proj.weight)
        for name in ("k_proj", "v_proj"):
            small = getattr(gqa, name).weight.view(2, hd, 24)  # (kv heads, hd, d)
            getattr(mha, name).weight.copy_(small.repeat_interleave(3, dim=0).reshape(6 * hd, 24))
    cos, sin = rope_frequencies(hd, 7)
    x = torch.randn(2, 7, 24)
    torch.testing.assert_close(gqa(x, (cos, sin)), mha(x, (cos, sin)))
    assert sum(p.numel() for p in gqa.parameters()) < sum(p.numel() for p in mha.parameters())


def test_rope_rotates_queries_and_keys_the_same_with_and_without_gradients():
    # Without gradients the layer turns q and k in one call (decoding); with them, in two: bit for bit equal.
    torch.manual_seed(0)
    config = SLMConfig(d_model=24, n_heads=6, n_kv_heads=2, positions="rope")
    attn = CausalSelfAttention(config).eval()
    cos, sin = rope_frequencies(config.head_dim, 11)
    x = torch.randn(2, 9, 24) * 3
    with torch.no_grad():
        fast = attn(x, (cos[2:], sin[2:]))
    assert torch.equal(fast, attn(x, (cos[2:], sin[2:])).detach())
    assert not torch.equal(fast, attn(x, (cos[:9], sin[:9])).detach())  # the positions do matter


def test_attention_weights_are_causal_distributions():
    torch.manual_seed(0)
    attn = CausalSelfAttention(SLMConfig(d_model=16, n_heads=2)).eval()
    out, weights = attn(torch.randn(3, 5, 16), return_attention=True)
    assert out.shape == (3, 5, 16) and weights.shape == (3, 2, 5, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 2, 5))
    assert torch.all(weights.triu(diagonal=1) == 0)


def test_repeat_kv_repeats_heads_in_place():
    kv = torch.arange(2).view(1, 2, 1, 1).float()  # two K/V heads holding 0 and 1
    assert repeat_kv(kv, 6).flatten().tolist() == [0, 0, 0, 1, 1, 1]
    assert repeat_kv(kv, 2) is kv
    with pytest.raises(ValueError, match="multiple"):
        repeat_kv(kv, 5)


@pytest.mark.parametrize("positions", ["rope", "learned"])
def test_query_index_gives_the_full_blocks_output_at_those_positions(positions):
    # A classifier reads its top block at one position per row: computing only that query (and that row's
    # feed-forward) must give the same numbers as the whole block, with grouped K/V heads and RoPE as well.
    torch.manual_seed(0)
    config = SLMConfig(d_model=24, n_heads=6, n_kv_heads=2, positions=positions, norm="rmsnorm", mlp="swiglu")
    block = Block(config).eval()
    x = torch.randn(3, 7, 24)
    rope = rope_frequencies(config.head_dim, 7) if positions == "rope" else None
    index = torch.tensor([6, 0, 4])  # a long row, a one-token row, one in between
    full = block(x, rope)
    picked = block(x, rope, query_index=index)
    assert picked.shape == (3, 1, 24)
    torch.testing.assert_close(picked[:, 0], full[torch.arange(3), index])
    _, weights = block.attn(x, rope, return_attention=True, query_index=index)
    assert weights.shape == (3, 6, 1, 7) and torch.all(weights[1, :, 0, 1:] == 0)  # position 0 sees only itself
    with pytest.raises(ValueError, match="KV cache"):
        block.attn(x, rope, cache=object(), query_index=index)
