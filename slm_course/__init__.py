"""slm_course: the support package of the slm-course notebooks.

Each chapter teaches a piece inline, then imports the canonical version from here:
``tokenizers``, ``data``, ``synthetic`` (chapter 1), ``attention`` and ``widgets`` (2),
``model`` (3), and so on. ``exercises`` holds the graded checks, ``assets`` the offline data.
"""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "by_profile", "environment_report", "pick_device", "profile", "set_seed"]


def __getattr__(name: str):
    # Imported lazily: ``slm_course.device`` imports torch (~2 s), which the CLI rarely needs.
    if name in ("by_profile", "environment_report", "pick_device", "profile", "set_seed"):
        from slm_course import device

        return getattr(device, name)
    raise AttributeError(f"module 'slm_course' has no attribute {name!r}")
