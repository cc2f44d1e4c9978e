"""Helpers for the browser tests: `make lab` on a free port, and Debian's Chromium kept offline.

The browser is the system's Chromium (``/usr/bin/chromium``, installed by ``.ci/run``), driven by
the ``playwright`` package; playwright's own browser downloads are never used. Every request the
page makes to a host other than this machine is blocked and recorded, so a test can assert that
JupyterLab and the widgets load nothing from the internet (no JavaScript from a CDN).
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # belt and braces: no host name but this machine's resolves, whatever the page asks for
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]
LOOPBACK = {"127.0.0.1", "localhost", "::1", "[::1]"}
NETWORK_SCHEMES = {"http", "https", "ws", "wss", "ftp"}

# JupyterLab user settings for a test session: no autosave (the repository's notebooks stay
# untouched), every cell in the DOM (no virtual scrolling), no news or update prompts.
LAB_SETTINGS = {
    "@jupyterlab/docmanager-extension/plugin.jupyterlab-settings": {"autosave": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
}


def require_browser():
    """The playwright module's sync API, or skip the test saying what is missing."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent: install Debian's chromium (`apt-get install chromium`, as .ci/run does)")
    try:
        from playwright import sync_api
    except ImportError:
        pytest.skip("the playwright package is absent: pip install -r requirements.txt")
    return sync_api


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Lab:
    base: str  # http://127.0.0.1:PORT
    token: str
    process: subprocess.Popen

    def url(self, path: str) -> str:
        return f"{self.base}/{path.lstrip('/')}?token={self.token}"

    def served_path(self, repo_path: str) -> str:
        """The path under which the server shows a repository file (`make lab` may serve a sub-folder)."""
        parts = repo_path.split("/")
        for start in range(len(parts)):
            candidate = "/".join(parts[start:])
            try:
                with urllib.request.urlopen(self.url(f"api/contents/{candidate}") + "&content=0", timeout=10):
                    return candidate
            except OSError:
                continue
        raise AssertionError(f"JupyterLab does not serve {repo_path}")


@contextmanager
def make_lab(root: Path, scratch: Path, timeout: float = 90.0) -> Iterator[Lab]:
    """Run ``make -s lab`` in ``root`` on 127.0.0.1 with a token; Jupyter's own files go to ``scratch``.

    Config, runtime, data, settings, workspace, checkpoint and IPython folders all live in ``scratch``,
    so the server leaves nothing behind in the repository or the home folder (``make lab`` itself
    creates the git-ignored ``work/`` folder for learners' copies).
    """
    for name in ("config", "runtime", "data", "ipython", "workspaces", "checkpoints"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    for relative, values in LAB_SETTINGS.items():
        path = scratch / "settings" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))
    port, token = free_port(), secrets.token_hex(16)
    # JupyterLab checkpoints a notebook as soon as it opens it: keep those copies out of the repository too.
    args = (f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token} "
            f"--FileCheckpoints.root_dir={scratch / 'checkpoints'}")
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(scratch / "config"),
        JUPYTER_RUNTIME_DIR=str(scratch / "runtime"),
        JUPYTER_DATA_DIR=str(scratch / "data"),
        JUPYTERLAB_SETTINGS_DIR=str(scratch / "settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(scratch / "workspaces"),
        IPYTHONDIR=str(scratch / "ipython"),
    )
    log = (scratch / "lab.log").open("w")
    process = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=root, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}", token, process)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(lab.url("api/status"), timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`make lab` did not serve JupyterLab:\n{(scratch / 'lab.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield lab
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        log.close()


@dataclass
class OfflineGuard:
    """Blocks and records every request (HTTP or WebSocket) to a host other than this machine."""

    blocked: list[str] = field(default_factory=list)
    served: list[str] = field(default_factory=list)  # loopback requests let through
    failed: list[str] = field(default_factory=list)  # loopback requests that failed
    console_errors: list[str] = field(default_factory=list)

    @staticmethod
    def is_remote(url: str) -> bool:
        parts = urlsplit(url)
        return parts.scheme in NETWORK_SCHEMES and (parts.hostname or "") not in LOOPBACK

    def attach(self, context) -> None:
        def route(route_, request) -> None:
            if self.is_remote(request.url):
                self.blocked.append(request.url)
                route_.abort("blockedbyclient")
            else:
                self.served.append(request.url)
                route_.continue_()

        def websocket(ws) -> None:
            if self.is_remote(ws.url):
                self.blocked.append(ws.url)

        def page(page_) -> None:
            page_.on("websocket", websocket)
            page_.on("requestfailed", lambda request: None if self.is_remote(request.url)
                     else self.failed.append(f"{request.url} ({request.failure})"))
            page_.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))

        context.route("**/*", route)
        for existing in context.pages:
            page(existing)
        context.on("page", page)


@contextmanager
def offline_chromium(sync_api, profile: Path, viewport: dict | None = None) -> Iterator[tuple[object, OfflineGuard]]:
    """A headless Chromium context (fresh profile in ``profile``, window ``viewport``, 1400×1000 unless
    given) with an ``OfflineGuard`` attached."""
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile), executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS,
            service_workers="block", viewport=viewport or {"width": 1400, "height": 1000},
        )
        guard = OfflineGuard()
        guard.attach(context)
        try:
            yield context, guard
        finally:
            context.close()


def run_cells(expect, page, cells, indices: list[int], timeout_ms: int) -> object:
    """Run the notebook cells ``indices`` in the page as a learner does (select a cell, Shift+Enter) and
    wait until the last one has run; fail with the traceback if a cell raised. Returns the last cell.

    A fresh kernel numbers executions 1, 2, …, so the last cell shows ``[len(indices)]`` once all ran."""
    for index in indices:
        cells.nth(index).locator(".jp-InputPrompt").first.click()
        page.keyboard.press("Shift+Enter")
    last = cells.nth(indices[-1])
    done = last.locator(".jp-InputPrompt", has_text=f"[{len(indices)}]")
    error = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']", has_text="Traceback")
    expect(done.or_(error).first).to_be_visible(timeout=timeout_ms)
    assert error.count() == 0, f"a cell failed: {error.first.inner_text()[-1500:]}"
    return last
