"""Load a script from ``benchmarks/`` as a module, so tests can run its functions at toy sizes."""
from __future__ import annotations

import importlib.util
from types import ModuleType

from slm_course.paths import repo_root


def load_benchmark(name: str) -> ModuleType:
    """``benchmarks/<name>.py`` imported as a module named ``<name>`` (the scripts are not a package)."""
    path = repo_root() / "benchmarks" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
