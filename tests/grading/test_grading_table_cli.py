"""Unit tests of the grader's score table, summary and command line (no sandbox)."""
from __future__ import annotations

import json

import pytest

from grading_notebooks import SOLVED, learner_notebook
from slm_course.cli import main
from slm_course.grading import scoring, submissions, table, transplant


# ---------------------------------------------------------------------------------- table and CLI

def _row(student, total, q1_status="correct"):
    entry = {"problem": "q1", "status": q1_status, "passed": 1, "total": 1, "points": total, "max_points": 1,
             "reason": "" if q1_status == "correct" else "`f(1)`: wrong"}
    return {"student": student, "file": f"{student}.ipynb", "chapter": "00", "total": total, "max_total": 1.0,
            "exercises": {"q1": entry}, "notes": [], "seconds": 1.0}


def test_table_is_sorted_and_summarised():
    rows = [_row("zed", 1.0), _row("amy", 0.0, "incorrect"), _row("kim", 1.0)]
    text = table.render_csv(rows)
    assert text.splitlines()[0] == "student,chapter,total,max_total,q1,q1_reason,notes,file"
    assert [line.split(",")[0] for line in text.splitlines()[1:]] == ["amy", "kim", "zed"]
    assert text == table.render_csv(list(reversed(rows)))
    summary = table.summarize(rows)
    assert summary["mean_total"] == pytest.approx(2 / 3, abs=1e-4) and summary["median_total"] == 1.0
    assert summary["pass_rate"] == {"q1": pytest.approx(2 / 3, abs=1e-4)}


def test_journal_ignores_a_half_written_last_line(tmp_path):
    journal = table.Journal(tmp_path / "j.jsonl", fresh=True)
    journal.add(_row("amy", 1.0))
    journal.close()
    with open(tmp_path / "j.jsonl", "a") as handle:
        handle.write('{"student": "bo')
    assert [r["student"] for r in table.read_journal(tmp_path / "j.jsonl")] == ["amy"]


def test_usage_errors_exit_2_with_a_sentence(tmp_path, capsys):
    assert main(["grade", str(tmp_path / "none.ipynb"), "--out", str(tmp_path / "g.csv")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "a.ipynb").write_text("{}")
    assert main(["grade", str(tmp_path / "a.ipynb"), "--out", str(tmp_path / "missing" / "g.csv")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_unreadable_notebooks_get_rows_and_the_run_exits_0(tmp_path, capsys):
    (tmp_path / "subs").mkdir()
    (tmp_path / "subs" / "x.ipynb").write_text("not json")
    code = main(["grade", str(tmp_path / "subs"), "--chapter", "00", "--out", str(tmp_path / "g.csv"),
                 "--json", str(tmp_path / "g.json"), "--no-sandbox", "--notebook-timeout", "1", "--cell-timeout", "1"])
    assert code == 0
    rows = {r["student"]: r for r in json.loads((tmp_path / "g.json").read_text())["rows"]}
    assert "not valid JSON" in " ".join(rows["x"]["notes"])
    assert rows["x"]["exercises"]["q1"]["status"] == scoring.NOT_GRADED and rows["x"]["max_total"] == 5


def test_summary_is_per_chapter_when_chapters_are_worth_different_points():
    rows = [_row("amy", 1.0), _row("bo", 0.0, "incorrect"),
            {**_row("cy", 10.0), "chapter": "01", "max_total": 10.0}, {**_row("di", 0.0), "chapter": "01", "max_total": 10.0}]
    summary = table.summarize(rows)
    assert "mean_total" not in summary  # points of different chapters are not averaged together
    assert summary["chapters"]["00"]["mean_total"] == 0.5 and summary["chapters"]["00"]["max_total"] == 1.0
    assert summary["chapters"]["01"]["median_total"] == 5.0 and summary["chapters"]["01"]["max_total"] == 10.0
    assert summary["mean_percent"] == 50.0
    text = table.summary_text(summary)
    assert "chapter 00 (2 notebooks): mean 0.5, median 0.5 of 1 points" in text
    assert "chapter 01 (2 notebooks): mean 5, median 5 of 10 points" in text
    assert "of 10 points; fully right: 00:" not in text


def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_are_quoted():
    rows = [_row("=HYPERLINK(\"http://x\")", 1.0), _row("+1", 1.0), _row("-2", 1.0), _row("@SUM(A1)", 1.0), _row("ok-name", 1.0)]
    import csv as csv_module
    import io

    lines = list(csv_module.DictReader(io.StringIO(table.render_csv(rows))))
    assert sorted(line["student"] for line in lines) == sorted(["'=HYPERLINK(\"http://x\")", "'+1", "'-2", "'@SUM(A1)", "ok-name"])
    assert {line["file"][0] for line in lines if line["student"] != "ok-name"} == {"'"}


def test_the_reviewed_functions_have_docstrings():
    for function in (table.journal_path, table.summary_text, table.Journal.add, submissions.Submission.sha256):
        assert function.__doc__ and len(function.__doc__.split()) >= 5, function.__qualname__


@pytest.mark.parametrize("option", ["out-is-folder", "json-in-missing-folder", "out-is-a-submission",
                                    "out-inside-submission-folder", "jobs-0"])
def test_bad_outputs_and_jobs_are_refused_before_grading(tmp_path, capsys, option):
    subs = tmp_path / "class"
    subs.mkdir()
    notebook = subs / "nometa.ipynb"
    notebook.write_text(json.dumps(learner_notebook(**SOLVED)))
    before = notebook.read_bytes()
    args = {
        "out-is-folder": [str(subs), "--out", str(tmp_path)],
        "json-in-missing-folder": [str(subs), "--out", str(tmp_path / "g.csv"), "--json", str(tmp_path / "no" / "dir" / "g.json")],
        "out-is-a-submission": [str(notebook), "--out", str(notebook)],
        "out-inside-submission-folder": [str(subs), "--out", str(subs / "grades.csv")],
        "jobs-0": [str(subs), "--out", str(tmp_path / "g.csv"), "--jobs", "0"],
    }[option]
    assert main(["grade", *args, "--no-sandbox", "--cell-timeout", "1", "--notebook-timeout", "1"]) == 2
    err = capsys.readouterr().err
    assert {"out-is-folder": "is a folder", "json-in-missing-folder": "does not exist",
            "out-is-a-submission": "is one of the submissions", "out-inside-submission-folder": "inside the submission folder",
            "jobs-0": "give 1 or more"}[option] in err
    assert notebook.read_bytes() == before and sorted(p.name for p in subs.iterdir()) == ["nometa.ipynb"]
    assert not (tmp_path / "no").exists() and not (tmp_path / "g.csv").exists()


def test_importing_ordinary_modules_by_name_is_not_suspicious():
    assert transplant.suspicious("__import__('socket').create_connection") == []
    assert set(transplant.suspicious("__import__('gc').get_objects()")) == {"__import__('gc')", "__import__('gc').get_objects"}
    assert transplant.suspicious("__import__(name)") == ["__import__()"]
