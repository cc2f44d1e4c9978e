"""`make lab` serves JupyterLab with the course notebooks and the widget extension, offline."""
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from slm_course.paths import repo_root


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode("utf-8", "replace")


@pytest.mark.slow
def test_make_lab_serves_the_notebooks(tmp_path):
    root = repo_root()
    port, token = free_port(), secrets.token_hex(16)
    args = f"--no-browser --port={port} --ServerApp.ip=127.0.0.1 --IdentityProvider.token={token}"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
               JUPYTER_DATA_DIR=str(tmp_path / "data"))
    had_work = (root / "work").exists()
    server = subprocess.Popen(["make", "-s", "lab", f"LAB_ARGS={args}"], cwd=root, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, page = get(f"{base}/lab?token={token}")
                break
            except OSError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"JupyterLab did not start:\n{server.stdout.read()}")
                time.sleep(0.5)
        assert status == 200
        # the widget manager is a prebuilt (federated) extension served from the venv, not a CDN
        config = json.loads(re.search(r'id="jupyter-config-data"[^>]*>\s*(\{.*?\})\s*</script>', page, re.S).group(1))
        extensions = {ext["name"] for ext in config.get("federated_extensions", [])}
        assert "@jupyter-widgets/jupyterlab-manager" in extensions
        status, listing = get(f"{base}/api/contents/notebooks?token={token}")
        names = {item["name"] for item in json.loads(listing)["content"]}
        expected = {p.name for p in (root / "notebooks").glob("*.ipynb")}
        assert expected and expected <= names
        first = sorted(expected)[0]
        status, body = get(f"{base}/api/contents/notebooks/{first}?token={token}&content=1")
        assert json.loads(body)["content"]["cells"]
        # the learner's work/ folder is served too (DESIGN: `make lab` shows work/)
        status, listing = get(f"{base}/api/contents?token={token}")
        assert {"notebooks", "work"} <= {item["name"] for item in json.loads(listing)["content"]}
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        if not had_work and (root / "work").is_dir() and not any((root / "work").iterdir()):
            (root / "work").rmdir()
