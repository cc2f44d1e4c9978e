"""Interactive widgets the chapters use: ipywidgets controls drawing PNG plots, fully offline.

- :class:`AttentionExplorer` (chapter 2): attention weights by layer, head and token.
- :class:`SamplingExplorer` (chapter 5): the next-token distribution under temperature, top-k and top-p.

Widgets expose what they draw (``explorer.drawn``) so tests can drive them without a browser.
"""
from __future__ import annotations

from slm_course.widgets.attention import AttentionExplorer, CharacterTokenizer, DrawnAttention, train_demo_model
from slm_course.widgets.sampling import DrawnSampling, SamplingExplorer  # chapter 5

__all__ = ["AttentionExplorer", "CharacterTokenizer", "DrawnAttention", "train_demo_model", "SamplingExplorer", "DrawnSampling"]
