"""Device selection, seeding, the run profile and the environment line every notebook prints first.

Used from chapter 1 on. ``SLM_COURSE_DEVICE`` (cpu / cuda / mps) overrides the automatic choice;
``SLM_COURSE_PROFILE`` (fast / full) chooses how long chapters train.
"""
from __future__ import annotations

import os
import platform
import random

import torch

_DEVICES = ("cpu", "cuda", "mps")
_PROFILES = ("fast", "full")


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_device(prefer: str | None = None) -> torch.device:
    """The device to run on: ``prefer``, else ``$SLM_COURSE_DEVICE``, else cuda, then mps, then cpu.

    Raises ``ValueError`` for an unknown name and ``RuntimeError`` when the requested device is
    not available on this machine.
    """
    name = prefer or os.environ.get("SLM_COURSE_DEVICE") or ""
    name = name.strip().lower()
    if not name:
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind = name.split(":")[0]
    if kind not in _DEVICES:
        raise ValueError(
            f"Unknown device {name!r}: expected one of {', '.join(_DEVICES)}. "
            "Set SLM_COURSE_DEVICE to one of these, or unset it to choose automatically."
        )
    if kind == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(
            f"Device {name!r} was requested but CUDA is not available here. "
            "Unset SLM_COURSE_DEVICE or set it to cpu."
        )
    if kind == "mps" and not _mps_available():
        raise RuntimeError(
            f"Device {name!r} was requested but Apple's MPS backend is not available here. "
            "Unset SLM_COURSE_DEVICE or set it to cpu."
        )
    return torch.device(name)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device ``model``'s weights live on (its first parameter's; CPU for a model without any).

    Code that builds token ids for a model puts them here, so the same call runs on a CPU, a GPU or a Mac."""
    first = next(iter(model.parameters()), None)
    return first.device if first is not None else torch.device("cpu")


def profile() -> str:
    """``$SLM_COURSE_PROFILE``: ``fast`` (the default: every chapter within its time budget on a
    2-core CPU) or ``full`` (train longer, for learners with time or a GPU)."""
    name = os.environ.get("SLM_COURSE_PROFILE", "").strip().lower() or "fast"
    if name not in _PROFILES:
        raise ValueError(
            f"Unknown profile {name!r}: expected one of {', '.join(_PROFILES)}. "
            "Set SLM_COURSE_PROFILE to fast or full, or unset it."
        )
    return name


def by_profile(fast: int, full: int) -> int:
    """``fast`` under the default profile, ``full`` under ``SLM_COURSE_PROFILE=full`` (a step or token budget)."""
    return full if profile() == "full" else fast


def set_seed(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's random generators (all devices)."""
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:  # pragma: no cover - numpy is a dependency
        pass
    torch.manual_seed(seed)


def environment_report(packages: tuple[str, ...] = ("torch", "numpy", "tiktoken", "datasets", "transformers", "ipywidgets")) -> str:
    """One short block naming the device and the versions of Python, slm_course and key packages."""
    from importlib.metadata import PackageNotFoundError, version

    import slm_course

    device = pick_device()
    lines = [
        f"device: {device.type}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        f"python {platform.python_version()}, slm_course {slm_course.__version__}",
    ]
    found = []
    for name in packages:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"{name} (not installed)")
    lines.append(", ".join(found))
    return "\n".join(lines)
