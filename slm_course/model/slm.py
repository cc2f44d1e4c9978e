"""The full model (chapter 3): token embeddings → blocks → final norm → logits for every position.

``SLM(config)`` builds any ``dense`` ``SLMConfig``: GPT-2 with the default switches, a Llama-style
SLM (SmolLM2) with ``norm="rmsnorm", positions="rope", mlp="swiglu"`` and ``n_kv_heads``.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Callable

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.model.config import SLMConfig
from slm_course.model.layers import Block, make_norm, rope_frequencies

if TYPE_CHECKING:
    from slm_course.generate.cache import KVCache


_ID_DTYPES = (torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8)  # accepted, cast to int64


class SLM(nn.Module):
    """A decoder-only transformer language model.

    ``model(idx)`` takes token ids ``(B, T)`` (any integer dtype, used as int64) and returns logits ``(B, T, vocab_size)``:
    at every position, the scores for the next token. ``model(idx, return_attention=True)``
    also returns a list of ``n_layers`` attention-weight tensors ``(B, n_heads, T, T)``.
    """

    def __init__(self, config: SLMConfig) -> None:
        super().__init__()
        if not isinstance(config, SLMConfig):
            raise TypeError(f"SLM expects an SLMConfig, got {type(config).__name__}; try SLMConfig.from_name('tiny').")
        if config.family != "dense":
            raise ValueError(
                f"SLM builds dense models only; {config.name!r} is a {config.family!r} model, which chapter 3 "
                "counts without building: use slm_course.model.count_parameters(config)."
            )
        self.config = config
        self.tok_emb = nn.Embedding(config.vocab_size, config.d_model)  # (vocab, d_model)
        self.pos_emb = (
            nn.Embedding(config.context_length, config.d_model) if config.positions == "learned" else None
        )  # (context, d_model)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layers))
        self.final_norm = make_norm(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)  # (vocab, d_model)
        if config.tie_embeddings:
            self.lm_head.weight = self.tok_emb.weight  # one matrix, used twice
        self.apply(self._init_weights)
        for name, param in self.named_parameters():  # GPT-2: residual projections scaled by 1/√(2·layers)
            if name.endswith(("out_proj.weight", "mlp.proj.weight", "mlp.down.weight")):
                nn.init.normal_(param, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def check_input(self, idx: torch.Tensor) -> None:
        """Raise a ``TypeError``/``ValueError`` saying what is wrong with ``idx``, if anything."""
        if not isinstance(idx, torch.Tensor):
            raise TypeError(f"expected token ids as a torch.Tensor of shape (B, T), got {type(idx).__name__}.")
        if idx.dtype not in _ID_DTYPES:
            raise TypeError(
                f"token ids must be an integer tensor (int64, int32, int16, int8 or uint8), got dtype {idx.dtype}; "
                "if they are whole numbers stored as floats, convert them with idx.long()."
            )
        if idx.dim() != 2:
            raise ValueError(
                f"expected token ids of shape (batch, tokens), got shape {tuple(idx.shape)}; "
                "for one sequence use idx.unsqueeze(0)."
            )
        T = idx.shape[1]
        if T > self.config.context_length:
            raise ValueError(
                f"the sequence has {T} tokens but the model's context is {self.config.context_length}: "
                f"keep only the last {self.config.context_length} tokens (idx[:, -{self.config.context_length}:])."
            )
        if T == 0:
            raise ValueError("the sequence is empty: give at least one token.")
        if idx.device.type != "meta":
            low, high = int(idx.min()), int(idx.max())
            if low < 0 or high >= self.config.vocab_size:
                bad = high if high >= self.config.vocab_size else low
                raise ValueError(
                    f"token id {bad} is outside the vocabulary (0 to {self.config.vocab_size - 1}): "
                    "was the text encoded with a tokenizer whose vocabulary matches config.vocab_size?"
                )

    def forward(
        self, idx: torch.Tensor, return_attention: bool = False, *, cache: KVCache | None = None,
        run_blocks: Callable[..., torch.Tensor] | None = None, run_head: Callable[..., torch.Tensor] | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits ``(B, T, vocab_size)`` for token ids ``idx`` ``(B, T)``.

        With ``return_attention`` the attention runs on the explicit path and the call returns
        ``(logits, attentions)``, ``attentions`` a list of ``n_layers`` tensors ``(B, n_heads, T, T)``.
        With a KV ``cache`` (chapter 5; ``slm_course.generate.KVCache``) ``idx`` are the tokens that
        follow the ``cache.length`` tokens it holds: their positions start at ``cache.length``, their
        keys and values are appended to the cache, and ``cache.length`` grows by ``T``.
        ``run_blocks``: a stand-in for :meth:`run_blocks` with its arguments and result (chapter 10's
        compiled decoding, ``generate(..., compile=True)``, passes a ``torch.compile``-d one); ``run_head``
        likewise for :meth:`output_logits`.
        """
        self.check_input(idx)
        idx = idx.long()
        T = idx.shape[1]
        start = 0 if cache is None else cache.check_append(idx.shape[0], T, self.config.context_length)
        x = self.tok_emb(idx)  # (B, T, d_model)
        if self.pos_emb is not None:
            x = x + self.pos_emb(torch.arange(start, start + T, device=idx.device))  # (T, d_model) broadcast over B
        x = self.drop(x)
        rope = self.rope_angles(T, idx.device, start) if self.config.positions == "rope" else None
        attentions = []
        if return_attention:
            for i, block in enumerate(self.blocks):
                x, weights = block(x, rope, True, cache, i)
                attentions.append(weights)
        else:
            x = (self.run_blocks if run_blocks is None else run_blocks)(x, rope, cache)
        if cache is not None:
            cache.length = start + T
        logits = (self.output_logits if run_head is None else run_head)(x)  # (B, T, vocab_size)
        return (logits, attentions) if return_attention else logits

    def output_logits(self, x: torch.Tensor) -> torch.Tensor:
        """The residual stream after the last block ``(B, T, d_model)`` → logits: the final norm, then ``lm_head``."""
        return self.lm_head(self.final_norm(x))

    def run_blocks(self, x: torch.Tensor, rope: tuple[torch.Tensor, torch.Tensor] | None = None,
                   cache: KVCache | None = None) -> torch.Tensor:
        """The blocks in order: embedded tokens ``x`` ``(B, T, d_model)`` → the residual stream after the last.

        ``rope``: the positions' cos/sin rows (:meth:`rope_angles`) or None; ``cache``: see :meth:`forward`.
        """
        for i, block in enumerate(self.blocks):
            x = block(x, rope, False, cache, i)
        return x

    def rope_angles(self, num_tokens: int, device: torch.device, start: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """RoPE cosines and sines ``(num_tokens, head_dim)`` for positions ``start …``, in float32.

        Computed per call (cheap next to the model) rather than stored, so they stay float32 when the
        model is cast to bfloat16 and follow it to any device.
        """
        cos, sin = rope_frequencies(self.config.head_dim, start + num_tokens, self.config.rope_theta, device=device)
        return cos[start:], sin[start:]

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy of predicting ``targets`` ``(B, T)`` from ``idx`` ``(B, T)`` (nats per token)."""
        logits = self(idx)
        return F.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def num_parameters(self) -> int:
        """Number of distinct parameters (a tied output layer counts once)."""
        return sum(p.numel() for p in self.parameters())
