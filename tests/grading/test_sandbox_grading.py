"""`slm-course grade` end to end, in the bubblewrap sandbox, on a class of real hostile notebooks.

One grading run covers the acceptance: solved, empty, partly right and every hostile kind the issue
lists. Expected points come from running the course's own ``check`` in this process on the code
each exercise ends up with, not from the grader. Small limits keep it quick (cell 10 s, memory
1.5 GB, 32 processes). Skipped, with the reason, where ``bwrap`` is not installed.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from grading_notebooks import GRADED_AS, SOLVED, learner_notebook, write_class
from slm_course.exercises import ch00
from slm_course.exercises.testing import notebook_objects
from slm_course.grading.sandbox import bwrap_path
from slm_course.paths import course_home, repo_root

pytestmark = [
    pytest.mark.slow,
    pytest.mark.sandbox,
    pytest.mark.skipif(bwrap_path() is None, reason="bwrap (Debian package bubblewrap) is not installed; .ci/run installs it"),
]

LIMITS = ["--cell-timeout", "10", "--notebook-timeout", "120", "--memory", "1.5G", "--max-procs", "32"]
SLM_COURSE = str(Path(sys.executable).with_name("slm-course"))


def tree_digest(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with the sha256 of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def oracle_points(student: str) -> dict[str, float]:
    """Points per exercise from ``check`` run here on the code the exercise ends up with."""
    setup = notebook_objects("00", stub=True)
    points = {}
    for problem in (ch00.q1, ch00.q2, ch00.q3):
        source = GRADED_AS[student].get(problem.name)
        if source is None:
            points[problem.name] = 0.0
            continue
        namespace = dict(setup)
        exec(source, namespace)
        points[problem.name] = problem.check(namespace[problem.target], quiet=True).points
    return points


def grade(*args: str, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([SLM_COURSE, "grade", *args], cwd=cwd, capture_output=True, text=True,
                          env=env or os.environ.copy(), **kwargs)


def test_a_class_of_hostile_notebooks_gets_the_right_table(outside_tmp, tmp_path):
    canary = outside_tmp / "canary"
    canary.mkdir()
    (canary / "canary.txt").write_text("do not touch")
    paths = write_class(outside_tmp / "class", canary)
    guarded = {"canary": (canary, tree_digest(canary)), "class": (outside_tmp / "class", tree_digest(outside_tmp / "class")),
               "exercises": (repo_root() / "exercises", tree_digest(repo_root() / "exercises"))}
    out = outside_tmp / "out"
    out.mkdir()
    start = time.monotonic()
    result = grade(str(outside_tmp / "class"), "--out", str(out / "grades.csv"), "--json", str(out / "grades.json"),
                   "--jobs", "2", *LIMITS, cwd=tmp_path, timeout=900)
    elapsed = time.monotonic() - start
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sandbox: bubblewrap" in result.stderr
    report = json.loads((out / "grades.json").read_text())
    rows = {row["student"]: row for row in report["rows"]}
    assert sorted(rows) == sorted(paths), "one row per notebook, hostile ones included"
    print(f"\n{len(rows)} notebooks in {elapsed:.0f} s (2 jobs):")
    for name, row in sorted(rows.items()):
        print(f"  {name:18s} {row['total']:5.2f}/{row['max_total']:g}  {row['seconds']:5.1f} s  {'; '.join(row['notes'])[:90]}")

    for student in GRADED_AS:
        expected = oracle_points(student)
        got = {q: rows[student]["exercises"][q]["points"] for q in expected}
        assert got == pytest.approx(expected, abs=1e-4), (student, rows[student])
        assert rows[student]["total"] == pytest.approx(sum(expected.values()), abs=1e-4)
    assert rows["solved"]["total"] == 5 and rows["empty"]["total"] == 0
    assert 0 < rows["partial"]["total"] < 5
    notes = {name: " ".join(row["notes"]) for name, row in rows.items()}
    reasons = {name: {q: e["reason"] for q, e in row["exercises"].items()} for name, row in rows.items()}
    assert "time limit" in reasons["loops_forever"]["q2"]
    assert "memory" in notes["allocates"]
    assert "processes" in notes["forks"]
    assert "kernel died" in notes["os_exit"]
    for crashed in ("allocates", "forks", "os_exit"):  # a fresh kernel graded what came after the crash
        assert "q2 crashed the kernel" in notes[crashed] and "fresh kernel" in notes[crashed], notes[crashed]
        assert rows[crashed]["exercises"]["q2"]["points"] == 0 and rows[crashed]["exercises"]["q2"]["reason"]
        assert rows[crashed]["exercises"]["q3"]["status"] == "correct", rows[crashed]
    assert "RuntimeError" in reasons["raises_first"]["q1"]
    assert "output truncated" in notes["prints_megabytes"]
    assert "not valid JSON" in notes["not_json"]
    assert reasons["redefines_check"]["q1"] and rows["redefines_check"]["exercises"]["q1"]["points"] == 0
    assert reasons["partial"]["q2"].startswith("`softmax(")  # names the first input that failed
    # Notebooks that rebind the checks' cases or wrap the grader's collector earn nothing they did not
    # solve, and the row tells the instructor to read the cell; honest notebooks get no such note.
    for cheat in ("patches_cases", "wraps_collector"):
        assert rows[cheat]["total"] == 0, rows[cheat]
        assert "suspicious: exercise q1 touches" in notes[cheat] and "review by hand" in notes[cheat]
    assert "`_q.cases`" in notes["patches_cases"] and "globals()" in notes["wraps_collector"]
    assert all("collector" in reasons["wraps_collector"][q] for q in ("q1", "q2", "q3"))
    assert not [n for n in ("solved", "partial", "escapes", "loops_forever") if "suspicious" in notes[n]]

    # Nothing outside the sandboxes' temporary folders changed.
    for name, (folder, digest) in guarded.items():
        assert tree_digest(folder) == digest, f"{name} changed"
    assert not (repo_root() / "solutions" / "hacked-by-grading-test.txt").exists()
    assert not (course_home() / "hacked-by-grading-test.txt").exists()
    assert sorted(p.name for p in out.iterdir()) == ["grades.csv", "grades.json"]
    assert not [p for p in psutil.process_iter(["cmdline"]) if "slm_course/grading/runner.py" in " ".join(p.info["cmdline"] or [])]

    # The CSV says the same as the JSON, sorted by student, with a reason wherever points were lost.
    with open(out / "grades.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert [r["student"] for r in table] == sorted(paths)
    for line in table:
        row = rows[line["student"]]
        assert float(line["total"]) == pytest.approx(row["total"], abs=1e-4)
        for q, entry in row["exercises"].items():
            assert (line[f"{q}_reason"] != "") == (entry["points"] < entry["max_points"])
    summary = report["summary"]
    assert summary["students"] == len(paths)
    assert summary["pass_rate"]["q3"] == pytest.approx(
        sum(r["exercises"].get("q3", {}).get("status") == "correct" for r in rows.values()) / (len(paths) - 1), abs=1e-4)


def test_interrupted_run_keeps_finished_rows_and_resume_gives_the_same_table(outside_tmp, tmp_path):
    folder = outside_tmp / "class"
    folder.mkdir()
    for name, sources in {"ann": SOLVED, "ben": {"q1": SOLVED["q1"]}, "cat": {}}.items():
        (folder / f"{name}.ipynb").write_text(json.dumps(learner_notebook(**sources)))
    reference = grade(str(folder), "--out", str(outside_tmp / "reference.csv"), "--jobs", "2", *LIMITS, cwd=tmp_path, timeout=600)
    assert reference.returncode == 0, reference.stderr[-2000:]

    out = outside_tmp / "grades.csv"
    journal = outside_tmp / "grades.csv.partial.jsonl"
    proc = subprocess.Popen([SLM_COURSE, "grade", str(folder), "--out", str(out), "--jobs", "1", *LIMITS],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and (not journal.exists() or not journal.read_text().strip()):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)  # Ctrl-C while the second notebook runs
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr[-2000:]
    assert "--resume" in stderr and not out.exists()
    kept = [json.loads(line) for line in journal.read_text().splitlines()]
    assert [row["student"] for row in kept] == ["ann"]

    resumed = grade(str(folder), "--out", str(out), "--jobs", "1", "--resume", *LIMITS, cwd=tmp_path, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming: 1 of 3" in resumed.stderr
    assert out.read_text() == (outside_tmp / "reference.csv").read_text()  # same inputs, same table
    assert not journal.exists()


def test_without_bwrap_it_still_grades_and_says_isolation_is_off(tmp_path):
    path = tmp_path / "subs" / "dana.ipynb"
    path.parent.mkdir()
    path.write_text(json.dumps(learner_notebook(**SOLVED)))
    env = {**os.environ, "SLM_COURSE_NO_BWRAP": "1"}
    result = grade(str(path), "--out", str(tmp_path / "g.csv"), *LIMITS, cwd=tmp_path, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "file-system isolation is OFF" in result.stderr
    line = next(csv.DictReader(open(tmp_path / "g.csv", newline="")))
    assert line["student"] == "dana" and float(line["total"]) == 5


def test_every_other_chapters_solutions_get_full_marks(tmp_path):
    solved = [p for p in sorted((repo_root() / "solutions").glob("[0-9][0-9]_*.ipynb")) if not p.name.startswith("00_")]
    if not solved:
        pytest.skip("no chapter besides 00 has exercises yet")
    folder = tmp_path / "subs"
    folder.mkdir()
    for path in solved:
        shutil.copyfile(path, folder / path.name)
    result = grade(str(folder), "--out", str(tmp_path / "g.csv"), "--json", str(tmp_path / "g.json"), "--jobs", "2",
                   "--cell-timeout", "60", "--memory", "3G", cwd=tmp_path, timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    for row in json.loads((tmp_path / "g.json").read_text())["rows"]:
        assert row["max_total"] > 0 and row["total"] == row["max_total"], row
