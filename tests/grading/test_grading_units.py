"""The grader's parts, without a sandbox: finding submissions, zips, transplanting, scoring, the kernel side.
(The table and command line: test_grading_table_cli.py.)"""
from __future__ import annotations

import base64
import json
import stat
import zipfile
from pathlib import Path

import pytest
import torch

import slm_course
from grading_notebooks import NAIVE_SOFTMAX, NO_TRANSPOSE, PATCHES_CASES, SOLVED, WRAPS_COLLECTOR, learner_notebook, pristine
from slm_course.exercises import ch00, core
from slm_course.exercises.build import exercise_tag
from slm_course.exercises.testing import notebook_objects
from slm_course.grading import scoring, submissions, transplant
from slm_course.grading.cli import parse_size
from slm_course.grading.kernel_side import CollectorMisuse, collect, install
from slm_course.grading.sandbox import SANDBOX_WORKDIR, bwrap_command, sandbox_env
from slm_course.grading.values import Unsupported, decode, dumps, encode, loads


def test_parse_size():
    assert parse_size("1.5G") == int(1.5 * (1 << 30))
    assert parse_size("800M") == 800 << 20 and parse_size("64k") == 64 << 10 and parse_size("123") == 123
    with pytest.raises(ValueError, match="like 1.5G"):
        parse_size("lots")


# ---------------------------------------------------------------------------------- submissions

def _zip(path: Path, members: dict[str, bytes], links: tuple[str, ...] = ()) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
        for name in links:
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return path


def test_zip_of_a_class_is_unpacked_into_the_work_folder(tmp_path):
    archive = _zip(tmp_path / "class.zip", {"alice/warmup.ipynb": b"{}", "bob.ipynb": b"{}", "notes.txt": b"x",
                                             "__MACOSX/._bob.ipynb": b"junk"})
    found = submissions.collect([str(archive)], tmp_path / "work")
    assert [s.student for s in found] == ["bob", "warmup"]
    assert all((tmp_path / "work") in s.path.parents for s in found)
    assert found[1].source == f"{archive}:alice/warmup.ipynb"


@pytest.mark.parametrize("members, links, message", [
    ({"../evil.ipynb": b"{}"}, (), "outside the folder"),
    ({"/etc/evil.ipynb": b"{}"}, (), "outside the folder"),
    ({"a/../../evil.ipynb": b"{}"}, (), "outside the folder"),
    ({}, ("link.ipynb",), "is a link"),
])
def test_zip_path_traversal_and_links_are_refused(tmp_path, members, links, message):
    archive = _zip(tmp_path / "class.zip", members, links)
    with pytest.raises(ValueError, match=message):
        submissions.collect([str(archive)], tmp_path / "work")
    assert not (tmp_path / "evil.ipynb").exists()


def test_zip_bomb_is_stopped_while_it_inflates(tmp_path):
    archive = _zip(tmp_path / "bomb.zip", {"big.ipynb": b"\0" * (8 << 20)})
    assert archive.stat().st_size < 100_000  # a tiny file that inflates 80 times
    with pytest.raises(ValueError, match="decompression bomb"):
        submissions.collect([str(archive)], tmp_path / "work", zip_limit=1 << 20)
    written = sum(p.stat().st_size for p in (tmp_path / "work").rglob("*") if p.is_file())
    assert written <= (1 << 20) + (1 << 20)  # stopped within one chunk of the limit


def test_two_notebooks_with_one_name_from_separate_folders_are_a_usage_error(tmp_path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "same.ipynb").write_text("{}")
    with pytest.raises(ValueError, match="both named 'same'"):
        submissions.collect([str(tmp_path / "a"), str(tmp_path / "b")], tmp_path / "work")
    with pytest.raises(FileNotFoundError, match="no such file"):
        submissions.collect([str(tmp_path / "missing.ipynb")], tmp_path / "work")


def test_equal_names_in_one_folder_tree_get_their_relative_path(tmp_path):
    for folder in ("alice", "bob"):
        (tmp_path / "class" / folder).mkdir(parents=True)
        (tmp_path / "class" / folder / "00_warmup.ipynb").write_text("{}")
    found = submissions.collect([str(tmp_path / "class")], tmp_path / "work")
    assert [s.student for s in found] == ["alice/00_warmup", "bob/00_warmup"]


def test_notebooks_that_are_not_notebooks(tmp_path):
    (tmp_path / "a.ipynb").write_text("{ nope")
    (tmp_path / "b.ipynb").write_text("[1, 2]")
    (tmp_path / "c.ipynb").write_bytes(b"\xff\xfe")
    for name in "abc":
        notebook, reason = submissions.read_notebook(tmp_path / f"{name}.ipynb")
        assert notebook is None and reason.startswith("not a valid notebook")


def test_chapter_comes_from_metadata_or_the_option_and_old_versions_are_noted():
    nb = {"metadata": {"slm_course": {"chapter": "00", "course_version": "0.0.1"}}}
    chapter, notes = submissions.chapter_of(nb, None)
    assert chapter == "00" and any("0.0.1" in n and slm_course.__version__ in n for n in notes)
    chapter, notes = submissions.chapter_of(nb, "01")
    assert chapter == "01" and any("graded as chapter 01" in n for n in notes)
    assert submissions.chapter_of({}, None) == (None, [])


# ---------------------------------------------------------------------------------- transplant

def test_only_the_learners_exercise_cells_are_kept():
    nb = learner_notebook(q1=SOLVED["q1"])
    for cell in nb["cells"]:
        if cell["cell_type"] == "code" and not exercise_tag(cell):
            cell["source"] = "print('✓ everything correct')"  # a learner rewriting a check or setup cell
    nb["cells"].append({"cell_type": "code", "metadata": {}, "source": "import os; os.remove('x')", "outputs": [],
                        "execution_count": None})
    ran, notes = transplant.transplant(pristine(), nb)
    course = [c for c in pristine()["cells"] if c["cell_type"] == "code"]
    assert len(ran["cells"]) == len(course)
    for kept, original in zip(ran["cells"], course):
        name = exercise_tag(original)
        source = original["source"]
        expected = SOLVED["q1"] if name == "q1" else "".join(source) if isinstance(source, list) else source
        assert kept["source"] == expected
        assert kept["metadata"]["slm_grade"] == {"kind": "exercise" if name else "course", "problem": name or ""}
    assert notes == []


def test_missing_and_duplicated_exercise_cells():
    nb = learner_notebook(q2=NAIVE_SOFTMAX)
    nb["cells"] = [c for c in nb["cells"] if exercise_tag(c) != "q1"]
    q2 = next(c for c in nb["cells"] if exercise_tag(c) == "q2")
    decoy = {**q2, "id": "decoy", "source": "def softmax(x):\n    return x\n"}
    nb["cells"].insert(0, decoy)
    ran, notes = transplant.transplant(pristine(), nb)
    sources = {c["metadata"]["slm_grade"]["problem"]: c["source"] for c in ran["cells"]}
    assert "NotImplementedError" in sources["q1"] and sources["q2"] == NAIVE_SOFTMAX  # the course's cell id wins
    assert any("no cell tagged q1" in n for n in notes) and any("2 cells tagged q2" in n for n in notes)


# ---------------------------------------------------------------------------------- values and scoring

def test_values_round_trip_as_plain_data():
    tensors: list = []
    value = {"a": (1, 2.5, torch.ones(2, dtype=torch.int64)), 3: [None, True, "s"], "dtype": torch.float16,
             "size": torch.Size([2, 3]), "nested": {"t": torch.nn.Parameter(torch.zeros(1))}}
    payload = loads(dumps({"tree": encode(value, tensors), "tensors": tensors}))
    back = decode(payload["tree"], payload["tensors"])
    assert back["a"][:2] == (1, 2.5) and torch.equal(back["a"][2], value["a"][2])
    assert back[3] == [None, True, "s"] and back["dtype"] is torch.float16 and back["size"] == torch.Size([2, 3])
    assert type(back["nested"]["t"]) is torch.Tensor  # a subclass arrives as a plain tensor

    class Sneaky(int):
        def __eq__(self, other):
            return True

    for odd in (object(), Sneaky(3), (x for x in [])):
        assert isinstance(decode(encode(odd, []), []), Unsupported)


@pytest.mark.parametrize("problem, answer", [
    (ch00.q1, "solved"), (ch00.q1, "stub"), (ch00.q1, lambda text: {w: 1 for w in text.split()}),
    (ch00.q2, "solved"), (ch00.q2, NAIVE_SOFTMAX), (ch00.q2, lambda x: 1 / 0),
    (ch00.q3, NO_TRANSPOSE), (ch00.q3, lambda x, h: None), (ch00.q3, None),
])
def test_scores_from_the_kernels_report_equal_the_notebooks_check(tmp_path, problem, answer):
    namespace = dict(notebook_objects("00", stub=answer == "stub"))
    if isinstance(answer, str) and answer not in ("solved", "stub"):
        exec(answer, namespace)
    elif callable(answer) or answer is None:
        namespace[problem.target] = answer
    collect("00", problem.name, str(tmp_path / "r.pt"), namespace)  # what the kernel side does
    import base64

    graded = scoring.score(problem, base64.b64encode((tmp_path / "r.pt").read_bytes()).decode()).to_dict()
    checked = problem.check(namespace.get(problem.target), quiet=True).to_dict()
    assert graded == checked


def test_final_check_counts_and_the_one_after_the_cell_stands_in_when_the_run_stopped(tmp_path):
    import base64

    namespace = dict(notebook_objects("00"))
    collect("00", "q1", str(tmp_path / "q1.pt"), namespace)
    good = base64.b64encode((tmp_path / "q1.pt").read_bytes()).decode()
    namespace["count_words"] = lambda text: {}
    collect("00", "q1", str(tmp_path / "bad.pt"), namespace)
    bad = base64.b64encode((tmp_path / "bad.pt").read_bytes()).decode()
    problems = [ch00.q1, ch00.q2]
    events = [{"event": "grade", "problem": "q1", "stage": "interim", "status": "ok", "payload": good},
              {"event": "grade", "problem": "q1", "stage": "final", "status": "ok", "payload": bad}]
    results, _ = scoring.exercise_results(problems, events, "")
    assert results["q1"]["points"] == pytest.approx(1 / len(ch00.q1.prepare()))  # only "" -> {} is right: the final check counts
    results, notes = scoring.exercise_results(problems, events[:1], "killed: it used more than 1.5 GB of memory")
    assert results["q1"]["points"] == 1
    assert results["q2"]["status"] == scoring.NOT_GRADED and "memory" in results["q2"]["reason"]
    assert "killed: it used more than 1.5 GB of memory" in notes


# ---------------------------------------------------------------------------------- the kernel side's own references

def _installed(tmp_path, namespace):
    """Install the collector as the runner's first cell does; return a function that calls it as the runner does."""
    import secrets

    name, key = "zQxWvu" + secrets.token_hex(6), secrets.token_hex(32)
    install("00", "q1,q2,q3", name, key, namespace)

    def runner_call(problem):
        out = tmp_path / f"{problem}.pt"
        exec(compile(f"{name}({key!r}, {problem!r}, {str(out)!r})", "<grader cell>", "exec"), namespace)
        data = out.read_bytes()
        import hashlib
        import hmac

        assert hmac.compare_digest(hmac.new(bytes.fromhex(key), data[:-32], hashlib.sha256).digest(), data[-32:])
        return base64.b64encode(data[:-32]).decode()
    return name, runner_call


def test_patching_cases_problem_and_deepcopy_after_install_changes_nothing(tmp_path, monkeypatch):
    import copy as copy_module

    namespace = dict(notebook_objects("00", stub=True))
    _, runner_call = _installed(tmp_path, namespace)
    for problem in (ch00.q1, ch00.q2, ch00.q3):  # what the `patches_cases` notebook does, after install
        monkeypatch.setattr(problem, "cases", lambda original=problem.cases: [
            core.Case(c.label, lambda obj, e=c.expected: e() if callable(e) else e, None) for c in original()])
    monkeypatch.setattr(core.Problem, "prepare", lambda self: [])
    monkeypatch.setattr(copy_module, "deepcopy", lambda value, memo=None: value)
    payloads = {name: runner_call(name) for name in ("q1", "q2", "q3")}
    monkeypatch.undo()  # scoring runs in the grader, which no learner code touched
    for problem in (ch00.q1, ch00.q2, ch00.q3):
        assert scoring.score(problem, payloads[problem.name]).status == "not-attempted"  # the stubs it left


def test_a_wrapped_or_replaced_collector_refuses_to_work(tmp_path):
    namespace = dict(notebook_objects("00"))
    name, runner_call = _installed(tmp_path, namespace)
    assert scoring.score(ch00.q1, runner_call("q1")).correct  # called the runner's way it works
    real = namespace[name]
    namespace[name] = lambda *args, **kwargs: real(*args, **kwargs)  # a learner's wrapper
    with pytest.raises(CollectorMisuse):
        runner_call("q1")
    with pytest.raises(CollectorMisuse):
        real("wrong key", "q1", str(tmp_path / "x.pt"))


def test_the_reviewers_cheats_are_flagged_and_course_solutions_are_not():
    assert transplant.suspicious("q1.cases = lambda: []") == ["q1.cases"]
    found = transplant.suspicious(PATCHES_CASES)
    assert "q1.cases" not in found and "_q.cases" in found and "import slm_course.exercises.ch00" in found
    assert {"globals()", "import slm_course.exercises.ch00"} <= set(transplant.suspicious(WRAPS_COLLECTOR))
    for text in ("import gc", "import sys\nsys.modules['x'] = 1", "import inspect\ninspect.currentframe().f_back",
                 "import builtins\nbuiltins.len = None", "from slm_course.grading import kernel_side"):
        assert transplant.suspicious(text), text
    assert transplant.suspicious("import sys as s\nm = s.modules") == ["s.modules"]
    assert transplant.suspicious("n = sum(1 for m in model.modules())") == []  # PyTorch's walk over layers
    for name, source in SOLVED.items():
        assert transplant.suspicious(source) == [], name
    for path in sorted((slm_course.paths.repo_root() / "solutions").glob("*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] == "code" and exercise_tag(cell):
                assert transplant.suspicious("".join(cell["source"])) == [], (path.name, exercise_tag(cell))
    ran, notes = transplant.transplant(pristine(), learner_notebook(q1="def count_words(t):\n    return q1.prepare()\n"))
    assert notes == ["suspicious: exercise q1 touches `q1.prepare`; review by hand"]


# ---------------------------------------------------------------------------------- sandbox command

def test_bwrap_hides_folders_and_binds_needed_paths_back_read_only(outside_tmp):
    home = outside_tmp / "course"
    (home / "venv").mkdir(parents=True)
    (home / "venv" / "subs").mkdir()
    (home / "cache").mkdir()
    cmd = bwrap_command("bwrap", hide=[home, home / "venv" / "subs"], needed=[home / "venv", home / "cache"], disk=1 << 20)
    text = " ".join(cmd)
    assert "--ro-bind / /" in text and "--unshare-all" in text and "--die-with-parent" in text
    assert cmd.index(str(home)) < cmd.index(str(home / "venv")) < cmd.index(str(home / "venv" / "subs"))
    assert cmd[cmd.index(str(home / "venv")) - 1] == "--ro-bind"
    assert cmd[cmd.index(str(home / "venv" / "subs")) - 1] == "--tmpfs"  # hidden again after the bind
    assert "--tmpfs /tmp" in text and "--dir /tmp/submission" in text


def test_caches_and_config_point_into_the_writable_folder_and_nothing_else_leaks(monkeypatch):
    monkeypatch.setenv("SECRET_TOKEN", "do-not-pass")
    env = sandbox_env(SANDBOX_WORKDIR)
    for name in ("HOME", "IPYTHONDIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTER_CONFIG_DIR",
                 "MPLCONFIGDIR", "HF_HOME", "HF_DATASETS_CACHE", "XDG_CACHE_HOME"):
        assert env[name].startswith(SANDBOX_WORKDIR + "/"), name
    assert env["SLM_COURSE_ASSESSMENT"] == "1" and env["HF_HUB_OFFLINE"] == "1"
    assert "SECRET_TOKEN" not in env


def _run_notebook():
    return transplant.transplant(pristine(), learner_notebook(**SOLVED))[0]


def _code_index(notebook, problem):
    code = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    return next(i for i, c in enumerate(code) if c["metadata"]["slm_grade"]["problem"] == problem)


def test_the_crash_culprit_is_the_exercise_whose_cell_or_check_was_running():
    from slm_course.grading.cli import crash_culprit
    from slm_course.grading.sandbox import RunOutcome

    notebook = _run_notebook()
    q2 = _code_index(notebook, "q2")
    cell = lambda i, **kw: {"event": "cell", "index": i, "status": "ok", "kind": "", "problem": "", **kw}  # noqa: E731
    # The runner saw the kernel die in q2's cell.
    died = RunOutcome(events=[cell(0), cell(q2, status="dead", kind="exercise", problem="q2")])
    assert crash_culprit(died, "", notebook) == "q2"
    # The watchdog killed the sandbox while the cell after the last reported one ran: q2's cell.
    before_q2 = RunOutcome(events=[cell(q2 - 1)], killed="killed: it used more than 1.5 GB of memory")
    assert crash_culprit(before_q2, before_q2.killed, notebook) == "q2"
    # ... or while q2's check ran (its cell reported, its grade not yet).
    in_check = RunOutcome(events=[cell(q2, kind="exercise", problem="q2")], killed="killed: it started more than 32 processes")
    assert crash_culprit(in_check, in_check.killed, notebook) == "q2"
    # A wall-time kill or a clean run names nobody: rerunning would not help.
    wall = RunOutcome(events=[cell(q2 - 1)], killed="killed: it ran past the grader's hard limit of 300 s")
    assert crash_culprit(wall, wall.killed, notebook) is None
    assert crash_culprit(RunOutcome(events=[cell(0), cell(1)]), "", notebook) is None


def test_stub_exercises_puts_back_the_course_stub_and_keeps_the_rest():
    notebook = _run_notebook()
    stubbed = transplant.stub_exercises(notebook, pristine(), {"q2"})
    q1, q2 = _code_index(notebook, "q1"), _code_index(notebook, "q2")
    code_before = [c for c in notebook["cells"] if c["cell_type"] == "code"]
    code_after = [c for c in stubbed["cells"] if c["cell_type"] == "code"]
    assert "NotImplementedError" in code_after[q2]["source"] and "NotImplementedError" not in code_before[q2]["source"]
    assert code_after[q1]["source"] == code_before[q1]["source"]  # the learner's other answers stay
    assert code_after[q2]["metadata"] == code_before[q2]["metadata"]  # still graded as q2
