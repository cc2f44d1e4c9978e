"""Builds that several chapters share, made deterministically once and cached under ``models/``.

``make test`` runs ``slm-course build-shared`` before pytest, so notebooks never print build output.
Each entry maps a name to a zero-argument function that builds (or finds) its artifact and returns
its path. Chapters register theirs here.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable


def _course_bpe() -> Path:
    from slm_course.tokenizers import course_bpe_path

    return course_bpe_path()


def _tiny_pretrained() -> Path:
    from slm_course.train.pretrained import build_tiny_pretrained

    return build_tiny_pretrained()


BUILDS: dict[str, Callable[[], Path]] = {
    "course-bpe": _course_bpe,
    "tiny-pretrained": _tiny_pretrained,
    "instruct-finetunes": lambda: __import__("slm_course.finetune.shared_finetunes",
                                             fromlist=["build_instruct_finetunes"]).build_instruct_finetunes(),
    "smollm2": lambda: __import__("slm_course.weights.smollm2", fromlist=["build_smollm2"]).build_smollm2(),
}


def build_all(names: list[str] | None = None) -> dict[str, Path]:
    """Build the named shared artifacts (default: all); return where each lies."""
    names = names or list(BUILDS)
    unknown = [n for n in names if n not in BUILDS]
    if unknown:
        raise ValueError(f"Unknown shared build(s) {', '.join(unknown)}; known: {', '.join(BUILDS)}.")
    built = {}
    for name in names:
        built[name] = BUILDS[name]()
        print(f"{name}: {built[name]}")
    return built
