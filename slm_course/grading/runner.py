"""Runs one transplanted notebook inside the sandbox: ``python .../slm_course/grading/runner.py``.

The grader starts this in a fresh process (inside bubblewrap where available) with the notebook on
stdin. It starts a fresh IPython kernel over loopback, runs the code cells one by one with a time
limit per cell and per notebook. Its first cell, before any learner cell, installs the collector of
:mod:`slm_course.grading.kernel_side` under a random name with a random key; after each exercise
cell and once more at the end it asks that collector what the learner's functions return on each
check's inputs, and accepts the results file only with the key's HMAC. It reports to the grader
as JSON lines on stdout, prefixed by ``PREFIX``; learner output is counted and thrown away, never
parsed. It is run as a script and imports only the standard library and jupyter_client, so
neither the package nor PyTorch loads here.
"""
from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import queue
import resource
import secrets
import string
import subprocess
import sys
import time
from pathlib import Path

if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)  # run as a script: do not let this folder's modules shadow others

PREFIX = "@slm-grade "
INTERRUPT_GRACE_S = 5.0
TAG_BYTES = 32  # HMAC-SHA256 at the end of each results file


def _harden() -> None:
    """Limits this process and the kernel inherit; keep the kernel from reading our memory or pipes."""
    for limit, value in ((resource.RLIMIT_CORE, 0), (resource.RLIMIT_NOFILE, 1024)):
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass
    try:  # not dumpable: another process of ours cannot ptrace us or open /proc/<pid>/fd (Linux)
        import ctypes

        ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 4
    except (OSError, AttributeError):
        pass


class Reporter:
    """Writes events to the grader through a private copy of stdout; stray prints go to stderr."""

    def __init__(self) -> None:
        self._fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr

    def __call__(self, **event) -> None:
        data = (PREFIX + json.dumps(event, sort_keys=True) + "\n").encode()
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view):]


def _write_kernelspec(folder: Path) -> None:
    """Our own kernelspec (this Python, ipykernel) so no installed kernelspec is consulted."""
    spec = folder / "kernels" / "python3"
    spec.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "grader", "language": "python"}))


class Kernel:
    """A kernel and its client; ``execute`` runs one cell with a time limit and counts its output."""

    def __init__(self, workdir: Path, startup_timeout: float) -> None:
        from jupyter_client import KernelManager

        self.km = KernelManager(kernel_name="python3")
        self.km.start_kernel(cwd=str(workdir), stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=startup_timeout)

    def alive(self) -> bool:
        return self.km.is_alive()

    def execute(self, code: str, timeout: float, output_limit: int, store_history: bool = True) -> dict:
        """Run ``code``; ``status`` is ok, error, timeout or dead.

        The grader's own cells run with ``store_history=False``: their source (which names the
        collector and holds its key) stays out of ``In``, ``_ih`` and the history database.
        """
        start = time.monotonic()
        msg_id = self.kc.execute(code, store_history=store_history, allow_stdin=False, stop_on_error=False)
        deadline = start + timeout
        result = {"status": "ok", "error": "", "output_bytes": 0}
        interrupted_at = None
        while True:
            now = time.monotonic()
            if interrupted_at is None and now > deadline:
                self.km.interrupt_kernel()
                interrupted_at = now
                result["status"] = "timeout"
            if interrupted_at is not None and now > interrupted_at + INTERRUPT_GRACE_S:
                self.shutdown()
                result["status"] = "dead"
                result["error"] = "it did not stop when interrupted"
                break
            try:
                msg = self.kc.get_iopub_msg(timeout=0.25)
            except queue.Empty:
                if not self.alive():
                    result["status"] = "dead"
                    break
                continue
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = msg["msg_type"], msg["content"]
            if kind == "stream":
                result["output_bytes"] += len(content.get("text", ""))
            elif kind in ("display_data", "execute_result", "update_display_data"):
                result["output_bytes"] += sum(len(str(v)) for v in content.get("data", {}).values())
            elif kind == "error" and result["status"] == "ok":
                result["status"] = "error"
                result["error"] = f"{content.get('ename', 'Error')}: {content.get('evalue', '')}"[:300]
            elif kind == "status" and content.get("execution_state") == "idle":
                break
        result["output_truncated"] = result["output_bytes"] > output_limit
        result["seconds"] = round(time.monotonic() - start, 3)
        return result

    def shutdown(self) -> None:
        try:
            self.kc.stop_channels()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.km.shutdown_kernel(now=True)
        except Exception:  # noqa: BLE001
            pass


def _grade(kernel: Kernel, report: Reporter, args, hook: Hook, problem: str, stage: str, results: Path) -> None:
    out = results / f"{problem}-{stage}.pt"
    out.unlink(missing_ok=True)
    code = f"{hook.name}({hook.key!r}, {problem!r}, {str(out)!r})"
    run = kernel.execute(code, args.cell_timeout, args.output_limit, store_history=False)
    if run["status"] == "error" and (hook.name in run["error"] or "CollectorMisuse" in run["error"]):
        run["error"] = "the notebook removed, replaced or wrapped the grader's collector"
    event = {"event": "grade", "problem": problem, "stage": stage, "status": run["status"], "error": run["error"]}
    if run["status"] == "ok":
        try:
            size = out.stat().st_size
            if size > args.result_limit + TAG_BYTES:
                event.update(status="error", error=f"the values returned were larger than {args.result_limit} bytes")
            else:
                data = out.read_bytes()
                body, tag = data[:-TAG_BYTES], data[-TAG_BYTES:]
                if len(data) <= TAG_BYTES or not hmac.compare_digest(
                        hmac.new(bytes.fromhex(hook.key), body, hashlib.sha256).digest(), tag):
                    event.update(status="error", error="the results were not written by the grader's collector")
                else:
                    event["payload"] = base64.b64encode(body).decode()
        except OSError:
            event.update(status="error", error="the kernel wrote no result")
    report(**event)


class Hook:
    """The collector's name in the notebook (random letters, no fixed prefix) and its secret key."""

    def __init__(self) -> None:
        letters = string.ascii_letters
        self.name = "".join(secrets.choice(letters) for _ in range(6)) + secrets.token_hex(6)
        self.key = secrets.token_hex(32)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--chapter", required=True)
    parser.add_argument("--problems", required=True, help="comma-separated, e.g. q1,q2")
    parser.add_argument("--nonce", required=True)
    parser.add_argument("--cell-timeout", type=float, required=True)
    parser.add_argument("--notebook-timeout", type=float, required=True)
    parser.add_argument("--output-limit", type=int, required=True)
    parser.add_argument("--result-limit", type=int, required=True)
    parser.add_argument("--max-notebook-bytes", type=int, default=32 << 20)
    args = parser.parse_args(argv)
    _harden()
    report = Reporter()
    started = time.monotonic()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    os.chdir(workdir)
    text = sys.stdin.buffer.read(args.max_notebook_bytes + 1).decode("utf-8", "replace")
    (workdir / "submission.ipynb").write_text(text, encoding="utf-8")
    for name in ("HOME", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "MPLCONFIGDIR", "HF_HOME", "XDG_CACHE_HOME"):
        if os.environ.get(name):
            Path(os.environ[name]).mkdir(parents=True, exist_ok=True)
    _write_kernelspec(Path(os.environ.get("JUPYTER_PATH", str(workdir / ".jupyter-path"))))
    results = Path(os.environ.get("TMPDIR", "/tmp")) / f".slm-grade-{args.nonce}"
    results.mkdir(mode=0o700, parents=True, exist_ok=True)
    cells = [c for c in json.loads(text)["cells"] if c.get("cell_type") == "code"]
    problems = [p for p in args.problems.split(",") if p]
    hook = Hook()  # drawn here, never on a command line the kernel could read
    try:
        kernel = Kernel(workdir, startup_timeout=max(60.0, args.cell_timeout))
    except Exception as error:  # noqa: BLE001
        report(event="done", reason=f"the kernel did not start ({type(error).__name__}: {error})"[:300])
        return 0
    deadline = started + args.notebook_timeout
    # Before any learner cell: build the cases and the collector, bound under a random name.
    setup = (f"__import__('slm_course.grading.kernel_side', fromlist=['install']).install("
             f"{args.chapter!r}, {','.join(problems)!r}, {hook.name!r}, {hook.key!r}, "
             f"__import__('IPython').get_ipython().user_ns)")
    run = kernel.execute(setup, max(60.0, args.cell_timeout), args.output_limit, store_history=False)
    report(event="cell", index=-1, kind="grader", problem="", **run)
    stopped = "" if run["status"] == "ok" else f"the grader's setup failed ({run['status']}: {run['error']})"
    for index, cell in enumerate(cells if not stopped else []):
        meta = cell.get("metadata", {}).get("slm_grade", {})
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            stopped = f"the notebook time limit ({args.notebook_timeout:g} s) was reached before code cell {index + 1}"
            break
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else source
        run = kernel.execute(source, min(args.cell_timeout, remaining), args.output_limit)
        report(event="cell", index=index, kind=meta.get("kind", ""), problem=meta.get("problem", ""), **run)
        if run["status"] == "dead":
            where = f"the {meta['problem']} cell" if meta.get("problem") else f"code cell {index + 1}"
            stopped = f"the kernel died while running {where}" + (f" ({run['error']})" if run["error"] else "")
            break
        if meta.get("kind") == "exercise" and meta.get("problem") in problems:
            _grade(kernel, report, args, hook, meta["problem"], "interim", results)
    if kernel.alive():
        for problem in problems:
            if not kernel.alive():
                break
            _grade(kernel, report, args, hook, problem, "final", results)
    report(event="done", reason=stopped)
    kernel.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
