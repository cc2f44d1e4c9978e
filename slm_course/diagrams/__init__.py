"""Figures the course draws with its own code, so they can be regenerated and restyled.

``roadmap(chapter)`` draws the Prepare → Build → Finetune → Evaluate → Deploy map with that
chapter's step highlighted; every chapter shows it in its opening cells. Concept diagrams for the
chapters (sliding windows, a BPE merge, attention's data flow, …) live beside it in this package.
"""
from __future__ import annotations

from slm_course.diagrams.roadmap import CHAPTERS, STEPS, roadmap, step_of

__all__ = ["CHAPTERS", "STEPS", "roadmap", "step_of"]
