"""The model's configuration (chapter 3): one dataclass, a handful of switches, named presets.

``SLMConfig`` describes every model the course builds or counts. Five switches turn GPT-2 into a
Llama-style small language model such as SmolLM2: ``norm`` (layernorm / rmsnorm), ``positions``
(learned / rope), ``mlp`` (gelu / swiglu), ``n_kv_heads`` (grouped-query attention) and
``tie_embeddings``. Two more describe the large models chapter 3 only *counts*: ``n_experts`` /
``n_experts_active`` (Mixtral's mixture of experts) and ``layer_scaling`` (OpenELM's layer-wise
head and width scaling). ``SLM`` builds the ``dense`` family; the others are counted analytically
(``slm_course.model.counting``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal

Norm = Literal["layernorm", "rmsnorm"]
Positions = Literal["learned", "rope"]
MLP = Literal["gelu", "swiglu"]
Family = Literal["dense", "moe", "openelm"]

_CHOICES = {"norm": ("layernorm", "rmsnorm"), "positions": ("learned", "rope"), "mlp": ("gelu", "swiglu")}


@dataclass(frozen=True)
class LayerScaling:
    """OpenELM's layer-wise scaling: layer ``i`` of ``n`` gets its own head count and MLP width.

    The multipliers grow linearly from the first to the last layer (rounded to 2 decimals).
    """

    qkv_multipliers: tuple[float, float] = (0.5, 1.0)  # query width = multiplier × d_model, first → last layer
    ffn_multipliers: tuple[float, float] = (0.5, 4.0)  # MLP width = multiplier × d_model, first → last layer
    queries_per_kv_head: int = 4  # grouped-query attention: query heads that share one key/value head
    ffn_divisor: int = 256  # MLP widths are rounded to a multiple of this
    qk_norm: bool = True  # an RMSNorm (head_dim weights) on the queries and on the keys of every layer


@dataclass
class SLMConfig:
    """Hyper-parameters of an ``SLM``. Derived fields are filled in by ``__post_init__``.

    >>> SLMConfig.from_name("gpt2-124m").head_dim
    64
    """

    vocab_size: int = 2048  # number of token ids; embedding rows and output logits
    context_length: int = 256  # longest sequence the model accepts (rows of the learned position table)
    d_model: int = 128  # width of the residual stream (embedding size)
    n_layers: int = 4  # number of transformer blocks
    n_heads: int = 4  # query heads per attention layer; d_model must be divisible by it
    n_kv_heads: int | None = None  # key/value heads (grouped-query attention); None: n_heads (plain multi-head)
    norm: Norm = "layernorm"  # "layernorm" (GPT-2: centre and scale, weight and bias) or "rmsnorm" (Llama: scale only)
    positions: Positions = "learned"  # "learned" position embeddings (GPT-2) or rotary embeddings "rope" (Llama)
    mlp: MLP = "gelu"  # feed-forward: "gelu" (two matrices, GPT-2) or gated "swiglu" (three matrices, Llama)
    d_ff: int | None = None  # hidden width of the feed-forward; None: 4·d_model (gelu) or ≈8/3·d_model (swiglu)
    tie_embeddings: bool = False  # the output layer reuses the token-embedding matrix (no separate head)
    dropout: float = 0.0  # dropout on embeddings, attention weights and residual branches while training
    qkv_bias: bool = False  # biases on the query/key/value projections (GPT-2: yes, Llama: no)
    bias: bool = False  # biases on the attention output and feed-forward projections (GPT-2: yes)
    norm_eps: float = 1e-5  # the ε added to the variance (layernorm) or mean square (rmsnorm)
    rope_theta: float = 10_000.0  # RoPE base: rotation frequencies are theta^(-2i/head_dim)
    n_experts: int = 1  # mixture of experts: feed-forward copies per layer (Mixtral: 8); counting only when > 1
    n_experts_active: int = 1  # mixture of experts: experts each token is routed to (Mixtral: 2)
    layer_scaling: LayerScaling | None = None  # OpenELM's per-layer heads and widths; counting only
    name: str = "custom"  # a label for tables and plots
    # Derived in __post_init__ (not arguments):
    head_dim: int = dataclasses.field(init=False)  # d_model // n_heads: width of one attention head
    family: Family = dataclasses.field(init=False)  # "dense" (SLM builds it), "moe" or "openelm" (counted only)

    def __post_init__(self) -> None:
        for field_name, choices in _CHOICES.items():
            value = getattr(self, field_name)
            if value not in choices:
                raise ValueError(
                    f"SLMConfig.{field_name}={value!r} is not a known option: choose one of {', '.join(map(repr, choices))}."
                )
        for field_name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads", "n_experts",
                           "n_experts_active", "n_kv_heads", "d_ff"):
            value = getattr(self, field_name)
            if value is None and field_name in ("n_kv_heads", "d_ff"):
                continue  # derived below
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(
                    f"SLMConfig.{field_name} must be a whole number (an int), got {value!r} of type "
                    f"{type(value).__name__}."
                )
            if value < 1:
                raise ValueError(f"SLMConfig.{field_name} must be a positive whole number, got {value!r}.")
        for field_name in ("norm_eps", "rope_theta"):
            value = getattr(self, field_name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(
                    f"SLMConfig.{field_name} must be a positive number, got {value!r}"
                    + (": the norm divides by sqrt(mean square + eps)." if field_name == "norm_eps"
                       else ": RoPE turns pair i by position · theta^(-2i/head_dim), e.g. 10000.0.")
                )
        if self.d_model % self.n_heads:
            raise ValueError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}: each head gets "
                f"d_model / n_heads dimensions. Pick n_heads among the divisors of {self.d_model}."
            )
        if self.n_kv_heads is None:
            self.n_kv_heads = self.n_heads
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"n_heads={self.n_heads} is not divisible by n_kv_heads={self.n_kv_heads}: in grouped-query "
                "attention every key/value head serves the same number of query heads. Use a divisor of n_heads."
            )
        if self.d_ff is None:
            self.d_ff = default_d_ff(self.d_model, self.mlp)
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}.")
        if self.n_experts < 1 or not 1 <= self.n_experts_active <= self.n_experts:
            raise ValueError(
                f"need 1 <= n_experts_active ({self.n_experts_active}) <= n_experts ({self.n_experts})."
            )
        if self.positions == "rope" and (self.d_model // self.n_heads) % 2:
            raise ValueError("RoPE rotates pairs of dimensions: d_model / n_heads must be even.")
        self.head_dim = self.d_model // self.n_heads
        self.family = "moe" if self.n_experts > 1 else "openelm" if self.layer_scaling is not None else "dense"

    # ------------------------------------------------------------------ presets and copies
    @classmethod
    def from_name(cls, name: str, **overrides: Any) -> "SLMConfig":
        """A named preset (see ``slm_course.model.presets.PRESETS``), with fields overridden.

        ``SLMConfig.from_name("tiny", vocab_size=2048)``.
        """
        from slm_course.model.presets import PRESETS

        key = name.lower()
        if key not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; known presets: {', '.join(PRESETS)}.")
        fields = dict(PRESETS[key])
        fields.setdefault("name", key)
        fields.update(overrides)
        return cls(**fields)

    def replace(self, **changes: Any) -> "SLMConfig":
        """A copy with some fields changed. Derived fields are recomputed, and so are ``n_kv_heads``
        and ``d_ff`` when they were left at their defaults (``tiny.replace(mlp="swiglu")`` gets
        SwiGLU's width; an explicit ``d_ff`` or ``n_kv_heads`` is kept)."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        # A field left at its derived default is derived again from the new values.
        if "n_kv_heads" not in changes and self.n_kv_heads == self.n_heads:
            fields["n_kv_heads"] = None  # plain multi-head stays plain multi-head
        if "d_ff" not in changes and self.d_ff == default_d_ff(self.d_model, self.mlp):
            fields["d_ff"] = None
        fields.update(changes)
        return SLMConfig(**fields)

    def to_dict(self) -> dict[str, Any]:
        """The constructor arguments as a plain dict (for checkpoints); ``SLMConfig(**d)`` rebuilds it."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.init}
        if fields["layer_scaling"] is not None:
            fields["layer_scaling"] = dataclasses.asdict(fields["layer_scaling"])
        return fields

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> "SLMConfig":
        """Inverse of :meth:`to_dict`."""
        fields = dict(fields)
        if isinstance(fields.get("layer_scaling"), dict):
            scaling = {k: tuple(v) if isinstance(v, list) else v for k, v in fields["layer_scaling"].items()}
            fields["layer_scaling"] = LayerScaling(**scaling)
        return cls(**fields)


def default_d_ff(d_model: int, mlp: str) -> int:
    """The feed-forward width used when ``d_ff`` is not given: 4·d_model for GELU, ≈ 8/3·d_model for SwiGLU."""
    return 4 * d_model if mlp == "gelu" else _swiglu_width(d_model)


def _swiglu_width(d_model: int, multiple_of: int = 64) -> int:
    """≈ 8/3 · d_model rounded up to a multiple of 64 (widths hardware handles well).

    Three matrices of width 8/3·d cost what GPT-2's two of width 4·d do; the rounding adds a little
    (d_model=128: 341 → 384), and none when 8/3·d_model is already a multiple (d_model=768: 2048).
    """
    width = int(8 * d_model / 3)
    return multiple_of * ((width + multiple_of - 1) // multiple_of)
