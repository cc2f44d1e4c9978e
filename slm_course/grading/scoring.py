"""Turning what the runner reported into a row of points, with the grader's own checks.

The grader prepares every problem (computes expected values) before any submission runs. For each
problem the kernel reported what the learner's function returned on each case; :func:`score`
replays those results through the same :class:`~slm_course.exercises.core.Problem` logic a
learner's ``check`` uses, so points, partial credit and the one-line reason are computed exactly
as in the notebook, but here, in a process no learner code has touched.
"""
from __future__ import annotations

import base64
import copy
import re
from typing import Any

from slm_course.exercises.core import Case, CheckResult, Problem
from slm_course.grading.values import decode, loads

NOT_GRADED = "not-graded"
_SENTINEL = object()


def _replay(outcome: dict) -> Any:
    kind = outcome.get("kind")
    if kind == "value":
        value = outcome["value"]
        return lambda obj: value
    if kind == "stub":
        def stub(obj: Any) -> Any:
            raise NotImplementedError
        return stub
    name = re.sub(r"\W", "", str(outcome.get("type", "Error")))[:60] or "Error"
    error_type = type(name, (Exception,), {})
    message = str(outcome.get("message", ""))[:300]

    def raised(obj: Any) -> Any:
        raise error_type(message)
    return raised


def score(problem: Problem, payload_b64: str) -> CheckResult:
    """Score ``problem`` from the runner's payload (what the learner's function returned per case)."""
    prepared = problem.prepare()
    payload = loads(base64.b64decode(payload_b64))
    if not payload.get("defined"):
        return problem.grade({})
    labels = payload.get("labels", [])
    outcomes = payload.get("outcomes", [])
    if labels != [c.label for c in prepared] or len(outcomes) != len(prepared):
        raise ValueError("the kernel's cases do not match the grader's (different course versions?)")
    tensors = payload.get("tensors", [])
    replayed = []
    for case, outcome in zip(prepared, outcomes):
        if outcome.get("kind") == "value":
            outcome = {"kind": "value", "value": decode(outcome.get("value"), tensors)}
        replayed.append(Case(case.label, _replay(outcome), case.expected, case.compare))
    clone = copy.copy(problem)
    clone._prepared = replayed
    return clone._evaluate(_SENTINEL)


def not_graded(problem: Problem, reason: str) -> dict:
    """The row entry of a problem the run never got to check."""
    total = len(problem.prepare())
    return {"problem": problem.name, "status": NOT_GRADED, "passed": 0, "total": total, "points": 0.0,
            "max_points": problem.points, "reason": reason}


def exercise_results(problems: list[Problem], events: list[dict], failure: str) -> tuple[dict[str, dict], list[str]]:
    """Per problem its result dict (as ``CheckResult.to_dict``), and notes about the run.

    The final check after the whole notebook ran counts; where the run never got that far (the
    kernel died, the sandbox was killed), the check taken right after the exercise cell counts.
    """
    notes: list[str] = []
    cell_trouble: dict[str, str] = {}
    grades: dict[str, dict] = {}
    truncated = []
    for event in events:
        if event.get("event") == "cell":
            if event.get("output_truncated"):
                truncated.append(event.get("problem") or f"code cell {event.get('index', -1) + 1}")
            status = event.get("status")
            where = f"the {event['problem']} cell" if event.get("problem") else f"code cell {event.get('index', -1) + 1}"
            if status in ("timeout", "dead") or (status == "error" and event.get("kind") == "exercise"):
                text = {"timeout": "ran past the cell time limit", "dead": "stopped the kernel",
                        "error": f"raised {event.get('error', '')}"}[status]
                if event.get("problem"):
                    cell_trouble.setdefault(event["problem"], f"the exercise cell {text}")
                if status == "timeout":  # a dead kernel is reported once, by the runner's last word
                    notes.append(f"{where} {text}")
        elif event.get("event") == "grade":
            name = event.get("problem")
            if event.get("stage") == "final" or grades.get(name, {}).get("stage") != "final":
                grades[name] = event
        elif event.get("event") == "done" and event.get("reason"):
            notes.append(event["reason"])
            failure = failure or event["reason"]
    if truncated:
        notes.append("output truncated (more than the per-cell limit) in " + ", ".join(truncated[:5]))
    if failure and failure not in notes:
        notes.append(failure)
    results: dict[str, dict] = {}
    for problem in problems:
        event = grades.get(problem.name)
        if event is None:
            why = failure or "the notebook did not get this far"
            results[problem.name] = not_graded(problem, f"not graded: {why}")
            continue
        if event.get("status") != "ok":
            text = {"timeout": "checking it ran past the cell time limit",
                    "dead": "the kernel stopped while checking it"}.get(event.get("status"))
            text = text or event.get("error") or "checking it failed"
            results[problem.name] = not_graded(problem, f"not graded: {text}")
            continue
        try:
            result = score(problem, event["payload"]).to_dict()
        except Exception as error:  # noqa: BLE001 - a malformed payload is the submission's problem
            results[problem.name] = not_graded(problem, f"not graded: unreadable results ({str(error)[:120]})")
            continue
        if result["status"] != "correct" and problem.name in cell_trouble:
            result["reason"] = f"{cell_trouble[problem.name]}; {result['reason']}"
        results[problem.name] = result
    return results, notes
