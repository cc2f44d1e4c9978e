"""Figures the course draws with its own code, so they can be regenerated and restyled.

``roadmap(chapter)`` draws the Prepare → Build → Finetune → Evaluate → Deploy map with that
chapter's step highlighted; every chapter shows it in its opening cells. Concept diagrams live beside
it, one module per chapter (``ch01.sliding_windows``, ``ch02.attention_flow``, ``ch03.rope_rotations``,
…, ``ch10.int4_group_packing``), drawn with the shared helpers of ``drawing`` (boxes, arrows, token strips, coloured matrices),
which later chapters reuse. Each returns a matplotlib ``Figure`` with ``show=False``; with
``show=True`` (the default) it is displayed once in the notebook.
"""
from __future__ import annotations

from slm_course.diagrams import ch01, ch02, ch03, ch04, ch05, ch06, ch07, ch08, ch09, ch10, drawing
from slm_course.diagrams.ch10 import float_formats, int4_group_packing, memory_breakdown, weight_only_linear
from slm_course.diagrams.roadmap import CHAPTERS, STEPS, roadmap, step_of

__all__ = ["CHAPTERS", "STEPS", "ch01", "ch02", "ch03", "ch04", "ch05", "ch06", "ch07", "ch08", "ch09", "ch10", "drawing",
           "float_formats", "int4_group_packing", "memory_breakdown", "roadmap", "step_of", "weight_only_linear"]
