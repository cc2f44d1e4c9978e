"""The quantization explorer (chapter 10): how bits, group size and symmetry change a layer's weights.

``QuantizationExplorer(model, eval_ids)`` shows sliders for the bits (2–8) and the group size
("row" = one scale per output channel, or 16…128 weights), the scheme (symmetric absmax, asymmetric
zero-point, or the min/max grid ``Int4Linear`` stores) and a layer selector, above a PNG (matplotlib into an ``ipywidgets.Image``, offline) with the layer's weight
histogram and the quantization grid of its widest block, and the histogram of the rounding errors.
A line gives the reconstruction error and the size; the button "perplexity" quantizes *every*
linear layer of a copy of the model at that setting and measures its perplexity on ``eval_ids``
(with ``slm_course.quantize.perplexity``). ``explorer.drawn`` holds the numbers behind the picture.
"""
from __future__ import annotations

import copy
import html
import io
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from slm_course.model.surgery import find_linears
from slm_course.quantize.basic import dequantize, minmax_quantize, quantize, reconstruction_error
from slm_course.quantize.metrics import perplexity

ROW = 0  # the group-size selector's "one scale per row" (per-channel)
GROUP_SIZES = (ROW, 16, 32, 64, 128)
MINMAX = "minmax"  # the scheme selector's third value: min/max grid with a float minimum (GGUF's Q4_1)


def _quantize(w: torch.Tensor, bits: int, group_size: int, symmetric: bool | str):
    granularity, group = ("channel", None) if group_size == ROW else ("group", group_size)
    if symmetric == MINMAX:
        return minmax_quantize(w, bits, granularity, group, fp16_scales=True)  # stored as Int4Linear/GGUF do
    return quantize(w, bits, symmetric=bool(symmetric), granularity=granularity, group_size=group)


@dataclass
class DrawnQuantization:
    """What the explorer shows: the setting, the weights, the grid, the errors, the size, the perplexity."""

    layer: str
    bits: int
    group_size: int  # ROW (0) for one scale per output row
    symmetric: bool | str  # True: absmax; False: zero-point; "minmax": min/max grid
    weights: np.ndarray  # the layer's weights, flattened (float32)
    grid: np.ndarray  # the values the widest block's integers dequantize to (2^bits or 2^bits - 1 levels)
    errors: np.ndarray  # w - dequantized w, flattened
    error: dict[str, float] = field(default_factory=dict)  # max_abs, rmse, relative
    bytes_fp32: int = 0
    bytes_quantized: float = 0.0  # integers at `bits` + a 2-byte scale (and a zero point) per block
    perplexity: float | None = None  # of the whole model at this setting, after the button
    perplexity_fp32: float | None = None


def quantize_every_linear(model: nn.Module, bits: int, group_size: int, symmetric: bool | str) -> nn.Module:
    """A copy of ``model`` whose linear weights are quantized and dequantized again at this setting
    (float storage, quantized values: what the int layers compute, for measuring quality).
    ``symmetric``: True (absmax), False (zero-point) or ``"minmax"``."""
    model = copy.deepcopy(model)
    for name in find_linears(model):
        linear = model.get_submodule(name)
        w = linear.weight.detach()
        q = _quantize(w, bits, group_size, symmetric)
        with torch.no_grad():
            linear.weight.copy_(dequantize(q).to(w.dtype))  # a tied embedding follows: the same tensor
    return model


class QuantizationExplorer:
    """Interactive quantization of one linear layer of ``model``; ``eval_ids`` (token ids) for the
    perplexity button. Controls: ``bits``, ``group_size``, ``symmetric``, ``layer``, ``button``;
    picture: ``image``; numbers: ``drawn``; all of it: ``widget``."""

    def __init__(self, model: nn.Module, eval_ids: Sequence[int] | torch.Tensor | None = None, *,
                 layer: str | None = None, bits: int = 4, group_size: int = 32, symmetric: bool | str = True,
                 context_length: int = 128, max_tokens: int = 4096) -> None:
        import ipywidgets as widgets

        self.model, self.eval_ids = model, eval_ids
        self.context_length, self.max_tokens = context_length, max_tokens
        self.layers = find_linears(model)
        if not self.layers:
            raise ValueError("QuantizationExplorer needs a model with nn.Linear layers (quantize a float model, "
                             "not one already converted to Int8Linear/Int4Linear).")
        widths = {model.get_submodule(n).in_features for n in self.layers}
        self.group_sizes = [g for g in GROUP_SIZES if g == ROW or all(w % g == 0 for w in widths)]
        layer = layer or self.layers[0]
        if layer not in self.layers:
            raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(self.layers[:6])}, ...")
        if group_size not in self.group_sizes:
            raise ValueError(f"group_size must be one of {self.group_sizes} for this model (0: one scale per row).")
        self.bits = widgets.IntSlider(value=bits, min=2, max=8, description="bits")
        self.group_size = widgets.Dropdown(options=[("row" if g == ROW else str(g), g) for g in self.group_sizes],
                                           value=group_size, description="group size")
        self.symmetric = widgets.ToggleButtons(options=[("symmetric (absmax)", True), ("asymmetric (zero-point)", False),
                                                        ("min/max (Int4Linear)", MINMAX)],
                                               value=symmetric, description="scheme")
        self.layer = widgets.Dropdown(options=self.layers, value=layer, description="layer")
        self.button = widgets.Button(description="perplexity", disabled=eval_ids is None,
                                     tooltip="quantize every linear layer at this setting and measure perplexity")
        self.message = widgets.HTML()
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%"))
        self.widget = widgets.VBox([widgets.HBox([self.bits, self.group_size]), self.symmetric,
                                    widgets.HBox([self.layer, self.button]), self.message, self.image])
        self._fp32_perplexity: float | None = None
        for control in (self.bits, self.group_size, self.symmetric, self.layer):
            control.observe(lambda change: self.redraw(), names="value")
        self.button.on_click(lambda button: self.measure_perplexity())
        self.redraw()

    # -- numbers ------------------------------------------------------------------------------
    def _setting(self) -> tuple[int, int, bool]:
        return self.bits.value, self.group_size.value, self.symmetric.value

    def redraw(self) -> None:
        """Quantize the selected layer at the current setting; draw it and record it in ``drawn``."""
        bits, group, symmetric = self._setting()
        w = self.model.get_submodule(self.layer.value).weight.detach().float().cpu()
        q = _quantize(w, bits, group, symmetric)
        back = dequantize(q)
        widest = int(q.scale.reshape(-1).argmax())  # the block with the largest step shows its grid
        scale = float(q.scale.reshape(-1)[widest])
        if symmetric == MINMAX:
            grid = np.arange(0, 2**bits) * scale + float(q.minimum.reshape(-1)[widest])
        elif symmetric:
            grid = np.arange(-(2 ** (bits - 1) - 1), 2 ** (bits - 1)) * scale
        else:
            grid = (np.arange(0, 2**bits) - int(q.zero.reshape(-1)[widest])) * scale
        self.drawn = DrawnQuantization(
            layer=self.layer.value, bits=bits, group_size=group, symmetric=symmetric,
            weights=w.reshape(-1).numpy(), grid=grid.astype(np.float32),
            errors=(w - back).reshape(-1).numpy(), error=reconstruction_error(w, q),
            bytes_fp32=w.numel() * 4, bytes_quantized=q.nbytes(),
        )
        self._show()

    def measure_perplexity(self) -> float:
        """Perplexity of the whole model with every linear layer at the current setting (and, once,
        of the float32 model), stored in ``drawn`` and shown."""
        if self.eval_ids is None:
            raise ValueError("no eval_ids were given: pass token ids to QuantizationExplorer(model, eval_ids).")
        kwargs = dict(context_length=self.context_length, max_tokens=self.max_tokens)
        if self._fp32_perplexity is None:
            self._fp32_perplexity = perplexity(self.model, self.eval_ids, **kwargs)
        quantized = quantize_every_linear(self.model, *self._setting())
        self.drawn.perplexity = perplexity(quantized, self.eval_ids, **kwargs)
        self.drawn.perplexity_fp32 = self._fp32_perplexity
        self._show()
        return self.drawn.perplexity

    # -- drawing ------------------------------------------------------------------------------
    def summary(self) -> str:
        """The line under the controls: error, size, perplexity."""
        d = self.drawn
        text = (f"{d.layer}: RMS error {d.error['rmse']:.3g} ({100 * d.error['relative']:.1f} % of the weights' norm), "
                f"max {d.error['max_abs']:.3g}; size {d.bytes_quantized / 1024:.1f} KiB vs "
                f"{d.bytes_fp32 / 1024:.1f} KiB fp32 ({d.bytes_fp32 / d.bytes_quantized:.1f}× smaller).")
        if d.perplexity is not None:
            text += f" Perplexity, every layer at this setting: {d.perplexity:.2f} (fp32: {d.perplexity_fp32:.2f})."
        return text

    def _show(self) -> None:
        self.message.value = html.escape(self.summary())
        buffer = io.BytesIO()
        figure(self.drawn).savefig(buffer, format="png")
        self.image.value = buffer.getvalue()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        return self.widget._repr_mimebundle_(**kwargs)


def figure(drawn: DrawnQuantization):
    """The explorer's picture as a matplotlib ``Figure``: weight histogram with the grid; error histogram."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.4), dpi=90, layout="constrained")
    left, right = fig.subplots(1, 2)
    left.hist(drawn.weights, bins=120, color="tab:blue", alpha=0.8)
    for value in drawn.grid:
        left.axvline(value, color="tab:red", linewidth=0.6, alpha=0.7)
    left.set_yscale("log")
    scheme = "min/max" if drawn.symmetric == MINMAX else "symmetric" if drawn.symmetric else "zero-point"
    group = "per row" if drawn.group_size == ROW else f"groups of {drawn.group_size}"
    left.set_title(f"{drawn.layer}: weights and the {len(drawn.grid)}-level grid of its widest block", fontsize=9)
    left.set_xlabel("weight value")
    left.set_ylabel("count (log scale)")
    right.hist(drawn.errors, bins=80, color="tab:orange")
    right.set_title(f"rounding error, {drawn.bits} bits, {scheme}, {group}", fontsize=9)
    right.set_xlabel("w − dequantized w")
    right.set_ylabel("count")
    return fig
