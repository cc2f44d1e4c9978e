"""The only grading code that runs inside the learner's kernel: call their functions, record results.

It decides nothing. The runner's first cell, which runs before any learner cell, calls
:func:`install`: it builds every problem's cases (their labels and the functions that call the
learner's object with fresh copies of the inputs) and a *collector* closure that keeps its own
references to them and to every function it uses (the encoder, ``torch.save``, ``open``, HMAC).
The collector is bound in the notebook's namespace under a name the runner draws at random for
each run. Later the runner asks it, in cells of its own, what the learner's object returns on each
case; it writes that to a file, signed with a key only the runner and the closure know.

Because the cases and the collector are taken before learner code runs, rebinding ``q1.cases``,
``Problem``, the exercise module, ``copy.deepcopy``, ``torch.save`` or builtins later changes
nothing here. Expected values and scoring stay in the grader process, which never runs learner
code. Code in the same interpreter can still, in principle, reach any object (``gc``, frames);
the grader flags exercise cells that try (see :func:`slm_course.grading.transplant.suspicious`).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence


class CollectorMisuse(RuntimeError):
    """The collector was called by code other than the runner's own cell."""


def make_collector(chapter: str, problems: Sequence[str], namespace: dict[str, Any], key: bytes | None = None,
                   guard: str | None = None) -> Callable[[str | None, str, str], None]:
    """A closure ``collector(token, problem, out_path)`` that records ``problem``'s results in a file.

    Everything it needs is taken now: the cases of each problem, the encoder, ``torch.save``,
    ``open``, ``hmac``. With ``guard``, it works only when ``token == guard`` and the calling code
    holds ``guard`` as a literal (the runner's cell does; a learner's wrapper does not). With
    ``key``, the file ends with the HMAC-SHA256 of its content under ``key`` (32 bytes).
    """
    import builtins
    import hashlib
    import hmac
    import importlib
    import io
    import sys

    import torch

    from slm_course.grading.values import make_encoder

    module = importlib.import_module(f"slm_course.exercises.ch{chapter}")
    plans: dict[str, tuple[str, list[tuple[str, Callable[[Any], Any]]]]] = {}
    for name in problems:
        spec = getattr(module, name)
        plans[name] = (spec.target, [(case.label, case.run) for case in spec.cases()])
    encode, save, bytes_io, open_file = make_encoder(), torch.save, io.BytesIO, builtins.open
    sign, sha256, getframe, get = hmac.new, hashlib.sha256, sys._getframe, dict.get
    str_type, type_ = builtins.str, builtins.type
    base_exception, keyboard_interrupt, not_implemented = BaseException, KeyboardInterrupt, NotImplementedError

    def collector(token: str | None, problem: str, out_path: str) -> None:
        if guard is not None:
            caller = getframe(1)
            if token != guard or caller.f_globals is not namespace or guard not in caller.f_code.co_consts:
                raise CollectorMisuse("the notebook replaced or wrapped the grader's collector")
        target, cases = plans[problem]
        obj = get(namespace, target)
        outcomes: list[dict] = []
        tensors: list = []
        if obj is not None:
            for _label, run in cases:
                try:
                    value = run(obj)
                except not_implemented:
                    outcomes.append({"kind": "stub"})
                except keyboard_interrupt:  # the runner's time limit: let it stop the cell
                    raise
                except base_exception as error:  # noqa: BLE001 - SystemExit from a learner's function too
                    outcomes.append({"kind": "error", "type": type_(error).__name__,
                                     "message": str_type(error)[:300]})
                else:
                    outcomes.append({"kind": "value", "value": encode(value, tensors)})
        payload = {"problem": problem, "labels": [label for label, _ in cases], "defined": obj is not None,
                   "outcomes": outcomes, "tensors": tensors}
        buffer = bytes_io()
        save(payload, buffer)
        data = buffer.getvalue()
        if key is not None:
            data += sign(key, data, sha256).digest()
        with open_file(out_path, "wb") as handle:
            handle.write(data)

    return collector


def install(chapter: str, problems: str, name: str, key_hex: str, namespace: dict[str, Any]) -> None:
    """Bind the collector of ``problems`` (comma-separated) to ``namespace[name]``; the runner's first cell."""
    namespace[name] = make_collector(chapter, [p for p in problems.split(",") if p], namespace,
                                     key=bytes.fromhex(key_hex), guard=key_hex)


def collect(chapter: str, problem: str, out_path: str, namespace: dict[str, Any]) -> None:
    """Record ``problem``'s results for the object in ``namespace`` now, unsigned (tests, in-process use)."""
    make_collector(chapter, [problem], namespace)(None, problem, out_path)
