"""The command line of ``slm-course grade`` and the loop that grades submissions in parallel."""
from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import shutil
import sys
import tempfile
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

import slm_course
from slm_course.exercises import load_chapter, problems_of
from slm_course.exercises.core import Problem
from slm_course.grading import sandbox, scoring, submissions, table, transplant
from slm_course.paths import PACKAGE_DIR, course_home

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgKMG]?)i?[bB]?\s*$")


def parse_size(text: str) -> int:
    """``"1.5G"`` -> bytes (K, M, G are powers of 1024)."""
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"Could not read the size {text!r}: write a number with an optional K, M or G, like 1.5G.")
    return int(float(match.group(1)) * {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[match.group(2).lower()])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``slm-course grade``."""
    parser.add_argument("submissions", nargs="+", metavar="SUBMISSION",
                        help="exercise notebooks, folders of them, or zips of a class's notebooks (one student per file name)")
    parser.add_argument("--chapter", help="grade as this chapter (default: the chapter stamped in each notebook)")
    parser.add_argument("--out", required=True, help="the CSV score table to write")
    parser.add_argument("--json", dest="json_out", help="also write the rows and the summary as JSON")
    parser.add_argument("--jobs", type=int, default=None, help="notebooks graded at once (default: half the CPU cores)")
    parser.add_argument("--cell-timeout", type=float, default=60.0, help="seconds per cell (default 60)")
    parser.add_argument("--notebook-timeout", type=float, default=600.0, help="seconds per notebook (default 600)")
    parser.add_argument("--memory", default="4G", help="memory per notebook, kernel included (default 4G)")
    parser.add_argument("--max-procs", type=int, default=64, help="processes per notebook (default 64)")
    parser.add_argument("--output-limit", default="1M", help="output per cell beyond which it is noted as truncated")
    parser.add_argument("--zip-limit", default="512M", help="largest total a zip may unpack to (default 512M)")
    parser.add_argument("--resume", action="store_true", help="keep the rows an interrupted run finished; grade the rest")
    parser.add_argument("--no-sandbox", action="store_true", help="do not use bubblewrap even where it is installed")


def _hidden_and_needed(args: argparse.Namespace, workdir: Path) -> tuple[list[Path], list[Path]]:
    hide = [workdir, Path.home(), Path(args.out).resolve().parent]
    if args.json_out:
        hide.append(Path(args.json_out).resolve().parent)
    for given in args.submissions:
        path = Path(given).resolve()
        hide.append(path if path.is_dir() else path.parent)
    needed = [Path(sys.prefix), Path(sys.base_prefix), PACKAGE_DIR, course_home()]
    needed += [Path(p) for p in sys.path if p and Path(p).is_dir() and "site-packages" in p]
    if os.environ.get("TIKTOKEN_CACHE_DIR"):
        needed.append(Path(os.environ["TIKTOKEN_CACHE_DIR"]))
    return hide, needed


class Grader:
    """Grades submissions: one row per notebook, whatever the notebook does."""

    def __init__(self, args: argparse.Namespace, workdir: Path, limits: sandbox.Limits) -> None:
        self.args, self.workdir, self.limits = args, workdir, limits
        self.use_bwrap = not args.no_sandbox and sandbox.bwrap_path() is not None
        self.hide, self.needed = _hidden_and_needed(args, workdir)
        self.cancel = threading.Event()
        self._chapters: dict[str, tuple[list[Problem], dict] | str] = {}

    def chapter(self, chapter: str) -> tuple[list[Problem], dict] | str:
        """The chapter's prepared problems and pristine notebook, or why it cannot be graded."""
        if chapter not in self._chapters:
            try:
                problems = problems_of(load_chapter(chapter))
                for problem in problems:
                    problem.prepare()  # expected values, before any learner code runs
                self._chapters[chapter] = (problems, transplant.pristine_notebook(chapter))
            except Exception as error:  # noqa: BLE001 - a broken chapter gives rows saying so, not a crash
                self._chapters[chapter] = f"chapter {chapter} cannot be graded: {error}"
        return self._chapters[chapter]

    def plan(self, sub: submissions.Submission) -> dict:
        """Everything known before running: the row skeleton, or a finished row when it cannot run."""
        row = {"student": sub.student, "file": sub.source, "sha256": sub.sha256(), "chapter": None,
               "total": 0.0, "max_total": 0.0, "exercises": {}, "notes": [], "seconds": 0.0}
        notebook, problem = submissions.read_notebook(sub.path)
        forced = f"{int(self.args.chapter):02d}" if self.args.chapter else None
        chapter, notes = submissions.chapter_of(notebook or {}, forced)
        row["chapter"], row["notes"] = chapter, notes
        if chapter is None:
            row["notes"].append(problem or "cannot tell which chapter this is: pass --chapter NN")
            return row
        loaded = self.chapter(chapter)
        if isinstance(loaded, str):
            row["notes"].append(loaded)
            return row
        problems, pristine = loaded
        row["max_total"] = float(sum(p.points for p in problems))
        if notebook is None:
            row["notes"].append(problem)
            row["exercises"] = {p.name: scoring.not_graded(p, f"not graded: {problem}") for p in problems}
            return row
        run_notebook, transplant_notes = transplant.transplant(pristine, notebook)
        row["notes"] += transplant_notes
        row["_run"] = (run_notebook, problems)
        return row

    def grade(self, row: dict, index: int) -> dict:
        """Run a planned row's notebook in the sandbox and score it; a grader fault becomes a note."""
        run_notebook, problems = row.pop("_run")
        try:
            return self._grade(row, index, run_notebook, problems)
        except Exception as error:  # noqa: BLE001 - one notebook must never stop the class's table
            row["notes"].append(f"the grader failed on this notebook ({type(error).__name__}: {error})"[:300])
            row["exercises"] = {p.name: scoring.not_graded(p, "not graded: the grader failed") for p in problems}
            return row

    def _grade(self, row: dict, index: int, run_notebook: dict, problems: list[Problem]) -> dict:
        """Run the notebook; when one exercise kills the kernel or the sandbox, run it again from a fresh
        kernel with that exercise's cell replaced by the course's stub, so one crash costs one exercise."""
        pristine = self.chapter(row["chapter"])[1]
        crashed: dict[str, str] = {}  # problem -> what its cell did
        notebook = run_notebook
        seconds = 0.0
        while True:
            outcome, failure = self._run_once(row, index, notebook, problems)
            seconds += outcome.seconds
            results, notes = scoring.exercise_results(problems, outcome.events, failure)
            culprit = crash_culprit(outcome, failure, notebook)
            if culprit is None or culprit in crashed or len(crashed) >= len(problems):
                break
            done = [e.get("reason") for e in outcome.events if e.get("event") == "done" and e.get("reason")]
            crashed[culprit] = failure or (done[0] if done else "the kernel stopped")
            notebook = transplant.stub_exercises(notebook, pristine, set(crashed))
            index += 100_000  # a fresh work folder for the rerun
        for name, why in crashed.items():
            problem = next(p for p in problems if p.name == name)
            results[name] = scoring.not_graded(problem, f"not graded: {why}")
        if crashed:
            names = ", ".join(crashed)
            notes = [n for n in notes if n not in crashed.values()]
            notes.insert(0, f"{names} crashed the kernel ({'; '.join(crashed.values())}); a fresh kernel ran the "
                            f"setup again and graded the other exercises with {names} as the course's stub")
        row["exercises"] = results
        row["notes"] += notes
        row["total"] = round(sum(r["points"] for r in results.values()), 4)
        row["seconds"] = round(seconds, 2)
        return row

    def _run_once(self, row: dict, index: int, run_notebook: dict, problems: list[Problem]):
        """One sandboxed run of ``run_notebook``: the outcome and why it failed ("" when it did not)."""
        limits = self.limits
        runner_args = ["--chapter", row["chapter"], "--problems", ",".join(p.name for p in problems),
                       "--nonce", secrets.token_hex(8), "--cell-timeout", str(limits.cell_timeout),
                       "--notebook-timeout", str(limits.notebook_timeout), "--output-limit", str(limits.output_limit),
                       "--result-limit", str(limits.result_limit)]
        fallback = None
        if not self.use_bwrap:
            fallback = self.workdir / f"run-{index:06d}"
            fallback.mkdir()
        outcome = sandbox.run_in_sandbox(json.dumps(run_notebook), runner_args, limits, len(problems),
                                         self.hide, self.needed, fallback, self.cancel)
        if fallback is not None:
            shutil.rmtree(fallback, ignore_errors=True)
        failure = outcome.killed
        if not failure and not any(e.get("event") == "done" for e in outcome.events):
            failure = f"the sandbox ended early (exit code {outcome.returncode})"
            last = outcome.stderr_tail.strip().splitlines()[-1:] if outcome.stderr_tail.strip() else []
            if last and not outcome.events:
                failure += f": {last[0][:160]}"
        return outcome, failure


# Kills that one exercise's code can cause and a rerun without it can avoid (not the notebook's wall time,
# not an interrupted grader).
_RECOVERABLE_KILLS = ("processes", "memory")


def crash_culprit(outcome: sandbox.RunOutcome, failure: str, notebook: dict) -> str | None:
    """The exercise whose cell (or whose check) killed the kernel or the sandbox, or None.

    The runner reports each cell when it ends, so the culprit of a sandbox kill is the exercise whose
    check had not been reported yet, or else the cell after the last one reported.
    """
    events = outcome.events
    for event in events:  # the runner saw the kernel die in an exercise cell or in its check
        if event.get("status") == "dead" and event.get("problem"):
            return event["problem"]
    if not outcome.killed or not any(word in outcome.killed for word in _RECOVERABLE_KILLS):
        return None
    cells = [e for e in events if e.get("event") == "cell" and e.get("index", -1) >= 0]
    graded = {e.get("problem") for e in events if e.get("event") == "grade"}
    if cells and cells[-1].get("kind") == "exercise" and cells[-1].get("problem") not in graded:
        return cells[-1]["problem"]  # killed while its check ran
    next_index = cells[-1]["index"] + 1 if cells else 0
    code = [c for c in notebook["cells"] if c.get("cell_type") == "code"]
    if next_index < len(code):
        meta = code[next_index].get("metadata", {}).get("slm_grade", {})
        if meta.get("kind") == "exercise":
            return meta.get("problem") or None
    return None


def run(args: argparse.Namespace) -> int:
    """Grade every submission; write the table. Exit 0 whenever the table is written."""
    if args.cell_timeout <= 0 or args.notebook_timeout <= 0:
        raise ValueError("--cell-timeout and --notebook-timeout must be positive numbers of seconds.")
    if args.chapter is not None and not str(args.chapter).isdigit():
        raise ValueError(f"--chapter takes a chapter number like 01, not {args.chapter!r}.")
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs is how many notebooks to grade at once: give 1 or more, not {args.jobs} "
                         "(leave it out for half the CPU cores).")
    jobs = args.jobs if args.jobs is not None else max(1, (os.cpu_count() or 2) // 2)
    limits = sandbox.Limits(cell_timeout=args.cell_timeout, notebook_timeout=args.notebook_timeout,
                            memory=parse_size(args.memory), max_procs=args.max_procs,
                            output_limit=parse_size(args.output_limit))
    out = Path(args.out)
    json_out = Path(args.json_out) if args.json_out else None
    check_output_paths(args.submissions, [("--out", out)] + ([("--json", json_out)] if json_out else []))
    workdir = Path(tempfile.mkdtemp(prefix="slm-grade-"))
    try:
        return _grade_all(args, out, json_out, workdir, limits, jobs)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def check_output_paths(inputs: list[str], outputs: list[tuple[str, Path]]) -> None:
    """Refuse, before grading, an output that is a folder, lies in a missing folder, or would overwrite a submission."""
    given = [Path(p).resolve() for p in inputs]
    seen: dict[Path, str] = {}
    for option, path in outputs:
        target = path.resolve()
        if target.is_dir():
            raise ValueError(f"{option} {path} is a folder: give the file to write, like {path / 'grades.csv'}.")
        if not target.parent.is_dir():
            raise ValueError(f"{option} {path}: the folder {target.parent} does not exist; create it first.")
        for source in given:
            if target == source or (source.is_dir() and source in target.parents):
                where = "is one of the submissions" if target == source else f"is inside the submission folder {source}"
                raise ValueError(f"{option} {path} {where}: write the table somewhere else, so no learner's "
                                 "notebook is overwritten and the table is not graded as a submission.")
        if target in seen:
            raise ValueError(f"{option} and {seen[target]} both name {path}: give them different files.")
        seen[target] = option


def _announce_sandbox(grader: Grader) -> None:
    """Say which isolation is in force; refuse a bwrap that is installed but cannot work here."""
    if grader.use_bwrap:
        trouble = sandbox.bwrap_works(sandbox.bwrap_path(), grader.hide, grader.needed)
        if trouble:
            raise ValueError(f"bwrap is installed but cannot build the sandbox here ({trouble}). Fix that, or pass "
                             "--no-sandbox to grade without file-system isolation.")
        print("sandbox: bubblewrap (read-only system, private /tmp, no network, own process namespace)", file=sys.stderr)
    else:
        why = "--no-sandbox was given" if grader.args.no_sandbox else "bwrap (package `bubblewrap`) is not installed"
        print(f"WARNING: file-system isolation is OFF ({why}): notebooks run with time, memory and process "
              "limits only, and can read and write what this user can.", file=sys.stderr)


def _resumed_rows(journal_file: Path, subs: list[submissions.Submission]) -> dict[str, dict]:
    """Rows an interrupted run finished whose notebook has not changed since."""
    hashes = {s.student: s.sha256() for s in subs}
    done = {row["student"]: row for row in table.read_journal(journal_file)
            if hashes.get(row["student"]) == row.get("sha256")}
    print(f"resuming: {len(done)} of {len(subs)} notebooks already graded", file=sys.stderr)
    return done


def _grade_all(args, out: Path, json_out: Path | None, workdir: Path, limits: sandbox.Limits, jobs: int) -> int:
    from tqdm.auto import tqdm

    subs = submissions.collect(args.submissions, workdir / "inputs", parse_size(args.zip_limit))
    grader = Grader(args, workdir, limits)
    _announce_sandbox(grader)
    journal_file = table.journal_path(out)
    done = _resumed_rows(journal_file, subs) if args.resume else {}
    journal = table.Journal(journal_file, fresh=not args.resume)  # resumed rows stay in the journal
    pending = [s for s in subs if s.student not in done]
    versions = set()
    rows = dict(done)
    interrupted = False
    bar = tqdm(total=len(pending), desc="grading", unit="notebook", file=sys.stderr, disable=None)
    try:
        planned = []
        for sub in pending:
            row = grader.plan(sub)
            versions.update(n for n in row["notes"] if n.startswith("made with course version"))
            if "_run" in row:
                planned.append(row)
            else:
                rows[row["student"]] = row
                journal.add(row)
                bar.update()
        with ThreadPoolExecutor(max_workers=jobs) as pool:
            futures: dict[Future, dict] = {}
            queue = list(enumerate(planned))
            try:
                while queue or futures:
                    while queue and len(futures) < jobs:
                        index, row = queue.pop(0)
                        futures[pool.submit(grader.grade, row, index)] = row
                    finished, _ = wait(futures, timeout=0.5, return_when=FIRST_COMPLETED)
                    for future in finished:
                        futures.pop(future)
                        row = future.result()
                        rows[row["student"]] = row
                        journal.add(row)
                        bar.update()
            except KeyboardInterrupt:
                interrupted = True
                grader.cancel.set()
                queue.clear()
    except KeyboardInterrupt:
        interrupted = True
        grader.cancel.set()
    finally:
        bar.close()
        journal.close()
    for note in sorted(versions):
        print(f"warning: a submission was {note}", file=sys.stderr)
    if interrupted:
        print(f"\ninterrupted: {len(rows)} of {len(subs)} notebooks graded and kept in {journal_file}; "
              f"run the same command with --resume to grade the rest.", file=sys.stderr)
        return 130
    info = {"course_version": slm_course.__version__, "sandbox": "bubblewrap" if grader.use_bwrap else "off",
            "limits": {"cell_timeout_s": limits.cell_timeout, "notebook_timeout_s": limits.notebook_timeout,
                       "memory_bytes": limits.memory, "max_procs": limits.max_procs}}
    summary = table.write_outputs(list(rows.values()), out, json_out, info)
    journal_file.unlink(missing_ok=True)
    times = [r["seconds"] for r in rows.values() if r["seconds"]]
    print(table.summary_text(summary))
    if times:
        print(f"time per notebook: mean {sum(times) / len(times):.1f} s, longest {max(times):.1f} s (jobs={jobs})")
    print(f"wrote {out}" + (f" and {json_out}" if json_out else ""))
    return 0
