"""The course harness and lm-eval itself (through the adapter) pick the same MMLU answers with the same
log-likelihoods, on a tiny model, through a local-file task (nothing downloaded)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from slm_course.evaluate.benchmarks import mmlu_item, multiple_choice, requests_of
from slm_course.evaluate.datasets import mmlu_questions
from slm_course.evaluate.scoring import loglikelihoods
from slm_course.model import SLM, SLMConfig
from slm_course.tokenizers import course_bpe

pytestmark = [pytest.mark.slow, pytest.mark.asset]


def test_course_harness_agrees_with_lm_eval_on_mmlu_items():
    pytest.importorskip("lm_eval")
    pytest.importorskip("slm_course.generate")  # the course harness shares each context through the KV cache
    from slm_course.evaluate.lm_eval_adapter import evaluate_mmlu_with_lm_eval

    torch.manual_seed(0)
    tokenizer = course_bpe()
    model = SLM(SLMConfig.from_name("tiny", context_length=512)).eval()
    questions = [q for q in mmlu_questions() if len(q.choices) == 4][:24]
    reference = evaluate_mmlu_with_lm_eval(model, tokenizer, questions)
    assert len({q.subject for q in questions}) > 1  # several subjects: each item's own header
    items = [mmlu_item(q.question, q.choices, q.answer, "letter", q.subject) for q in questions]
    assert all(item.context.startswith("The following are multiple choice questions") for item in items)
    ours = [[ll for ll, _ in loglikelihoods(model, tokenizer, requests_of(item))] for item in items]
    assert np.abs(np.array(ours) - np.array(reference["lls"])).max() < 1e-4
    assert [int(np.argmax(row)) for row in ours] == reference["predictions"]
    result = multiple_choice(items, lambda r: loglikelihoods(model, tokenizer, r))["acc"]
    assert result.value == pytest.approx(reference["acc"])
