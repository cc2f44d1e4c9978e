"""The attention explorer (chapter 2): see which tokens each token attends to, layer by layer, head by head.

``AttentionExplorer(model, tokenizer)`` shows a text box, layer and head selectors ("all heads"
draws a grid) and a token selector that outlines what that token attends to, above a heatmap
with the tokens on both axes. It works with any model that follows ``slm_course.model``'s
contract: ``model(idx, return_attention=True)`` returns ``(logits, attentions)``, a list over
layers of ``(B, n_heads, T, T)`` weights. Plots are PNG images drawn by matplotlib into an
``ipywidgets.Image``: nothing is loaded from the internet. ``explorer.drawn`` holds what is shown,
so tests (and curious learners) can read the numbers behind the picture.

``train_demo_model`` trains a tiny character-level model for a few hundred steps, so the explorer
has something to show before chapter 4's pretrained model exists. It is a model trained for
seconds: its heads show simple patterns (attend to the previous characters), not meaning.
"""
from __future__ import annotations

import html
import io
import math
import string
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from slm_course.device import model_device

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

ALL_HEADS = "all"
NO_TOKEN = -1  # the token selector's "none" (ipywidgets shows a value of None as a blank choice)
MAX_TOKENS_CEILING = 256  # H·T·T weights per layer are kept; 256 tokens keep that small for any model
DEFAULT_TEXT = "To be, or not to be, that is the question"
_SPECIAL_LABELS = {" ": "␣", "\n": "↵", "\t": "⇥", "": "∅"}


# --------------------------------------------------------------------------- a character tokenizer


class CharacterTokenizer:
    """Every character is a token. The vocabulary is the characters of ``text`` plus printable ASCII;
    id 0 (``"�"``) stands for any character outside it, so typing in the explorer never fails."""

    unknown = "�"

    def __init__(self, text: str = "") -> None:
        self.itos: list[str] = [self.unknown] + sorted((set(text) | set(string.printable)) - {self.unknown})
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.itos)}

    @property
    def vocab_size(self) -> int:
        """Number of ids: the characters known plus the unknown character (id 0)."""
        return len(self.itos)

    def encode(self, text: str) -> list[int]:
        """One id per character of ``text``, in ``[0, vocab_size)``; unknown characters become 0."""
        return [self.stoi.get(ch, 0) for ch in text]

    def decode(self, ids: Sequence[int]) -> str:
        """The characters of ``ids`` joined into a string (id 0 gives ``"�"``); an id out of range is an IndexError."""
        return "".join(self.itos[int(i)] for i in ids)


# --------------------------------------------------------------------------- a model trained for seconds


class DemoModel(NamedTuple):
    model: torch.nn.Module
    tokenizer: CharacterTokenizer
    losses: list[float]  # training loss (cross-entropy, nats per character) at every step


def train_demo_model(
    text: str,
    *,
    steps: int = 300,
    batch_size: int = 16,
    context_length: int = 64,
    d_model: int = 64,
    n_layers: int = 2,
    n_heads: int = 4,
    learning_rate: float = 3e-3,
    seed: int = 0,
    progress: bool = True,
    device: torch.device | str = "cpu",
) -> DemoModel:
    """Train a tiny character-level ``SLM`` on ``text`` for ``steps`` steps of ``batch_size × context_length`` characters.

    A stand-in until chapter 4's pretrained model: deterministic for a given seed, small enough
    to train in seconds on a CPU. Returns the model (in eval mode), its tokenizer and the loss
    at every step. Chapter 4 teaches the real training loop (warmup, clipping, evaluation).
    ``device`` defaults to the CPU: a model this small trains no faster on a GPU.
    """
    from slm_course.train.progress import progress_bar

    from slm_course.device import set_seed
    from slm_course.model import SLM, SLMConfig

    tokenizer = CharacterTokenizer(text)
    data = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if len(data) <= context_length + 1:
        raise ValueError(f"The text has {len(data)} characters; give at least {context_length + 2} to train on.")
    set_seed(seed)
    config = SLMConfig(
        vocab_size=tokenizer.vocab_size, context_length=context_length, d_model=d_model, n_layers=n_layers, n_heads=n_heads
    )
    model = SLM(config).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    generator = torch.Generator().manual_seed(seed)
    offsets = torch.arange(context_length)
    losses: list[float] = []
    model.train()
    with progress_bar(steps, desc="training the demo model", enabled=progress) as bar:
        for _ in range(steps):
            starts = torch.randint(0, len(data) - context_length - 1, (batch_size, 1), generator=generator)
            inputs, targets = data[starts + offsets].to(device), data[starts + offsets + 1].to(device)  # (B, T) each
            logits = model(inputs)  # (B, T, vocab)
            loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten())
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
    model.eval()
    return DemoModel(model, tokenizer, losses)


# --------------------------------------------------------------------------- the explorer


@dataclass
class DrawnAttention:
    """What the explorer shows now. ``weights`` is ``(T, T)`` for one head, ``(H, T, T)`` for all heads;
    row ``i`` is how much query token ``i`` attends to each key token (each row sums to 1)."""

    layer: int
    head: int | str  # a head index, or ALL_HEADS
    weights: np.ndarray | None
    labels: list[str] = field(default_factory=list)
    token: int | None = None  # the highlighted query token
    message: str = ""


def token_label(piece: str, limit: int = 8) -> str:
    """A token's text made visible on an axis: spaces as ␣, newlines as ↵, cut to ``limit`` characters."""
    if piece in _SPECIAL_LABELS:
        return _SPECIAL_LABELS[piece]
    shown = piece.replace(" ", "␣").replace("\n", "↵").replace("\t", "⇥")
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


class AttentionExplorer:
    """Interactive attention heatmaps for a model following the ``slm_course.model`` contract.

    ``tokenizer`` is any object with ``encode(str) -> list[int]`` and ``decode(list[int]) -> str``;
    or pass ``encode=``/``decode=`` functions. Inputs longer than ``max_tokens`` (or the model's
    context length) are cut, with a message saying so; ``max_tokens`` may be at most
    ``MAX_TOKENS_CEILING`` (256), which bounds the memory the weights take. Text the model cannot
    read (ids beyond its vocabulary) shows a message instead of a plot. Controls: ``text``,
    ``layer``, ``head``, ``token`` (ipywidgets); the picture: ``image``; what it shows: ``drawn``;
    all of it: ``widget``.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer: Any = None,
        *,
        encode: Callable[[str], Sequence[int]] | None = None,
        decode: Callable[[Sequence[int]], str] | None = None,
        text: str = DEFAULT_TEXT,
        max_tokens: int = 48,
    ) -> None:
        import ipywidgets as widgets

        if tokenizer is not None:
            encode, decode = encode or tokenizer.encode, decode or tokenizer.decode
        if encode is None or decode is None:
            raise TypeError("AttentionExplorer needs a tokenizer (an object with encode and decode) or encode= and decode= functions.")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise ValueError(f"max_tokens must be a positive whole number, got {max_tokens!r}.")
        if max_tokens > MAX_TOKENS_CEILING:
            raise ValueError(
                f"max_tokens={max_tokens} is too many: the explorer keeps every layer's (heads × T × T) weights "
                f"and draws one cell per token pair, so it allows at most {MAX_TOKENS_CEILING}. Pass a smaller value."
            )
        self.model, self.encode, self.decode = model, encode, decode
        config = getattr(model, "cfg", None) or getattr(model, "config", None)
        self.max_tokens = min(max_tokens, getattr(config, "context_length", max_tokens))
        probe = self._attentions([0])  # one token: learn how many layers and heads there are
        self.n_layers, self.n_heads = len(probe), probe[0].shape[0]

        self.text = widgets.Text(value=text, description="text", continuous_update=False, layout=widgets.Layout(width="95%"))
        self.layer = widgets.Dropdown(options=[(f"layer {i}", i) for i in range(self.n_layers)], value=0, description="layer")
        head_options = [("all heads", ALL_HEADS)] + [(f"head {h}", h) for h in range(self.n_heads)]
        self.head = widgets.Dropdown(options=head_options, value=0, description="head")
        self.token = widgets.Dropdown(options=[("none", NO_TOKEN)], value=NO_TOKEN, description="token")
        self.message = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", align_self="flex-start"))
        self.widget = widgets.VBox([self.text, widgets.HBox([self.layer, self.head, self.token]), self.message, self.image])

        self.drawn = DrawnAttention(layer=0, head=0, weights=None)
        self.ids: list[int] = []
        self.labels: list[str] = []
        self._weights: list[np.ndarray] = []  # per layer, (H, T, T)
        self._quiet = False
        self.text.observe(lambda change: self._on_text(), names="value")
        for control in (self.layer, self.head, self.token):
            control.observe(lambda change: self.redraw(), names="value")
        self._on_text()

    # -- model ------------------------------------------------------------------------------
    def _attentions(self, ids: Sequence[int]) -> list[np.ndarray]:
        """Run the model on ``ids``; per layer the weights ``(H, T, T)`` of the single sequence."""
        device = model_device(self.model)
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                _, attentions = self.model(torch.tensor([list(ids)], dtype=torch.long, device=device), return_attention=True)
        finally:
            self.model.train(was_training)
        return [a[0].float().cpu().numpy() for a in attentions]

    def _on_text(self) -> None:
        try:
            ids = list(self.encode(self.text.value))
        except Exception as error:  # a tokenizer complaint becomes a message, not a traceback
            ids, note = [], f"Could not tokenize this text ({type(error).__name__}: {error})."
        else:
            note = ""
            if len(ids) > self.max_tokens:
                note = (f"The text is {len(ids)} tokens long; showing the first {self.max_tokens} "
                        f"(max_tokens={self.max_tokens}) so the plot stays readable.")
                ids = ids[: self.max_tokens]
            elif not ids:
                note = "Type some text to see its attention weights."
        try:
            labels = [token_label(self.decode([i])) for i in ids]
            weights = self._attentions(ids) if ids else []
        except (ValueError, IndexError) as error:  # e.g. ids beyond the model's vocabulary: a message, not a traceback
            ids, labels, weights = [], [], []
            note = f"The model cannot read this text ({type(error).__name__}: {error})."
        self.ids, self._note, self.labels, self._weights = ids, note, labels, weights
        self._quiet = True  # rebuilding the token options must not redraw half-way
        previous = self.token.value
        self.token.options = [("none", NO_TOKEN)] + [(f"{i}: {label}", i) for i, label in enumerate(self.labels)]
        self.token.value = previous if previous < len(ids) else NO_TOKEN
        self._quiet = False
        self.redraw()

    # -- drawing ----------------------------------------------------------------------------
    def redraw(self) -> None:
        """Draw the selected layer, head(s) and token into ``image`` and record them in ``drawn``."""
        if self._quiet:
            return
        layer, head = self.layer.value, self.head.value
        token = None if self.token.value == NO_TOKEN else self.token.value
        if not self._weights:
            self.drawn = DrawnAttention(layer, head, None, [], None, self._note)
            self.message.value = f"<b>{html.escape(self._note)}</b>"
            self.image.value = b""
            return
        weights = self._weights[layer] if head == ALL_HEADS else self._weights[layer][head]
        note = self._note
        if token is not None and head != ALL_HEADS:
            top = np.argsort(-weights[token])[:3]
            note = (note + " " if note else "") + f"Token {token} ({self.labels[token]}) attends most to " + ", ".join(
                f"{j} ({self.labels[j]}, {weights[token, j]:.2f})" for j in top
            ) + "."
        elif token is not None:
            note = (note + " " if note else "") + f"Token {token} ({self.labels[token]}) is outlined in every head."
        self.drawn = DrawnAttention(layer, head, weights.copy(), list(self.labels), token, note)
        self.message.value = html.escape(note)  # the labels are the learner's text, not HTML
        self.image.value = self._png(self.drawn)

    def snapshot(self, *, layer: int | None = None, head: int | str | None = None, token: int | None = None) -> Figure:
        """The picture the explorer draws for ``layer``/``head``/``token`` (each defaults to what the controls
        show now; ``head=ALL_HEADS`` ("all") gives the layer's grid), as a matplotlib ``Figure``, without
        touching the controls. A notebook shows it as a static PNG, so the point survives without a kernel."""
        if not self._weights:
            raise ValueError(f"There is nothing to draw: {self._note or 'the text is empty.'}")
        layer = self.layer.value if layer is None else layer
        head = self.head.value if head is None else head
        token = (None if self.token.value == NO_TOKEN else self.token.value) if token is None else token
        if not 0 <= layer < self.n_layers:
            raise ValueError(f"layer must be between 0 and {self.n_layers - 1}, got {layer!r}.")
        if head != ALL_HEADS and not (isinstance(head, int) and 0 <= head < self.n_heads):
            raise ValueError(f"head must be {ALL_HEADS!r} or between 0 and {self.n_heads - 1}, got {head!r}.")
        if token is not None and not 0 <= token < len(self.labels):
            raise ValueError(f"token must be between 0 and {len(self.labels) - 1} (or None), got {token!r}.")
        weights = self._weights[layer] if head == ALL_HEADS else self._weights[layer][head]
        return _figure(DrawnAttention(layer, head, weights.copy(), list(self.labels), token, self._note))

    def _png(self, drawn: DrawnAttention) -> bytes:
        """The picture of ``drawn`` as PNG bytes (what ``image`` shows)."""
        buffer = io.BytesIO()
        _figure(drawn).savefig(buffer, format="png")
        return buffer.getvalue()

    # -- display ----------------------------------------------------------------------------
    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def _figure(drawn: DrawnAttention) -> Figure:
    """A matplotlib ``Figure`` of ``drawn``: one heatmap per head (query rows, key columns), the
    selected token's row outlined. Separate from the PNG so tests can inspect the axes."""
    from matplotlib.figure import Figure

    grid = drawn.weights if drawn.weights.ndim == 3 else drawn.weights[None]
    n, num_tokens = grid.shape[0], len(drawn.labels)
    columns = min(n, 4)
    rows = math.ceil(n / columns)
    side = min(7.5, 2.0 + 0.18 * num_tokens) if n == 1 else min(4.5, 1.8 + 0.09 * num_tokens)
    figure = Figure(figsize=(side * columns + (1.2 if n == 1 else 0.3), side * rows + 0.6), dpi=90, layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False)
    ticks = range(num_tokens)
    fontsize = 9 if num_tokens <= 24 else 7
    for index, ax in enumerate(axes.flat):
        if index >= n:
            ax.set_axis_off()
            continue
        picture = ax.imshow(grid[index], cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"layer {drawn.layer}, head {drawn.head if n == 1 else index}", fontsize=10)
        left, bottom = index % columns == 0, index // columns == rows - 1 or index + columns >= n
        ax.set_xticks(ticks, drawn.labels if bottom else [], rotation=90, fontsize=fontsize)
        ax.set_yticks(ticks, drawn.labels if left else [], fontsize=fontsize)
        if bottom:
            ax.set_xlabel("key: token attended to")
        if left:
            ax.set_ylabel("query: token attending")
        if drawn.token is not None:
            ax.add_patch(_row_outline(drawn.token, num_tokens))
    if n == 1:
        figure.colorbar(picture, ax=axes[0, 0], label="attention weight")
    figure.suptitle("Attention weights (each row sums to 1)")
    return figure


def _row_outline(row: int, width: int) -> Rectangle:
    from matplotlib.patches import Rectangle

    return Rectangle((-0.5, row - 0.5), width, 1.0, fill=False, edgecolor="red", linewidth=2.0)
