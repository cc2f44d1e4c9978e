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

from slm_course.paths import atomic_write_text


def journal_path(out: Path) -> Path:
    """Where the finished rows of a run writing ``out`` are journalled: ``<out>.partial.jsonl``."""
    return out.with_name(out.name + ".partial.jsonl")


class Journal:
    """Append-only record of finished rows."""

    def __init__(self, path: Path, fresh: bool) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(path, "w" if fresh else "a", encoding="utf-8")

    def add(self, row: dict) -> None:
        """Append ``row`` as one JSON line and sync it to disk, so a crash right after keeps it."""
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


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(cell: str) -> str:
    """``cell`` with a ``'`` in front when a spreadsheet would read it as a formula (``=``, ``+``, ``-``, ``@``).

    Student names come from file names and reasons quote learner values, so a notebook called
    ``=HYPERLINK(...).ipynb`` must not become a live formula when the instructor opens the CSV.
    """
    return "'" + cell if cell.startswith(_FORMULA_START) else cell


def render_csv(rows: list[dict]) -> str:
    """One line per student: total, then points and the reason points were lost, per exercise."""
    keys = exercise_columns(rows)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = ["student", "chapter", "total", "max_total"]
    for key in keys:
        header += [key, f"{key}_reason"]
    writer.writerow([csv_safe(h) for h in header] + ["notes", "file"])
    for row in sorted(rows, key=lambda r: r["student"]):
        line = [row["student"], row.get("chapter") or "", _number(row["total"]), _number(row["max_total"])]
        for key in keys:
            entry = _entry(row, key)
            line += [_number(entry["points"]), entry["reason"]] if entry else ["", ""]
        writer.writerow([csv_safe(str(c)) for c in line + ["; ".join(row["notes"]), row["file"]]])
    return buffer.getvalue()


def _chapter_key(row: dict) -> str:
    return row.get("chapter") or "unknown"


def _stats(totals: list[float]) -> tuple[float, float]:
    if not totals:
        return 0.0, 0.0
    return round(statistics.fmean(totals), 4), round(statistics.median(totals), 4)


def summarize(rows: list[dict]) -> dict:
    """Per chapter: mean and median total out of that chapter's points, and each exercise's pass rate.

    Chapters are worth different points, so totals are only averaged within a chapter; across
    chapters the summary gives the mean and median percentage. ``mean_total``, ``median_total``
    and ``max_total`` also sit at the top when every row is of one chapter. ``pass_rate`` is the
    share of students with each exercise fully right, keyed like the CSV's columns.
    """
    percents = [100 * r["total"] / r["max_total"] for r in rows if r["max_total"]]
    mean_percent, median_percent = _stats(percents)
    summary: dict = {"students": len(rows), "mean_percent": mean_percent, "median_percent": median_percent,
                     "chapters": {}, "pass_rate": {}}
    for key in exercise_columns(rows):
        entries = [e for e in (_entry(r, key) for r in rows) if e is not None]
        summary["pass_rate"][key] = round(sum(e["status"] == "correct" for e in entries) / len(entries), 4) if entries else 0.0
    for chapter in sorted({_chapter_key(r) for r in rows}):
        mine = [r for r in rows if _chapter_key(r) == chapter]
        mean, median = _stats([r["total"] for r in mine])
        rates = {k.rpartition(":")[2]: v for k, v in summary["pass_rate"].items()
                 if chapter != "unknown" and (":" not in k or k.startswith(chapter + ":"))}
        summary["chapters"][chapter] = {"students": len(mine), "mean_total": mean, "median_total": median,
                                        "max_total": max((r["max_total"] for r in mine), default=0.0), "pass_rate": rates}
    if len(summary["chapters"]) == 1:
        only = next(iter(summary["chapters"].values()))
        summary.update(mean_total=only["mean_total"], median_total=only["median_total"], max_total=only["max_total"])
    return summary


def summary_text(summary: dict) -> str:
    """The summary as printed at the end of a run: one line per chapter (points out of that chapter's)."""
    count = summary["students"]
    lines = [f"{count} notebook{'' if count == 1 else 's'}"
             + (f": mean {summary['mean_percent']:g}%, median {summary['median_percent']:g}% of the points"
                if len(summary["chapters"]) > 1 else "")]
    for chapter, part in summary["chapters"].items():
        rates = ", ".join(f"{k} {v:.0%}" for k, v in part["pass_rate"].items()) or "no exercises graded"
        n = part["students"]
        name = "unknown chapter" if chapter == "unknown" else f"chapter {chapter}"
        lines.append(f"  {name} ({n} notebook{'' if n == 1 else 's'}): mean {part['mean_total']:g}, median "
                     f"{part['median_total']:g} of {part['max_total']:g} points; fully right: {rates}")
    return "\n".join(lines)


def write_outputs(rows: list[dict], out: Path, json_out: Path | None, info: dict) -> dict:
    """Write the CSV (and JSON); return the summary."""
    rows = sorted(rows, key=lambda r: r["student"])
    summary = summarize(rows)
    atomic_write_text(out, render_csv(rows))
    if json_out is not None:
        atomic_write_text(json_out, json.dumps({**info, "summary": summary, "rows": rows}, indent=1, sort_keys=True) + "\n")
    return summary
