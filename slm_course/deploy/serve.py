"""Serving a GGUF model through llama.cpp's OpenAI-compatible server (chapter 10).

``llama-cpp-python``'s ``[server]`` extra runs ``python -m llama_cpp.server --model file.gguf``: an HTTP
server answering ``/v1/completions`` and ``/v1/chat/completions`` like OpenAI's API. It is an optional
extra (``make serve-extra``; it compiles llama.cpp, about 11 minutes on 2 cores, once).
:func:`llama_server` starts it on loopback at a free port and stops it again; :func:`complete` sends one
greedy completion request with the standard library's ``urllib`` (nothing leaves the machine).
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator


def llama_cpp_available() -> bool:
    """True when ``llama_cpp`` and its server's web stack can be imported (``make serve-extra``)."""
    return all(importlib.util.find_spec(name) is not None for name in ("llama_cpp", "uvicorn", "fastapi", "sse_starlette"))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 2.0) -> dict:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())


@contextlib.contextmanager
def llama_server(model_path: str | os.PathLike, *, n_threads: int = 2, n_ctx: int = 512,
                 startup_timeout: float = 120.0) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` on ``model_path`` at 127.0.0.1:<free port>; yields the base URL
    (``http://127.0.0.1:PORT``) once ``/v1/models`` answers, and stops the server on exit."""
    if not llama_cpp_available():
        raise RuntimeError("llama-cpp-python[server] is not installed: run `make serve-extra` (compiles llama.cpp once).")
    port = free_port()
    log = open(Path(model_path).with_suffix(".server.log"), "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", str(n_threads), "--n_ctx", str(n_ctx)],
        stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"llama_cpp.server exited with code {process.returncode}; see {log.name}.")
            try:
                _get(base + "/v1/models")
                break
            except (urllib.error.URLError, ConnectionError, OSError):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not answer within {startup_timeout} s; see {log.name}.")
                time.sleep(0.25)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def complete(base_url: str, prompt: str, max_tokens: int = 16, timeout: float = 120.0) -> dict:
    """One greedy completion (``temperature=0``) from an OpenAI-compatible server: the JSON response
    (``response["choices"][0]["text"]`` is the continuation)."""
    body = json.dumps({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0.0, "top_k": 1,
                       "repeat_penalty": 1.0, "seed": 0}).encode()
    request = urllib.request.Request(base_url + "/v1/completions", data=body,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - loopback only
        return json.loads(response.read())
