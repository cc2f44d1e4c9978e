"""The sampling explorer (chapter 5): how temperature, top-k and top-p reshape the next-token distribution.

``SamplingExplorer(model, tokenizer)`` shows a prompt box and three sliders (temperature, top-k with
0 meaning off, top-p) above four bar charts of the most likely next tokens: the model's own
distribution, after temperature, after top-k, after top-p (the distribution ``generate`` samples
from). The numbers come from ``slm_course.generate``'s filters, so the picture is what generation does.
Plots are PNG images drawn by matplotlib into an ``ipywidgets.Image``; ``explorer.drawn`` holds the
numbers behind them, so tests (and curious learners) can read them without a browser.
"""
from __future__ import annotations

import html
import io
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from slm_course.device import model_device
from slm_course.generate.sampling import apply_temperature, top_k_filter, top_p_filter

if TYPE_CHECKING:
    from matplotlib.figure import Figure

STAGES = ("model", "temperature", "top-k", "top-p")
DEFAULT_PROMPT = "ROMEO:\nWhat light through yonder"


@dataclass
class DrawnSampling:
    """What the explorer shows: for each stage in :data:`STAGES`, the probabilities ``(vocab,)``.

    ``shown`` are the ids of the ``len(labels)`` tokens drawn (the model's most likely, best first);
    ``kept`` how many tokens of the whole vocabulary have probability > 0 at each stage.
    """

    prompt: str
    temperature: float
    top_k: int
    top_p: float
    probs: dict[str, np.ndarray] = field(default_factory=dict)
    shown: list[int] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)
    note: str = ""


def stage_probabilities(logits: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> dict[str, np.ndarray]:
    """Probabilities ``(vocab,)`` of next-token ``logits`` ``(vocab,)`` at each stage of :data:`STAGES`."""
    logits = logits.float()
    tempered = apply_temperature(logits, temperature)
    after_k = top_k_filter(tempered, top_k or None)
    after_p = top_p_filter(after_k, top_p)
    return {name: torch.softmax(x, -1).numpy() for name, x in zip(STAGES, (logits, tempered, after_k, after_p))}


class SamplingExplorer:
    """Sliders for temperature, top-k and top-p on a real prompt; bars of the next-token distribution.

    Controls: ``prompt`` (text), ``temperature``, ``top_k`` (0 = off), ``top_p`` (ipywidgets); the
    picture: ``image``; what it shows: ``drawn``; all of it: ``widget``. ``show`` tokens are drawn.
    """

    def __init__(self, model: torch.nn.Module, tokenizer: Any, *, prompt: str = DEFAULT_PROMPT, show: int = 15,
                 temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0) -> None:
        import ipywidgets as widgets

        if not (hasattr(tokenizer, "encode") and hasattr(tokenizer, "decode")):
            raise TypeError("SamplingExplorer needs a tokenizer with encode(str) -> list[int] and decode(list[int]) -> str.")
        if isinstance(show, bool) or not isinstance(show, int) or not 2 <= show <= 40:
            raise ValueError(f"show must be a whole number of tokens from 2 to 40, got {show!r}.")
        self.model, self.tokenizer, self.show = model, tokenizer, show
        self.prompt = widgets.Text(value=prompt, description="prompt", continuous_update=False, layout=widgets.Layout(width="95%"))
        self.temperature = widgets.FloatSlider(value=temperature, min=0.1, max=2.5, step=0.05, description="temperature",
                                               continuous_update=False)
        self.top_k = widgets.IntSlider(value=top_k, min=0, max=100, description="top-k (0=off)", continuous_update=False)
        self.top_p = widgets.FloatSlider(value=top_p, min=0.05, max=1.0, step=0.01, description="top-p", continuous_update=False)
        self.message = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.widget = widgets.VBox([self.prompt, widgets.HBox([self.temperature, self.top_k, self.top_p]), self.message, self.image])
        self._logits: torch.Tensor | None = None
        self._note = ""
        self.prompt.observe(lambda change: self._on_prompt(), names="value")
        for control in (self.temperature, self.top_k, self.top_p):
            control.observe(lambda change: self.redraw(), names="value")
        self._on_prompt()

    def _on_prompt(self) -> None:
        ids = list(self.tokenizer.encode(self.prompt.value))
        context = self.model.config.context_length
        self._note = "" if len(ids) <= context else f"The prompt is {len(ids)} tokens; the model reads the last {context}."
        if not ids:
            self._logits, self._note = None, "Type a prompt to see the next-token distribution."
        else:
            device = model_device(self.model)
            was_training = self.model.training
            self.model.eval()
            try:
                with torch.no_grad():
                    self._logits = self.model(torch.tensor([ids[-context:]], device=device))[0, -1].float().cpu()
            finally:
                self.model.train(was_training)
        self.redraw()

    def compute(self, temperature: float | None = None, top_k: int | None = None, top_p: float | None = None) -> DrawnSampling:
        """The numbers drawn for these settings (each defaults to its slider's value), without drawing."""
        temperature = self.temperature.value if temperature is None else temperature
        top_k = self.top_k.value if top_k is None else top_k
        top_p = self.top_p.value if top_p is None else top_p
        drawn = DrawnSampling(self.prompt.value, float(temperature), int(top_k), float(top_p), note=self._note)
        if self._logits is None:
            return drawn
        drawn.probs = stage_probabilities(self._logits, temperature, top_k, top_p)
        drawn.shown = [int(i) for i in np.argsort(-drawn.probs["model"], kind="stable")[: self.show]]
        drawn.labels = [repr(self.tokenizer.decode([i]))[1:-1] or "∅" for i in drawn.shown]
        drawn.kept = {name: int((p > 0).sum()) for name, p in drawn.probs.items()}
        return drawn

    def redraw(self) -> None:
        """Recompute for the sliders' values, draw into ``image`` and record it in ``drawn``."""
        self.drawn = self.compute()
        if not self.drawn.probs:
            self.message.value = f"<b>{html.escape(self.drawn.note)}</b>"
            self.image.value = b""
            return
        kept = self.drawn.kept
        self.message.value = html.escape(
            (self.drawn.note + " " if self.drawn.note else "")
            + f"Tokens that can still be sampled: {kept['model']} → top-k {kept['top-k']} → top-p {kept['top-p']}.")
        buffer = io.BytesIO()
        figure_of(self.drawn).savefig(buffer, format="png")
        self.image.value = buffer.getvalue()

    def snapshot(self, **settings: Any) -> Figure:
        """The picture for ``temperature``/``top_k``/``top_p`` (defaults: the sliders) as a matplotlib ``Figure``."""
        drawn = self.compute(**settings)
        if not drawn.probs:
            raise ValueError(drawn.note or "There is nothing to draw: the prompt is empty.")
        return figure_of(drawn)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def figure_of(drawn: DrawnSampling) -> Figure:
    """Four bar charts (one per stage) of the shown tokens' probabilities; removed tokens are grey at 0."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 3.4), dpi=80, layout="constrained")
    axes = figure.subplots(1, 4, sharey=True)
    titles = {"model": "the model (T = 1)", "temperature": f"temperature {drawn.temperature:g}",
              "top-k": "top-k " + (str(drawn.top_k) if drawn.top_k else "off"), "top-p": f"top-p {drawn.top_p:g}"}
    top = max(float(p[drawn.shown].max()) for p in drawn.probs.values())
    x = np.arange(len(drawn.shown))
    for ax, stage in zip(axes, STAGES):
        p = drawn.probs[stage][drawn.shown]
        ax.bar(x, p, color=["tab:blue" if v > 0 else "lightgrey" for v in p])
        ax.set_ylim(0, top * 1.1)
        ax.set_xticks(x, drawn.labels, rotation=90, fontsize=8)
        ax.set_title(f"{titles[stage]}\n{drawn.kept[stage]} tokens kept", fontsize=10)
    axes[0].set_ylabel("probability of the next token")
    figure.suptitle(f"Next token after {drawn.prompt[-40:]!r}", fontsize=10)
    return figure
