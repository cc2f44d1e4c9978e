"""The KV cache (chapter 5): keep every layer's keys and values so each new token costs one position.

Without a cache, generating token ``t`` reruns the model over all ``t`` tokens before it. Keys and
values of past positions never change (attention is causal), so the cache stores them once: a
*prefill* runs the prompt and fills positions ``0 … T-1``; each *decode* step runs one token and
appends one position. The buffers are allocated once, ``(B, n_kv_heads, max_length, head_dim)`` per
layer: with grouped-query attention they hold ``n_kv_heads`` heads, not ``n_heads`` (SmolLM2: 3, not 9).
Keys are stored after RoPE has turned them, so a stored key never needs its position again.

>>> cache = KVCache.for_model(model, batch_size=1, max_length=64)
>>> logits = model(prompt, cache=cache)          # prefill: cache.length == prompt.shape[1]
>>> logits = model(next_token, cache=cache)      # one decode step: cache.length grows by 1
"""
from __future__ import annotations

import torch
from torch import nn


class KVCache:
    """Preallocated keys and values for every layer of a model, filled up to ``length``.

    ``keys[i]``, ``values[i]``: ``(batch_size, n_kv_heads, max_length, head_dim)`` for layer ``i``;
    positions ``≥ length`` hold nothing meaningful. The model writes through :meth:`update` and
    sets ``length`` after its last layer.
    """

    def __init__(self, n_layers: int, batch_size: int, n_kv_heads: int, max_length: int, head_dim: int,
                 *, dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu") -> None:
        for name, value in [("n_layers", n_layers), ("batch_size", batch_size), ("n_kv_heads", n_kv_heads),
                            ("max_length", max_length), ("head_dim", head_dim)]:
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"KVCache needs a positive whole number for {name}, got {value!r}.")
        shape = (batch_size, n_kv_heads, max_length, head_dim)
        self.keys = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.values = [torch.zeros(shape, dtype=dtype, device=device) for _ in range(n_layers)]
        self.length = 0

    @classmethod
    def for_model(cls, model: nn.Module, batch_size: int, max_length: int | None = None) -> KVCache:
        """An empty cache shaped for ``model`` (an ``SLM``): ``max_length`` defaults to its context length."""
        config = model.config
        max_length = config.context_length if max_length is None else max_length
        if max_length > config.context_length:
            raise ValueError(
                f"a cache of {max_length} positions is longer than the model's context ({config.context_length}): "
                "the model has no position beyond it, so ask for at most context_length."
            )
        # The dtype and device of the model's floating-point parameters (a quantized model's norms): not
        # tok_emb.weight, which a quantized embedding dequantizes whole on every access.
        weight = next((p for p in model.parameters() if p.is_floating_point()), None)
        dtype = weight.dtype if weight is not None else torch.float32
        return cls(config.n_layers, batch_size, config.n_kv_heads, max_length, config.head_dim,
                   dtype=dtype, device=weight.device if weight is not None else "cpu")

    # ------------------------------------------------------------------ shape
    @property
    def n_layers(self) -> int:
        return len(self.keys)

    @property
    def batch_size(self) -> int:
        return self.keys[0].shape[0]

    @property
    def n_kv_heads(self) -> int:
        return self.keys[0].shape[1]

    @property
    def max_length(self) -> int:
        return self.keys[0].shape[2]

    def num_bytes(self) -> int:
        """Memory the buffers take (keys and values of every layer), in bytes."""
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)

    def __repr__(self) -> str:
        return (f"KVCache(layers={self.n_layers}, batch={self.batch_size}, kv_heads={self.n_kv_heads}, "
                f"length={self.length}/{self.max_length})")

    # ------------------------------------------------------------------ writing
    def check_append(self, batch_size: int, num_tokens: int, context_length: int) -> int:
        """Raise a ``ValueError`` unless ``num_tokens`` more fit; return the first new position (``length``)."""
        if batch_size != self.batch_size:
            raise ValueError(
                f"the cache holds {self.batch_size} sequences but the input has {batch_size}: make the cache with "
                f"KVCache.for_model(model, batch_size={batch_size}) or use cache.expand / cache.repeat_batch."
            )
        end = self.length + num_tokens
        if end > context_length:
            raise ValueError(
                f"positions {self.length}…{end - 1} are beyond the model's context of {context_length} tokens: "
                "the cache cannot go further; start a fresh cache on the last tokens, or generate without one."
            )
        if end > self.max_length:
            raise ValueError(
                f"the cache holds {self.length} of {self.max_length} positions and cannot take {num_tokens} more: "
                f"make it with a larger max_length (at most the context, {context_length})."
            )
        return self.length

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write ``k``, ``v`` ``(B, n_kv_heads, T, hd)`` at positions ``length … length+T-1`` of ``layer``.

        Returns the keys and values of every stored position, ``(B, n_kv_heads, length + T, hd)``
        (views of the buffers, no copy). ``length`` itself is advanced by the model after its last layer.
        """
        end = self.length + k.shape[2]
        self.keys[layer][:, :, self.length:end] = k
        self.values[layer][:, :, self.length:end] = v
        return self.keys[layer][:, :, :end], self.values[layer][:, :, :end]

    # ------------------------------------------------------------------ editing
    def truncate(self, n: int) -> KVCache:
        """Forget positions ``≥ n`` (in place; returns the cache). ``0 ≤ n ≤ length``."""
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= self.length:
            raise ValueError(f"truncate takes a whole number of positions from 0 to {self.length}, got {n!r}.")
        self.length = n
        return self

    def _copy_with(self, keys: list[torch.Tensor], values: list[torch.Tensor]) -> KVCache:
        new = KVCache.__new__(KVCache)
        new.keys, new.values, new.length = keys, values, self.length
        return new

    def clone(self) -> KVCache:
        """An independent copy: writing to one never changes the other."""
        return self._copy_with([k.clone() for k in self.keys], [v.clone() for v in self.values])

    def expand(self, batch_size: int) -> KVCache:
        """A copy of a one-sequence cache for ``batch_size`` sequences that share its prefix."""
        if self.batch_size != 1:
            raise ValueError(f"expand copies a cache of one sequence; this one holds {self.batch_size}: use repeat_batch.")
        return self.repeat_batch(batch_size)

    def repeat_batch(self, k: int) -> KVCache:
        """A copy where each sequence is repeated ``k`` times in a row (``(B, …) → (B·k, …)``).

        Scores ``k`` continuations of each prefix after running the prefix once.
        """
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            raise ValueError(f"repeat_batch takes a positive whole number of copies, got {k!r}.")
        return self._copy_with([t.repeat_interleave(k, dim=0) for t in self.keys],
                               [t.repeat_interleave(k, dim=0) for t in self.values])


def attend_one_step(q: torch.Tensor, k_new: torch.Tensor, v_new: torch.Tensor, k_past: torch.Tensor,
                    v_past: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decode step of attention with a cache, on plain tensors (what the model does per layer).

    ``q``, ``k_new``, ``v_new``: ``(B, H, 1, d)`` for the new token; ``k_past``, ``v_past``: ``(B, H, t, d)``.
    Returns ``(out (B, H, 1, d), k_all, v_all)`` with ``k_all``/``v_all`` ``(B, H, t + 1, d)``. The new
    token is the last position, so it may attend to every key: no mask is needed.
    """
    from slm_course.attention import scaled_dot_product

    k_all, v_all = torch.cat([k_past, k_new], dim=-2), torch.cat([v_past, v_new], dim=-2)
    return scaled_dot_product(q, k_all, v_all, causal=True), k_all, v_all
