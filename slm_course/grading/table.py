"""The score table: a journal of finished rows, the CSV and JSON files, and the class summary.

Rows are appended to ``<out>.partial.jsonl`` as each notebook finishes (one line, flushed and
synced), so an interrupted run loses nothing and ``--resume`` grades only what is missing. The
CSV and JSON are written atomically at the end, rows sorted by student; the CSV holds no timings,
so grading the same inputs twice gives the same file.
"""
from __future__ import annotations

import csv
import io
import json
import os
import statistics
from pathlib import Path

from slm_course.exercises.build import write_atomic


def journal_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial.jsonl")


class Journal:
    """Append-only record of finished rows."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "w" if fresh else "a", encoding="utf-8")

    def add(self, row: dict) -> None:
        self._handle.write(json.dumps(row, sort_keys=True) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def read_journal(path: Path) -> list[dict]:
    """The rows an earlier run finished (a half-written last line is ignored)."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict) and "student" in row:
            rows.append(row)
    return rows


def exercise_columns(rows: list[dict]) -> list[str]:
    """Column keys for the exercises: ``q1`` … for one chapter, ``01:q1`` … when rows span chapters."""
    chapters = sorted({r["chapter"] for r in rows if r.get("chapter")})
    keys = []
    for chapter in chapters:
        names = sorted({n for r in rows if r.get("chapter") == chapter for n in r["exercises"]}, key=lambda n: (len(n), n))
        keys += [n if len(chapters) == 1 else f"{chapter}:{n}" for n in names]
    return keys


def _entry(row: dict, key: str) -> dict | None:
    chapter, _, name = key.rpartition(":")
    if chapter and row.get("chapter") != chapter:
        return None
    return row["exercises"].get(name)


def _number(value: float) -> str:
    return f"{value:.4f}".rstrip("0").rstrip(".")


def render_csv(rows: list[dict]) -> str:
    """One line per student: total, then points and the reason points were lost, per exercise."""
    keys = exercise_columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["student", "chapter", "total", "max_total"]
    for key in keys:
        header += [key, f"{key}_reason"]
    writer.writerow(header + ["notes", "file"])
    for row in sorted(rows, key=lambda r: r["student"]):
        line = [row["student"], row.get("chapter") or "", _number(row["total"]), _number(row["max_total"])]
        for key in keys:
            entry = _entry(row, key)
            line += [_number(entry["points"]), entry["reason"]] if entry else ["", ""]
        writer.writerow(line + ["; ".join(row["notes"]), row["file"]])
    return buffer.getvalue()


def summarize(rows: list[dict]) -> dict:
    """Mean and median total, and per exercise the share of students who got it fully right."""
    totals = [r["total"] for r in rows]
    summary = {
        "students": len(rows),
        "mean_total": round(statistics.fmean(totals), 4) if totals else 0.0,
        "median_total": round(statistics.median(totals), 4) if totals else 0.0,
        "max_total": max((r["max_total"] for r in rows), default=0.0),
        "pass_rate": {},
    }
    for key in exercise_columns(rows):
        entries = [e for e in (_entry(r, key) for r in rows) if e is not None]
        summary["pass_rate"][key] = round(sum(e["status"] == "correct" for e in entries) / len(entries), 4) if entries else 0.0
    return summary


def summary_text(summary: dict) -> str:
    rates = ", ".join(f"{k} {v:.0%}" for k, v in summary["pass_rate"].items()) or "no exercises graded"
    count = summary["students"]
    return (f"{count} notebook{'' if count == 1 else 's'}: mean {summary['mean_total']:g}, median {summary['median_total']:g} "
            f"of {summary['max_total']:g} points; fully right: {rates}")


def write_outputs(rows: list[dict], out: Path, json_out: Path | None, info: dict) -> dict:
    """Write the CSV (and JSON); return the summary."""
    rows = sorted(rows, key=lambda r: r["student"])
    summary = summarize(rows)
    write_atomic(out, render_csv(rows))
    if json_out is not None:
        write_atomic(json_out, json.dumps({**info, "summary": summary, "rows": rows}, indent=1, sort_keys=True) + "\n")
    return summary
