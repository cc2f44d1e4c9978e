"""Let EleutherAI's ``lm-eval`` evaluate a course ``SLM`` — the cross-check of chapter 9's harness.

:class:`SLMForLMEval` implements ``lm-eval``'s model interface (``loglikelihood``,
``loglikelihood_rolling``, ``generate_until``) on top of an ``SLM`` and a tokenizer. It scores each
request on its own with a plain forward pass (no shared prefix), so when ``lm-eval`` and the course
harness agree, they agree through two different paths: ``lm-eval``'s prompt building and metric code
against the course's.

:func:`evaluate_mmlu_with_lm_eval` writes the bundled MMLU questions to a local JSON-lines file and a
task config with the same prompt as ``lm-eval``'s ``mmlu`` task (its per-subject header included), so
nothing is downloaded.
"""
from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Sequence

import torch
import torch.nn.functional as F

from slm_course.device import model_device
from slm_course.evaluate.scoring import encode_pair, loglikelihood_one

try:  # lm-eval is pinned in requirements.txt; the class below needs it
    from lm_eval.api.model import LM
except ImportError:  # pragma: no cover
    LM = object  # type: ignore[misc,assignment]


class SLMForLMEval(LM):
    """An ``lm_eval.api.model.LM`` backed by an ``SLM`` (``tokenizer``: ``encode``/``decode``)."""

    def __init__(self, model: torch.nn.Module, tokenizer, prefix_id: int | None = None, max_gen_tokens: int = 256) -> None:
        super().__init__()
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.prefix_id = prefix_id
        self.max_gen_tokens = max_gen_tokens

    def loglikelihood(self, requests, disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        results = []
        for request in requests:
            context, continuation = request.args
            context_ids, continuation_ids = encode_pair(self.tokenizer, context, continuation, self.prefix_id)
            results.append(loglikelihood_one(self.model, context_ids, continuation_ids))
        return results

    @torch.no_grad()
    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        """Log-likelihood of whole texts, scored in chunks of the model's context, each token once
        (after the prefix token when there is one; without, the first token is not scored)."""
        limit = self.model.config.context_length
        device = model_device(self.model)
        results = []
        for request in requests:
            (text,) = request.args
            tokens = ([self.prefix_id] if self.prefix_id is not None else []) + list(self.tokenizer.encode(text))
            total = 0.0
            for start in range(1, len(tokens), limit):
                end = min(start + limit, len(tokens))
                low = max(0, end - 1 - limit)  # as much earlier context as fits
                logits = self.model(torch.tensor(tokens[low:end - 1], device=device)[None])[0, -(end - start):]
                targets = torch.tensor(tokens[start:end], device=device)
                total += float(F.log_softmax(logits.double(), -1).gather(-1, targets[:, None]).sum())
            results.append(total)
        return results

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from slm_course.generate import generate

        device = model_device(self.model)
        outputs = []
        for request in requests:
            context, kwargs = request.args
            until = kwargs.get("until", []) or []
            if isinstance(until, str):
                until = [until]
            max_new = int(kwargs.get("max_gen_toks", self.max_gen_tokens))
            ids = list(self.tokenizer.encode(context))[-(self.model.config.context_length - max_new):]
            out = generate(self.model, torch.tensor(ids, device=device)[None], max_new, temperature=0.0)
            text = self.tokenizer.decode(out[0, len(ids):].tolist())
            for stop in until:
                if stop and stop in text:
                    text = text[: text.index(stop)]
            outputs.append(text)
        return outputs


MMLU_LETTER_TASK = {
    "task": "slm_course_mmlu_letter",
    "dataset_path": "json",
    "output_type": "multiple_choice",
    "test_split": "train",
    # lm-eval's mmlu_<subject>.yaml says "… about <subject with spaces>.\n\n"; here one task holds every subject
    "description": "The following are multiple choice questions (with answers) about {{subject_name}}.\n\n",
    "doc_to_text": "{{question.strip()}}\nA. {{choices[0]}}\nB. {{choices[1]}}\nC. {{choices[2]}}\nD. {{choices[3]}}\nAnswer:",
    "doc_to_choice": ["A", "B", "C", "D"],
    "doc_to_target": "answer",
    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
}


def write_local_task(folder: Path, questions: Sequence, task: dict = MMLU_LETTER_TASK) -> Path:
    """Write ``questions`` (4-option ``MMLUQuestion``s) as JSON lines and a task YAML beside them."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "mmlu.jsonl"
    with data.open("w", encoding="utf-8") as handle:
        for q in questions:
            handle.write(json.dumps({"question": q.question, "choices": list(q.choices), "answer": q.answer,
                                     "subject": q.subject, "subject_name": " ".join(q.subject.split("_"))}) + "\n")
    config = dict(task, dataset_kwargs={"data_files": {"train": str(data)}})
    path = folder / f"{task['task']}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def evaluate_mmlu_with_lm_eval(model: torch.nn.Module, tokenizer, questions: Sequence, prefix_id: int | None = None,
                               *, quiet: bool = True) -> dict:
    """Run ``lm-eval`` (zero-shot, letter format) on ``questions``; return its per-item log-likelihoods
    (``lls``, one list of 4 per question, in order), predictions and accuracy.

    ``quiet`` keeps ``lm-eval``'s and ``datasets``' progress bars and stderr log out of the output (they
    would stay in a stored notebook); errors are still raised."""
    import contextlib
    import io

    import datasets
    import lm_eval
    from lm_eval.tasks import TaskManager

    four = [q for q in questions if len(q.choices) == 4]
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    if quiet:
        datasets.disable_progress_bars()
    try:
        with tempfile.TemporaryDirectory() as tmp, \
                (contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext()):
            write_local_task(Path(tmp), four)
            manager = TaskManager(include_path=tmp, include_defaults=False)
            out = lm_eval.simple_evaluate(model=SLMForLMEval(model, tokenizer, prefix_id),
                                          tasks=[MMLU_LETTER_TASK["task"]], num_fewshot=0, task_manager=manager,
                                          log_samples=True, bootstrap_iters=0, verbosity="ERROR")
    finally:
        if quiet and bars_were_on:
            datasets.enable_progress_bars()
    samples = sorted(out["samples"][MMLU_LETTER_TASK["task"]], key=lambda s: s["doc_id"])
    lls = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
    predictions = [max(range(4), key=lambda i: row[i]) for row in lls]
    accuracy = out["results"][MMLU_LETTER_TASK["task"]]["acc,none"]
    return {"lls": lls, "predictions": predictions, "acc": float(accuracy), "questions": four}
