"""Running one notebook in a child process: bubblewrap on Linux, process limits everywhere.

With ``bwrap`` the runner and its kernel see the root file system read-only, a private ``/tmp``
(a size-capped tmpfs holding the submission's folder, the only writable place), no network but
loopback, their own process namespace and no capabilities, and die with the grader. The other
submissions, the grader's outputs and the grader's home folder are covered by empty tmpfs mounts;
``$SLM_COURSE_HOME``, the Python environment and the package are bound back read-only.

Memory: ``RLIMIT_AS`` cannot be used (PyTorch reserves large virtual ranges it never touches), so
a watchdog in the grader sums the proportional set size (PSS, from ``/proc/<pid>/smaps_rollup``;
RSS where that is missing) of the sandbox's processes every 0.1 s and kills the sandbox past the
limit; it also counts processes (a fork bomb is killed past ``max_procs``) and enforces the
notebook's wall time. Without ``bwrap`` the same runner and watchdog run, but nothing hides
files or the network: the grader says so.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

RUNNER = Path(__file__).with_name("runner.py")  # run as a script: no package (and no torch) import
SANDBOX_WORKDIR = "/tmp/submission"


@dataclass
class Limits:
    """What one notebook may use. Times in seconds, sizes in bytes."""

    cell_timeout: float = 60.0
    notebook_timeout: float = 600.0
    memory: int = 4 << 30  # PSS of all the sandbox's processes together
    max_procs: int = 64
    output_limit: int = 1 << 20  # learner output per cell beyond which it is reported as truncated
    result_limit: int = 16 << 20  # bytes of returned values per problem
    disk: int = 512 << 20  # the private /tmp (tmpfs: counts as memory of the machine, not the process)

    def hard_wall(self, problems: int) -> float:
        """When the grader kills a sandbox that has not finished: notebook + grading time + start-up."""
        return self.notebook_timeout + (2 * problems + 1) * self.cell_timeout + 90.0


@dataclass
class RunOutcome:
    events: list[dict] = field(default_factory=list)
    killed: str = ""  # why the watchdog killed the sandbox ("" when it ended by itself)
    returncode: int | None = None
    stderr_tail: str = ""
    seconds: float = 0.0


def bwrap_path() -> str | None:
    """The ``bwrap`` executable, or ``None`` (``SLM_COURSE_NO_BWRAP=1`` pretends it is missing)."""
    if os.environ.get("SLM_COURSE_NO_BWRAP", "").strip() not in ("", "0"):
        return None
    return shutil.which("bwrap") if sys.platform.startswith("linux") else None


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def bwrap_command(bwrap: str, hide: list[Path], needed: list[Path], disk: int) -> list[str]:
    """The ``bwrap`` arguments: read-only root, private /tmp, ``hide`` covered, ``needed`` bound back.

    Folders to hide that hold a needed path are covered first, then the needed paths are bound
    back read-only, then the remaining folders are covered (so a submission folder inside a
    needed one stays hidden).
    """
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-all"]
    if os.geteuid() == 0:
        cmd += ["--cap-drop", "ALL"]
    cmd += ["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
            "--size", str(disk), "--tmpfs", "/tmp", "--size", str(64 << 20), "--tmpfs", "/dev/shm"]
    resolved_needed = sorted({p.resolve() for p in needed if p.exists()})
    folders = sorted({p.resolve() for p in hide if p.exists()} | {Path("/tmp").resolve()}, key=lambda p: len(p.parts))
    first = [f for f in folders if any(_is_within(n, f) for n in resolved_needed)]
    later = [f for f in folders if f not in first]
    for folder in first:
        if folder == Path("/"):
            continue  # never cover the root; the submission files themselves are covered below
        if folder != Path("/tmp").resolve():
            cmd += ["--tmpfs", str(folder)]
    for path in resolved_needed:
        if any(_is_within(path, f) for f in first):
            cmd += ["--ro-bind", str(path), str(path)]
    for folder in later:
        if not _is_within(folder, Path("/tmp").resolve()):  # the private /tmp hides those already
            cmd += ["--tmpfs", str(folder)]
    cmd += ["--dir", SANDBOX_WORKDIR, "--chdir", SANDBOX_WORKDIR]
    return cmd


def bwrap_works(bwrap: str, hide: list[Path], needed: list[Path]) -> str:
    """``""`` when ``bwrap`` can build the grader's sandbox here, else what it said."""
    try:
        done = subprocess.run(bwrap_command(bwrap, hide, needed, 1 << 20) + ["true"],
                              capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as error:
        return str(error)
    return "" if done.returncode == 0 else (done.stderr.strip() or f"exit code {done.returncode}")[:300]


def sandbox_env(workdir: str) -> dict[str, str]:
    """The whole environment the runner and kernel get: caches and config inside ``workdir``."""
    from slm_course.paths import course_home

    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "HOME": f"{workdir}/home", "TMPDIR": "/tmp" if workdir == SANDBOX_WORKDIR else f"{workdir}/tmp",
        "IPYTHONDIR": f"{workdir}/.ipython", "JUPYTER_RUNTIME_DIR": f"{workdir}/.jupyter/runtime",
        "JUPYTER_DATA_DIR": f"{workdir}/.jupyter/data", "JUPYTER_CONFIG_DIR": f"{workdir}/.jupyter/config",
        "JUPYTER_PATH": f"{workdir}/.jupyter/grader", "JUPYTER_PLATFORM_DIRS": "1",
        "MPLCONFIGDIR": f"{workdir}/.matplotlib", "MPLBACKEND": "Agg",
        "HF_HOME": f"{workdir}/.huggingface", "HF_DATASETS_CACHE": f"{workdir}/.huggingface/datasets",
        "XDG_CACHE_HOME": f"{workdir}/.cache", "XDG_CONFIG_HOME": f"{workdir}/.config",
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1", "PYTHONNOUSERSITE": "1",
        "SLM_COURSE_HOME": str(course_home()), "SLM_COURSE_ASSESSMENT": "1", "SLM_COURSE_DEVICE": "cpu",
        "SLM_COURSE_PROFILE": os.environ.get("SLM_COURSE_PROFILE", "fast"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "TOKENIZERS_PARALLELISM": "false",
    }
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        env["TIKTOKEN_CACHE_DIR"] = os.environ["TIKTOKEN_CACHE_DIR"]
    return env


def _memory_of(process: psutil.Process) -> int:
    try:
        with open(f"/proc/{process.pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return process.memory_info().rss
    except (psutil.Error, OSError):
        return 0


def _kill_tree(proc: subprocess.Popen, tree: list[psutil.Process]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for process in [*tree]:
        try:
            process.kill()
        except psutil.Error:
            pass
    try:
        proc.kill()
    except ProcessLookupError:
        pass


def run_in_sandbox(notebook_json: str, runner_args: list[str], limits: Limits, problems: int,
                   hide: list[Path], needed: list[Path], fallback_dir: Path | None,
                   cancel: threading.Event | None = None) -> RunOutcome:
    """Run the runner on ``notebook_json`` in a sandbox (or, with ``fallback_dir``, under limits only)."""
    bwrap = None if fallback_dir is not None else bwrap_path()
    workdir = SANDBOX_WORKDIR if fallback_dir is None else str(fallback_dir)
    from slm_course.grading.runner import PREFIX

    runner = [sys.executable, str(RUNNER), "--workdir", workdir, *runner_args]
    cmd = bwrap_command(bwrap, hide, needed, limits.disk) + runner if bwrap else runner
    outcome = RunOutcome()
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=sandbox_env(workdir), cwd=fallback_dir or "/", start_new_session=True)
    stderr_chunks: list[bytes] = []

    def read_stdout() -> None:
        max_line = limits.result_limit * 2 + 4096
        while True:
            line = proc.stdout.readline(max_line)
            if not line:
                return
            if not line.endswith(b"\n"):  # longer than any event can be: drop the rest of it
                while (more := proc.stdout.readline(max_line)) and not more.endswith(b"\n"):
                    pass
                continue
            text = line.decode("utf-8", "replace")
            if text.startswith(PREFIX):
                try:
                    outcome.events.append(json.loads(text[len(PREFIX):]))
                except ValueError:
                    pass

    def read_stderr() -> None:
        while chunk := proc.stderr.read(65536):
            stderr_chunks.append(chunk)
            while len(stderr_chunks) > 4:
                stderr_chunks.pop(0)

    readers = [threading.Thread(target=read_stdout, daemon=True), threading.Thread(target=read_stderr, daemon=True)]
    for reader in readers:
        reader.start()
    try:
        proc.stdin.write(notebook_json.encode("utf-8"))
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass
    hard_wall = limits.hard_wall(problems)
    try:
        root = psutil.Process(proc.pid)
    except psutil.Error:
        root = None
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)] if root else []
        except psutil.Error:
            tree = []
        elapsed = time.monotonic() - start
        if len(tree) > limits.max_procs + 3:  # bwrap, its pid 1 and the runner are ours
            outcome.killed = f"killed: it started more than {limits.max_procs} processes"
        elif sum(_memory_of(p) for p in tree) > limits.memory:
            outcome.killed = f"killed: it used more than {limits.memory / (1 << 30):.3g} GB of memory"
        elif elapsed > hard_wall:
            outcome.killed = f"killed: it ran past the grader's hard limit of {hard_wall:.0f} s"
        elif cancel is not None and cancel.is_set():
            outcome.killed = "interrupted"
        if outcome.killed:
            _kill_tree(proc, tree)
            break
        time.sleep(0.1)
    proc.wait()
    for reader in readers:
        reader.join(timeout=5)
    outcome.returncode = proc.returncode
    outcome.stderr_tail = b"".join(stderr_chunks)[-4000:].decode("utf-8", "replace")
    outcome.seconds = round(time.monotonic() - start, 2)
    return outcome
