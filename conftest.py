"""Root pytest configuration: the same environment for `make test`, `pytest` and nbval kernels.

Kernels started by nbval inherit this process's environment, so what is set here reaches them too.
"""
from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent

os.environ.setdefault("SLM_COURSE_HOME", str(ROOT / ".cache"))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(Path(os.environ["SLM_COURSE_HOME"]) / "tiktoken"))
# Hugging Face libraries stay offline and keep their caches out of the user's home folder.
os.environ.setdefault("HF_HOME", str(Path(os.environ["SLM_COURSE_HOME"]) / "huggingface"))
# torch.compile's generated code (chapter 10's compiled decoding) is cached in ours, not in a shared /tmp folder.
os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(Path(os.environ["SLM_COURSE_HOME"]) / "torchinductor"))
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("PYTHONHASHSEED", "0")
os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.pop("SLM_COURSE_ASSESSMENT", None)
os.environ.pop("SLM_COURSE_DEVICE", None)
os.environ.setdefault("SLM_COURSE_PROFILE", "fast")

# Learners' copies and generated exercise notebooks are not collected.
collect_ignore = ["exercises", "work", ".venv", ".cache", "benchmarks", "build"]
collect_ignore_glob = ["*.ipynb_checkpoints*"]
