"""The chapter notebooks read like lessons (DESIGN.md, "Lessons that teach"), checked on their stored form.

- Chapters 4–10 draw at least two figures besides the roadmap (chapter 4 at least three): a figure is a stored
  PNG output of a code cell that does not draw the roadmap.
- At most three guard cells (cells of asserts only) per chapter show their source; the others are collapsed
  in JupyterLab (``jupyter.source_hidden``) and tagged ``remove-input`` for the site.
- No stored output holds a progress bar short of 100 %, a warning, a traceback or the ``repr`` of a long string
  (generated text is printed).
- No markdown names a machine's processor model: per-machine figures live in ``benchmarks/README.md``.
"""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
FIGURES_NEEDED = {4: 3, 5: 2, 6: 2, 7: 2, 8: 2, 9: 2, 10: 2}
MACHINE_MODELS = re.compile(r"\b(EPYC|Xeon|Ryzen|Threadripper|Core i[3579]|Graviton|Sapphire Rapids|Ice Lake|Zen ?[2-5])\b")
# tqdm's text: " 40%|████      | 240/600 [00:03<00:05, ...]"
BAR = re.compile(r"(\d{1,3})%\|[^|\n]*\|\s*(\d+)/(\d+)")


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _source(cell: dict) -> str:
    return "".join(cell["source"])


def _texts(cell: dict) -> list[str]:
    """Every piece of stored text output of a cell (streams, results, displays, errors)."""
    out = []
    for output in cell.get("outputs", []):
        if output["output_type"] == "stream":
            out.append("".join(output["text"]))
        elif output["output_type"] == "error":
            out.append("Traceback: " + output.get("ename", ""))
        else:
            for kind in ("text/plain", "text/html"):
                if kind in output.get("data", {}):
                    out.append("".join(output["data"][kind]))
    return out


def is_guard(cell: dict) -> bool:
    """A code cell whose statements are all asserts (``assert …`` or a call of ``…assert…(…)``)."""
    if cell["cell_type"] != "code":
        return False
    try:
        body = ast.parse(_source(cell)).body
    except SyntaxError:
        return False
    def assertive(node: ast.stmt) -> bool:
        if isinstance(node, ast.Assert):
            return True
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            return "assert" in ast.unparse(node.value.func)
        return False
    return bool(body) and all(assertive(node) for node in body)


def is_hidden(cell: dict) -> bool:
    meta = cell.get("metadata", {})
    return bool(meta.get("jupyter", {}).get("source_hidden")) and "remove-input" in meta.get("tags", [])


def figures(cells: list[dict]) -> int:
    return sum(1 for c in cells if c["cell_type"] == "code" and "roadmap(" not in _source(c)
               and any("image/png" in o.get("data", {}) for o in c.get("outputs", [])))


def rendered(text: str) -> str:
    """Text as a notebook shows it: on each line, what follows the last carriage return."""
    return "\n".join(line.rsplit("\r", 1)[-1] for line in text.split("\n"))


def output_problems(cells: list[dict]) -> list[str]:
    problems = []
    for i, cell in enumerate(cells):
        for text in _texts(cell):
            for percent, done, total in BAR.findall(rendered(text)):
                if int(percent) < 100 or int(done) < int(total):
                    problems.append(f"cell {i}: a progress bar stored at {done}/{total}")
            if "Warning" in text or "warnings.warn" in text:
                problems.append(f"cell {i}: a stored warning: {text.strip()[:80]!r}")
            if "Traceback" in text:
                problems.append(f"cell {i}: a stored traceback")
        for output in cell.get("outputs", []):
            plain = "".join(output.get("data", {}).get("text/plain", []))
            if output["output_type"] == "execute_result" and re.fullmatch(r"""(['"]).{40,}\1""", plain, re.S):
                problems.append(f"cell {i}: the repr of a string ({plain[:40]}…): print it")
    return problems


def _number(path: Path) -> int:
    return int(path.name[:2])


@pytest.mark.parametrize("path", [p for p in CHAPTERS if _number(p) in FIGURES_NEEDED], ids=lambda p: p.stem)
def test_a_figure_per_idea(path):
    assert figures(_cells(path)) >= FIGURES_NEEDED[_number(path)]


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_scaffolding_in_view(path):
    cells = _cells(path)
    visible = [i for i, c in enumerate(cells) if is_guard(c) and not is_hidden(c)]
    assert len(visible) <= 3, f"guard cells with visible source: {visible}"
    for i, cell in enumerate(cells):
        if cell["cell_type"] == "code" and cell.get("metadata", {}).get("jupyter", {}).get("source_hidden"):
            assert i > 0 and cells[i - 1]["cell_type"] == "markdown", f"cell {i} is hidden without a sentence before it"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_stored_outputs_read_cleanly(path):
    assert output_problems(_cells(path)) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_no_machine_models_in_the_prose(path):
    found = [(i, m.group(0)) for i, c in enumerate(_cells(path)) if c["cell_type"] == "markdown"
             for m in MACHINE_MODELS.finditer(_source(c))]
    assert found == []


def test_the_checks_catch_what_they_look_for():
    code = lambda source, outputs=(), **meta: {"cell_type": "code", "source": [source], "outputs": list(outputs),
                                               "metadata": meta}
    assert is_guard(code("assert x == 1\ntorch.testing.assert_close(a, b)"))
    assert not is_guard(code("y = f(x)\nassert y"))
    assert not is_hidden(code("assert x", jupyter={"source_hidden": True}))  # the site needs the tag too
    bar = {"output_type": "stream", "name": "stderr", "text": [" 0%|          | 0/600 [00:00<?, ?it/s]"]}
    done = {"output_type": "stream", "name": "stderr", "text": ["100%|██████████| 600/600 [00:05<00:00]"]}
    warn = {"output_type": "stream", "name": "stderr", "text": ["UserWarning: something"]}
    text = {"output_type": "execute_result", "data": {"text/plain": ["'Once upon a time the model wrote this long line'"]}}
    assert len(output_problems([code("train()", [bar, warn, text])])) == 3
    assert output_problems([code("train()", [done])]) == []
    redrawn = {"output_type": "stream", "name": "stderr", "text": ["\r  0%|     | 0/6 [00:00<?]\r100%|#####| 6/6 [00:01<00:00]\n"]}
    assert output_problems([code("run()", [redrawn])]) == []  # shown finished: the carriage return redraws it
    png = {"output_type": "display_data", "data": {"image/png": "iVBOR"}}
    assert figures([code("roadmap(4)", [png]), code("plot()", [png])]) == 1
