"""The pieces of a transformer block (chapter 3): norms, feed-forwards, RoPE, attention, the block.

Reading order: ``LayerNorm`` and ``RMSNorm`` → ``GeluMLP`` and ``SwiGLU`` → ``rope_frequencies`` and
``apply_rope`` → ``CausalSelfAttention`` (with grouped-query attention) → ``Block``. Each switch of
``SLMConfig`` picks one of two pieces here; ``slm_course.model.slm.SLM`` stacks the blocks.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from typing import TYPE_CHECKING

from slm_course.attention import merge_heads, scaled_dot_product, split_heads
from slm_course.model.config import SLMConfig

if TYPE_CHECKING:  # the cache lives with generation (chapter 5); layers only call its ``update``
    from slm_course.generate.cache import KVCache


# --------------------------------------------------------------------------- normalisation
class LayerNorm(nn.Module):
    """GPT-2's norm: subtract the mean, divide by the standard deviation, then scale and shift.

    Input and output ``(..., d)``. The variance is the biased one (divide by d), as in ``nn.LayerNorm``.
    """

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))  # (d,) scale, starts at 1
        self.bias = nn.Parameter(torch.zeros(d))  # (d,) shift, starts at 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # The formula, as chapter 3 writes it out:
        #   (x - x.mean(-1, keepdim=True)) / sqrt(x.var(-1, unbiased=False, keepdim=True) + eps) * weight + bias
        # computed here by PyTorch's one fused kernel (several times faster than those five steps).
        return F.layer_norm(x, (x.shape[-1],), self.weight, self.bias, self.eps)


class RMSNorm(nn.Module):
    """Llama's norm: divide by the root mean square, then scale. No centring, no shift.

    Input and output ``(..., d)``; computed in float32 and cast back, as Llama does.
    """

    def __init__(self, d: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))  # (d,) scale, starts at 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dtype == torch.float32 and self.weight.dtype == torch.float32:
            # PyTorch's one fused kernel: bit for bit the formula below in float32, forward and backward
            # (tests/model/test_model_layers.py), with one call instead of seven (it matters when decoding).
            return F.rms_norm(x, (x.shape[-1],), self.weight, self.eps)
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(dim=-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


def make_norm(config: SLMConfig, d: int | None = None) -> nn.Module:
    """The norm ``config.norm`` names, over ``d`` features (default ``d_model``)."""
    d = config.d_model if d is None else d
    return LayerNorm(d, config.norm_eps) if config.norm == "layernorm" else RMSNorm(d, config.norm_eps)


# --------------------------------------------------------------------------- feed-forward
class GeluMLP(nn.Module):
    """GPT-2's feed-forward: widen to ``d_ff``, GELU (tanh approximation, as GPT-2), narrow back.

    ``(B, T, d_model) -> (B, T, d_model)``.
    """

    def __init__(self, config: SLMConfig) -> None:
        super().__init__()
        self.fc = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.proj = nn.Linear(config.d_ff, config.d_model, bias=config.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(F.gelu(self.fc(x), approximate="tanh"))  # (B, T, d_ff) inside


class SwiGLU(nn.Module):
    """Llama's gated feed-forward: ``down(silu(gate(x)) * up(x))``, three matrices.

    ``(B, T, d_model) -> (B, T, d_model)``.
    """

    def __init__(self, config: SLMConfig) -> None:
        super().__init__()
        self.gate = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.up = nn.Linear(config.d_model, config.d_ff, bias=config.bias)
        self.down = nn.Linear(config.d_ff, config.d_model, bias=config.bias)
        self.fused_gate_up: nn.Module | None = None  # chapter 10: gate and up in one quantized kernel call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = (self.gate(x), self.up(x)) if self.fused_gate_up is None else self.fused_gate_up(x)
        return self.down(F.silu(gate) * up)  # (B, T, d_ff) inside


# --------------------------------------------------------------------------- rotary positions
def rope_frequencies(
    head_dim: int, context_length: int, theta: float = 10_000.0, device: torch.device | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cosines and sines for rotary position embeddings, each ``(context_length, head_dim)``.

    Dimension pair ``i`` (of ``head_dim / 2``) turns by angle ``position · theta^(-2i / head_dim)``.
    The layout is the "half rotation" one (Llama in ``transformers``): pair ``i`` is made of
    dimensions ``i`` and ``i + head_dim/2``, so each row holds the ``head_dim/2`` angles twice.
    """
    if head_dim % 2:
        raise ValueError(f"RoPE rotates pairs of dimensions: head_dim must be even, got {head_dim}.")
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim)  # (hd/2,)
    positions = torch.arange(context_length, device=device, dtype=torch.float32)  # (T,)
    angles = torch.outer(positions, inv_freq)  # (T, hd/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, hd)
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate queries or keys ``x`` ``(B, H, T, head_dim)`` by their positions' angles.

    ``cos``/``sin`` are ``(T, head_dim)`` float32 rows for the positions of ``x`` (slice
    ``rope_frequencies``); the result has ``x``'s dtype.
    Pair ``(x_i, x_{i+hd/2})`` becomes ``(x_i cos − x_{i+hd/2} sin, x_{i+hd/2} cos + x_i sin)``.
    """
    half = x.shape[-1] // 2
    x32 = x.float()  # rotate in float32 (angles at large positions need the precision), cast back
    rotated = torch.cat([-x32[..., half:], x32[..., :half]], dim=-1)  # (B, H, T, hd)
    return (x32 * cos + rotated * sin).to(x.dtype)


# --------------------------------------------------------------------------- attention
def repeat_kv(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Grouped-query attention: repeat each key/value head for the query heads of its group.

    ``(B, n_kv_heads, T, hd) -> (B, n_heads, T, hd)``; K/V head ``j`` serves query heads
    ``j·g … j·g + g − 1`` with ``g = n_heads / n_kv_heads`` (so heads are repeated in place, not tiled).
    """
    n_kv_heads = x.shape[1]
    if n_heads % n_kv_heads:
        raise ValueError(f"n_heads={n_heads} is not a multiple of the {n_kv_heads} key/value heads.")
    return x if n_heads == n_kv_heads else x.repeat_interleave(n_heads // n_kv_heads, dim=1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with grouped-query attention and optional RoPE.

    ``n_heads`` query heads share ``n_kv_heads`` key/value heads (each K/V head is repeated for
    ``n_heads / n_kv_heads`` query heads). ``(B, T, d_model) -> (B, T, d_model)``.
    """

    def __init__(self, config: SLMConfig) -> None:
        super().__init__()
        self.n_heads, self.n_kv_heads, self.head_dim = config.n_heads, config.n_kv_heads, config.head_dim
        self.dropout = config.dropout
        kv_width = config.n_kv_heads * config.head_dim
        self.q_proj = nn.Linear(config.d_model, config.d_model, bias=config.qkv_bias)
        self.k_proj = nn.Linear(config.d_model, kv_width, bias=config.qkv_bias)
        self.v_proj = nn.Linear(config.d_model, kv_width, bias=config.qkv_bias)
        self.out_proj = nn.Linear(config.d_model, config.d_model, bias=config.bias)
        # Chapter 10 may set this to one quantized kernel call computing q, k and v together
        # (slm_course.quantize.fuse_kernel_calls): the same numbers as the three layers, fewer calls.
        self.fused_qkv: nn.Module | None = None

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_attention: bool = False,
        cache: KVCache | None = None,
        layer_index: int = 0,
        query_index: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, T, d_model)``; ``rope`` the ``(T, head_dim)`` cos/sin rows, or None.

        Returns ``(B, T, d_model)``, and with ``return_attention`` also the weights
        ``(B, n_heads, T, T)`` from the explicit path (the fused path cannot return them).
        With a KV ``cache`` (chapter 5), ``x`` holds the tokens after the ``cache.length`` already
        stored: their K/V (``n_kv_heads`` of them, after RoPE) are written into layer ``layer_index``
        of the cache and the queries attend to every stored position, so the weights are ``(B, nh, T, T_past + T)``.
        ``query_index`` ``(B,)`` (chapter 7): the output is wanted at one position per row only, so only
        that position gets a query (it attends to itself and the positions before it); the result is
        ``(B, 1, d_model)``, equal to that row of the full output. Keys and values still use every position.
        """
        if query_index is not None and cache is not None:
            raise ValueError("query_index picks positions of a whole sequence; it does not combine with a KV cache.")
        # the rows that get a query: all of x, or (B, 1, d_model) at the chosen positions
        x_q = x if query_index is None else x[torch.arange(x.shape[0], device=x.device), query_index].unsqueeze(1)
        if self.fused_qkv is not None and query_index is None:
            q, k, v = self.fused_qkv(x)
        else:
            q, k, v = self.q_proj(x_q), self.k_proj(x), self.v_proj(x)
        q = split_heads(q, self.n_heads)  # (B, nh, T, hd)
        k = split_heads(k, self.n_kv_heads)  # (B, nkv, T, hd)
        v = split_heads(v, self.n_kv_heads)  # (B, nkv, T, hd)
        if rope is not None:
            cos, sin = rope
            if query_index is None and not torch.is_grad_enabled():
                # Without gradients (decoding), queries and keys turn by the same angles in one call: the
                # rotation is element by element, so the numbers are bit for bit those of two calls.
                qk = apply_rope(torch.cat([q, k], dim=1), cos, sin)  # (B, nh + nkv, T, hd)
                q, k = qk.split([self.n_heads, self.n_kv_heads], dim=1)
            else:
                q_cos, q_sin = (cos, sin) if query_index is None else (cos[query_index, None, None], sin[query_index, None, None])
                q, k = apply_rope(q, q_cos, q_sin), apply_rope(k, cos, sin)
        if cache is not None:
            k, v = cache.update(layer_index, k, v)  # (B, nkv, T_past + T, hd): stored before the heads are repeated
        if return_attention or torch.is_grad_enabled():
            k, v = repeat_kv(k, self.n_heads), repeat_kv(v, self.n_heads)  # (B, nh, T, hd): K/V heads shared in groups
        # Without gradients the fused kernel shares each K/V head across its group itself (scaled_dot_product):
        # the same numbers, bit for bit, without copying K/V at every decode step. With gradients, PyTorch's
        # shared-head backward sums in another order, so training keeps the copies.
        allowed = None  # with query_index: key j is visible to row b's query when j <= query_index[b]
        if query_index is not None:
            allowed = (torch.arange(x.shape[1], device=x.device) <= query_index[:, None])[:, None, None]  # (B, 1, 1, T)
        result = scaled_dot_product(
            q, k, v, causal=query_index is None, dropout_p=self.dropout, training=self.training,
            return_weights=return_attention, allowed=allowed,
        )
        out, weights = result if return_attention else (result, None)
        out = merge_heads(out)  # (B, T, d_model)
        out = self.out_proj(out)
        if self.training and self.dropout:  # (skipped, not called, when it does nothing: one call fewer per token)
            out = F.dropout(out, p=self.dropout)
        return (out, weights) if return_attention else out


# --------------------------------------------------------------------------- the block
class Block(nn.Module):
    """One pre-norm transformer block: ``x + attn(norm(x))`` then ``x + mlp(norm(x))``.

    The residual connections let each block add a correction to the stream instead of replacing it.
    ``(B, T, d_model) -> (B, T, d_model)``.
    """

    def __init__(self, config: SLMConfig) -> None:
        super().__init__()
        self.norm1 = make_norm(config)
        self.attn = CausalSelfAttention(config)
        self.norm2 = make_norm(config)
        self.mlp = GeluMLP(config) if config.mlp == "gelu" else SwiGLU(config)
        self.dropout = config.dropout

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
        return_attention: bool = False,
        cache: KVCache | None = None,
        layer_index: int = 0,
        query_index: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """``x`` ``(B, T, d_model)`` → same shape (and the ``(B, nh, T, T)`` weights if asked).

        ``cache``/``layer_index``/``query_index``: see :meth:`CausalSelfAttention.forward`; with
        ``query_index`` ``(B,)`` the block computes only those positions' outputs, ``(B, 1, d_model)``
        (a classifier's top block, which is read at one token: the feed-forward then runs on one row).
        """
        attended = self.attn(self.norm1(x), rope, return_attention, cache, layer_index, query_index)
        attended, weights = attended if return_attention else (attended, None)
        if query_index is not None:
            x = x[torch.arange(x.shape[0], device=x.device), query_index].unsqueeze(1)  # (B, 1, d_model)
        x = x + attended
        update = self.mlp(self.norm2(x))
        if self.training and self.dropout:
            update = F.dropout(update, p=self.dropout)
        x = x + update
        return (x, weights) if return_attention else x
