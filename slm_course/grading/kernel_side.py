"""The only grading code that runs inside the learner's kernel: call their functions, record results.

It decides nothing. For one problem it looks up the object the problem names in the notebook's
namespace, runs it on each case's input and writes what came back (or what it raised) to a file
the runner passes on. Expected values and scoring stay in the grader process, which never runs
learner code, so patching anything in the kernel (``check``, ``Problem``, ``torch.allclose``,
builtins) cannot change how answers are judged.
"""
from __future__ import annotations

import importlib
from typing import Any

from slm_course.grading.values import dumps, encode


def collect(chapter: str, problem: str, out_path: str, namespace: dict[str, Any]) -> None:
    """Run the learner's ``target`` on every case of ``problem``; write the outcomes to ``out_path``."""
    module = importlib.import_module(f"slm_course.exercises.ch{chapter}")
    spec = getattr(module, problem)
    cases = list(spec.cases())
    obj = namespace.get(spec.target)
    outcomes: list[dict] = []
    tensors: list = []
    if obj is not None:
        for case in cases:
            try:
                value = case.run(obj)
            except NotImplementedError:
                outcomes.append({"kind": "stub"})
            except KeyboardInterrupt:  # the runner's time limit: let it stop the cell
                raise
            except BaseException as error:  # noqa: BLE001 - SystemExit from a learner's function too
                outcomes.append({"kind": "error", "type": type(error).__name__, "message": str(error)[:300]})
            else:
                outcomes.append({"kind": "value", "value": encode(value, tensors)})
    payload = {"problem": problem, "labels": [c.label for c in cases], "defined": obj is not None,
               "outcomes": outcomes, "tensors": tensors}
    with open(out_path, "wb") as handle:
        handle.write(dumps(payload))
