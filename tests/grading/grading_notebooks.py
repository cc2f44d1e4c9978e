"""Builders of learner notebooks for the grader's tests: solved, empty, partly right and hostile.

Each builder starts from the course's pristine ``exercises/00_warmup.ipynb`` and replaces the
source of exercise cells, as a learner would. ``EXPECTED`` gives, for the notebooks whose score
does not depend on how they fail, the source each exercise ends up with, so a test can derive the
points independently by running ``qN.check`` in-process on that code.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from slm_course.exercises.build import exercise_tag, load_solution_source
from slm_course.paths import repo_root

SOLVED = {name: load_solution_source("00", name) for name in ("q1", "q2", "q3")}

NAIVE_SOFTMAX = '''
def softmax(x):
    return x.exp() / x.exp().sum(dim=-1, keepdim=True)  # overflows on large inputs
'''
NO_TRANSPOSE = '''
def split_heads(x, num_heads):
    batch, tokens, width = x.shape
    return x.reshape(batch, num_heads, tokens, width // num_heads)  # mixes tokens across heads
'''
STUB_COUNT = '''
def count_words(text):
    raise NotImplementedError("Replace this line with your code.")
'''
# The reviewer's attacks: rebind every problem's cases so each case returns the expected value
# (with copy.deepcopy and Problem patched for good measure), and wrap the grader's collector so it
# is handed reference implementations. Neither notebook solves q1, q2 or q3.
PATCHES_CASES = STUB_COUNT + '''
import copy
import slm_course.exercises.ch00 as _m
from slm_course.exercises.core import Case, Problem
for _q in (_m.q1, _m.q2, _m.q3):
    def _patched(_orig=_q.cases):
        return [Case(c.label, (lambda obj, e=c.expected: e() if callable(e) else e), None) for c in _orig()]
    _q.cases = _patched
    _q._prepared = None
Problem.prepare = lambda self: [Case(c.label, (lambda obj, e=c.expected: e() if callable(e) else e), None)
                                for c in self.cases()]
copy.deepcopy = lambda value, memo=None: value
'''
WRAPS_COLLECTOR = '''
def count_words(text):
    return {}
import torch
import slm_course.exercises.ch00 as _m
_refs = {"count_words": lambda t: {w: t.lower().split().count(w) for w in t.lower().split()},
         "softmax": lambda x: torch.softmax(x, -1), "split_heads": _m.split_heads}
_g = globals()
for _k, _v in list(_g.items()):
    if _k.startswith("_slm_collect_") or str(getattr(_v, "__module__", "")).startswith("slm_course.grading"):
        def _fake(*args, _real=_v, **kwargs):
            saved = {name: _g.get(name) for name in _refs}
            _g.update(_refs)
            try:
                return _real(*args, **kwargs)
            finally:
                _g.update(saved)
        _g[_k] = _fake
'''
WRONG_COUNT = '''
def count_words(text):
    return {"the": 1}
'''


def pristine() -> dict:
    return json.loads((repo_root() / "exercises" / "00_warmup.ipynb").read_text(encoding="utf-8"))


def learner_notebook(**sources: str) -> dict:
    """The exercise notebook with the exercise cells named in ``sources`` replaced."""
    nb = copy.deepcopy(pristine())
    for cell in nb["cells"]:
        name = exercise_tag(cell)
        if name in sources:
            cell["source"] = sources[name]
    return nb


def hostile_sources(canary_dir: Path, other_submission: Path) -> dict[str, dict[str, str]]:
    """Exercise sources of every hostile kind, keyed by student name."""
    repo = repo_root()
    escape = f'''
import os, pathlib
_escaped = []
for _try in (
    lambda: pathlib.Path({str(canary_dir / "written.txt")!r}).write_text("escaped"),
    lambda: os.remove({str(canary_dir / "canary.txt")!r}),
    lambda: pathlib.Path({str(repo / "solutions" / "hacked-by-grading-test.txt")!r}).write_text("escaped"),
    lambda: pathlib.Path(os.environ["SLM_COURSE_HOME"], "hacked-by-grading-test.txt").write_text("escaped"),
    lambda: pathlib.Path({str(other_submission)!r}).read_text(),
    lambda: __import__("socket").create_connection(("1.1.1.1", 53), timeout=2).close(),
):
    try:
        _try()
        _escaped.append(True)
    except OSError:
        pass
''' + SOLVED["q1"] + '''
if _escaped:  # any escape costs the points, so the score shows it
    def count_words(text):
        return {}
'''
    return {
        "solved": dict(SOLVED),
        "empty": {},
        "partial": {"q1": SOLVED["q1"], "q2": NAIVE_SOFTMAX, "q3": NO_TRANSPOSE},
        "loops_forever": {"q1": SOLVED["q1"], "q2": "while True:\n    pass\n" + SOLVED["q2"], "q3": SOLVED["q3"]},
        "allocates": {"q1": SOLVED["q1"],
                      # Plain bytes in 128 MB steps, each filled so every page counts: past the memory limit in
                      # a dozen steps. (Once, on a loaded CI machine, 64 MB torch.ones steps were still under the
                      # limit when the 10 s cell limit came, and the row said "time limit".)
                      "q2": "blocks = []\nwhile True:\n    blocks.append(b'x' * 2 ** 27)\n",
                      "q3": SOLVED["q3"]},
        "sys_exit": {"q1": SOLVED["q1"], "q2": SOLVED["q2"] + "\nimport sys\nsys.exit(3)\n", "q3": SOLVED["q3"]},
        "os_exit": {"q1": SOLVED["q1"], "q2": "import os\nos._exit(1)\n", "q3": SOLVED["q3"]},
        "raises_first": {"q1": "raise RuntimeError('boom')\n" + SOLVED["q1"], "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
        "escapes": {"q1": escape, "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
        "forks": {"q1": SOLVED["q1"],
                  "q2": "import os, time\nfor _ in range(200):\n    if os.fork() == 0:\n        time.sleep(120)\n"
                        "        os._exit(0)\n" + SOLVED["q2"],
                  "q3": SOLVED["q3"]},
        "prints_megabytes": {"q1": SOLVED["q1"] + "\nfor _ in range(40):\n    print('x' * 100_000)\n",
                             "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
        "redefines_check": {"q1": WRONG_COUNT + '''
import builtins, torch
import slm_course.exercises.core as core
def check(*args, **kwargs):
    print("✓ correct")
q1.check = q2.check = q3.check = check
core.Problem.grade = lambda self, namespace: core.CheckResult(self.name, "correct", 1, 1, "", self.points, self.points)
core.Problem._evaluate = lambda self, obj, quiet_missing=False: core.CheckResult(
    self.name, "correct", 1, 1, "", self.points, self.points)
core.compare_values = lambda *args, **kwargs: None
torch.allclose = lambda *args, **kwargs: True
torch.equal = lambda *args, **kwargs: True
''', "q2": NAIVE_SOFTMAX, "q3": SOLVED["q3"]},
        "patches_cases": {"q1": PATCHES_CASES},
        "wraps_collector": {"q1": WRAPS_COLLECTOR},
    }


# What each exercise of a notebook is worth follows from running the course's check on the code
# the exercise ends up with (None: the object is never defined, or the run stops before it).
GRADED_AS = {
    "solved": {"q1": SOLVED["q1"], "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
    "empty": {},
    "partial": {"q1": SOLVED["q1"], "q2": NAIVE_SOFTMAX, "q3": NO_TRANSPOSE},
    "loops_forever": {"q1": SOLVED["q1"], "q2": None, "q3": SOLVED["q3"]},
    "allocates": {"q1": SOLVED["q1"], "q2": None, "q3": SOLVED["q3"]},  # one crash costs one exercise
    "sys_exit": {"q1": SOLVED["q1"], "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
    "os_exit": {"q1": SOLVED["q1"], "q2": None, "q3": SOLVED["q3"]},  # one crash costs one exercise
    "raises_first": {"q1": None, "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
    "escapes": {"q1": SOLVED["q1"], "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
    "forks": {"q1": SOLVED["q1"], "q2": None, "q3": SOLVED["q3"]},  # one crash costs one exercise
    "prints_megabytes": {"q1": SOLVED["q1"], "q2": SOLVED["q2"], "q3": SOLVED["q3"]},
    "redefines_check": {"q1": WRONG_COUNT, "q2": NAIVE_SOFTMAX, "q3": SOLVED["q3"]},
    "patches_cases": {"q1": STUB_COUNT},  # the cheat changes nothing: graded as the stubs it left
    "wraps_collector": {},  # the wrapped collector refuses to work: nothing is graded
}


def write_class(folder: Path, canary_dir: Path) -> dict[str, Path]:
    """Write every notebook above (and one that is not JSON) into ``folder``; return them by student."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = {name: folder / f"{name}.ipynb" for name in [*GRADED_AS, "not_json"]}
    for name, sources in hostile_sources(canary_dir, paths["solved"]).items():
        notebook = pristine() if name == "empty" else learner_notebook(**sources)
        paths[name].write_text(json.dumps(notebook, indent=1), encoding="utf-8")
    paths["not_json"].write_text('{"cells": [ this is not JSON', encoding="utf-8")
    return paths
