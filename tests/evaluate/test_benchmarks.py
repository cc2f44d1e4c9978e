"""Chapter 9's harness: scoring rules equal lm-eval's definitions, on hand-checked values and tiny models."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from slm_course.evaluate import benchmarks as bm
from slm_course.evaluate.datasets import COURSE_ITEMS, gsm8k_style_problems, mmlu_questions, parse_cot_prompts
from slm_course.evaluate.scoring import Request, encode_pair, loglikelihood_one, loglikelihoods
from slm_course.model import SLM, SLMConfig


class CharTokenizer:
    """One id per character (ids 1..), so token boundaries are easy to reason about in tests."""

    def encode(self, text):
        return [min(ord(c), 250) + 1 for c in text]

    def decode(self, ids):
        return "".join(chr(i - 1) for i in ids)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return SLM(SLMConfig.from_name("tiny", vocab_size=256, context_length=128, n_layers=2)).eval()


def test_encode_pair_moves_trailing_spaces_to_the_continuation_like_lm_eval():
    tok = CharTokenizer()
    context, continuation = encode_pair(tok, "Answer: ", "A")
    assert tok.decode(context) == "Answer:" and tok.decode(continuation) == " A"
    with pytest.raises(ValueError, match="prefix token"):
        encode_pair(tok, "", "A")
    assert encode_pair(tok, "", "A", prefix_id=0) == ([0], tok.encode("A"))


def test_loglikelihood_is_the_sum_of_token_log_probabilities(tiny):
    tok = CharTokenizer()
    context, continuation = tok.encode("to be"), tok.encode(" or")
    ll, greedy = loglikelihood_one(tiny, context, continuation)
    with torch.no_grad():
        logits = tiny(torch.tensor([context + continuation]))[0]
    log_probs = torch.log_softmax(logits.double(), -1)
    by_hand = sum(log_probs[len(context) - 1 + i, t].item() for i, t in enumerate(continuation))
    assert ll == pytest.approx(by_hand, abs=1e-5)
    assert greedy == all(logits[len(context) - 1 + i].argmax().item() == t for i, t in enumerate(continuation))


def test_shared_prefix_cache_gives_the_same_loglikelihoods_as_scoring_alone(tiny):
    pytest.importorskip("slm_course.generate")
    tok = CharTokenizer()
    requests = [Request("The cat sat on the", " mat"), Request("The cat sat on the", " hat, quietly"),
                Request("The cat sat on the", " a"), Request("Dogs", " bark")]
    shared = loglikelihoods(tiny, tok, requests, share_context=True)
    alone = loglikelihoods(tiny, tok, requests, share_context=False)
    for (a, ga), (b, gb) in zip(shared, alone):
        assert a == pytest.approx(b, abs=1e-4) and ga == gb


def test_a_progress_bar_counts_the_contexts_and_changes_no_score(tiny, capsys):
    pytest.importorskip("slm_course.generate")
    tok = CharTokenizer()
    requests = [Request("The cat sat on the", " mat"), Request("The cat sat on the", " hat"), Request("Dogs", " bark")]
    quiet = loglikelihoods(tiny, tok, requests)
    assert "scoring" not in capsys.readouterr().err
    shown = loglikelihoods(tiny, tok, requests, progress=True, desc="MMLU letter")
    assert shown == quiet
    bar = capsys.readouterr().err
    assert "MMLU letter" in bar and "2/2" in bar  # two contexts, each run once


def test_acc_and_acc_norm_can_disagree():
    options = ["yes", "absolutely not"]
    lls = [-3.0, -4.0]  # the long option costs more in total but less per character
    assert bm.pick(lls) == 0 and bm.pick_normalised(lls, options) == 1
    assert bm.pick([-1.0, -1.0]) == 0  # a tie goes to the first option, as numpy.argmax


def test_mmlu_prompts_match_lm_eval_templates():
    q = "What is 2 + 2?"
    item = bm.mmlu_item(q, ["3", "4", "5", "6"], 1, "letter")
    assert item.context == "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:" and item.options == ["A", "B", "C", "D"]
    cloze = bm.mmlu_item(q, ["3", "4", "5", "6"], 1, "cloze")
    assert cloze.context == "Question: What is 2 + 2?\nAnswer:" and cloze.options == ["3", "4", "5", "6"]
    assert [r.continuation for r in bm.requests_of(cloze)] == [" 3", " 4", " 5", " 6"]
    with pytest.raises(ValueError, match="letter"):
        bm.mmlu_item(q, ["3", "4"], 0, "other")


@pytest.mark.parametrize("subject", ["anatomy", "high_school_us_history", "college_computer_science"])
def test_mmlu_header_is_lm_evals_description_of_the_subject(subject):
    """The header is what lm-eval 0.4.13's own mmlu_<subject>.yaml (letter) and its continuation task (cloze) say."""
    yaml = pytest.importorskip("yaml")
    tasks = Path(pytest.importorskip("lm_eval").__file__).parent / "tasks" / "mmlu"

    def description(kind: str) -> str:
        return yaml.safe_load((tasks / kind / f"mmlu_{subject}.yaml").read_text(encoding="utf-8"))["description"]

    letter = bm.mmlu_item("What is 2 + 2?", ["3", "4", "5", "6"], 1, "letter", subject)
    cloze = bm.mmlu_item("What is 2 + 2?", ["3", "4", "5", "6"], 1, "cloze", subject)
    assert letter.context == description("default") + "What is 2 + 2?\nA. 3\nB. 4\nC. 5\nD. 6\nAnswer:"
    assert cloze.context == description("continuation") + "Question: What is 2 + 2?\nAnswer:"
    assert letter.context.startswith("The following are multiple choice questions (with answers) about ")
    assert bm.mmlu_header("") == ""
    with pytest.raises(ValueError, match="letter"):
        bm.mmlu_header(subject, "other")


def test_the_asset_has_282_mmlu_questions_in_57_subjects():
    questions = mmlu_questions()
    assert len(questions) == 282 and len({q.subject for q in questions}) == 57
    assert all(0 <= q.answer < len(q.choices) for q in questions)


def test_cot_parser_reads_options_on_one_line_or_several():
    text = ("The following are …\n\nQ: One?\n(A) a (B) b (C) c (D) d\nA: Let's think. The answer is (B).\n\n"
            "Q: Two?\n(A) x\n(B) y\n(C) z\n(D) w\n(E) v\nA: The answer is (E).\n\n")
    parsed = parse_cot_prompts({"s": text})
    assert [(q.question, q.choices, q.answer) for q in parsed] == [
        ("One?", ("a", "b", "c", "d"), 1), ("Two?", ("x", "y", "z", "w", "v"), 4)]


def test_winogrande_partial_scoring_shares_the_continuation():
    requests, continuation = bm.winogrande_requests("The trophy did not fit because the _ was too big.", "trophy", "case")
    assert continuation == " was too big."
    assert [r.context for r in requests] == ["The trophy did not fit because the trophy", "The trophy did not fit because the case"]
    with pytest.raises(ValueError, match="one blank"):
        bm.winogrande_requests("no blank here", "a", "b")


def test_truthfulqa_mc2_is_the_normalised_mass_on_true_answers():
    lls = [math.log(0.2), math.log(0.1), math.log(0.1)]
    assert bm.truthfulqa_mc2(lls, true_count=1) == pytest.approx(0.5)
    assert bm.truthfulqa_mc2(lls, true_count=2) == pytest.approx(0.75)


@pytest.mark.parametrize("text, strict, flexible", [
    ("She has 3 + 4 = 7 apples.\n#### 7", "7", "7"),
    ("The answer is 1,234.", None, "1,234."),
    ("#### -5 and then 12 more", "-5", "12"),
    ("no number at all", None, None),
    ("It costs $12.50 in total", None, "$12.50"),
])
def test_gsm8k_extraction_follows_lm_eval_regexes(text, strict, flexible):
    assert bm.extract_strict(text) == strict
    assert bm.extract_flexible(text) == flexible


def test_gsm8k_normalisation_drops_commas_dollars_and_a_final_stop():
    assert bm.normalise_number("1,234.") == "1234" and bm.normalise_number("$12") == "12"
    assert bm.normalise_number(None) is None


def test_gsm8k_style_problems_are_seeded_and_self_consistent():
    problems = gsm8k_style_problems(50, seed=3)
    assert problems == gsm8k_style_problems(50, seed=3) and problems != gsm8k_style_problems(50, seed=4)
    for p in problems:
        assert bm.normalise_number(bm.extract_strict(p["answer"])) == p["target"] and int(p["target"]) > 0


def test_results_carry_standard_error_baseline_and_interval():
    result = bm.Result("x", [1.0, 0.0, 1.0, 1.0], baseline=0.25)
    assert result.value == 0.75
    assert result.stderr == pytest.approx(np.std([1, 0, 1, 1], ddof=1) / 2)
    assert result.centred == pytest.approx((0.75 - 0.25) / 0.75)
    low, high = result.bootstrap(200, seed=0)
    assert 0 <= low <= 0.75 <= high <= 1


def test_multiple_choice_on_course_items_runs_and_reports_both_metrics(tiny):
    tok = CharTokenizer()
    items = [bm.MultipleChoiceItem(f"Question: {d['question']}\nAnswer:", d["choices"], d["answer"]) for d in COURSE_ITEMS["arc"]]
    results = bm.multiple_choice(items, lambda r: loglikelihoods(tiny, tok, r, share_context=False), name="arc")
    assert set(results) == {"acc", "acc_norm"} and len(results["acc"].scores) == len(items)
    assert results["acc"].baseline == pytest.approx(0.25)


def test_few_shot_prefix_is_seeded_and_refuses_too_many_shots():
    shots = [bm.mmlu_item(f"Q{i}?", ["a", "b", "c", "d"], i % 4) for i in range(6)]
    assert bm.few_shot_prefix(shots, 2, seed=1) == bm.few_shot_prefix(shots, 2, seed=1)
    assert bm.few_shot_prefix(shots, 2, seed=1).count("Answer:") == 2
    with pytest.raises(ValueError, match="only 6"):
        bm.few_shot_prefix(shots, 7)


def test_published_table_rows_average_to_the_printed_averages():
    from slm_course.evaluate.published import OPENELM_TABLE, TASKS

    for row in OPENELM_TABLE:
        assert len(row["scores"]) == len(TASKS)
        assert sum(row["scores"]) / len(TASKS) == pytest.approx(row["average"], abs=0.006), row["model"]


def test_quality_vs_size_plot_labels_every_source():
    import matplotlib
    matplotlib.use("Agg")
    from slm_course.evaluate.published import OPENELM_TABLE, plot_quality_vs_size

    fig = plot_quality_vs_size({"course SmolLM2": (0.135, 2.0, 40.0)})
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert all(any(row["model"] == t for t in texts) for row in OPENELM_TABLE)
    assert "course SmolLM2" in texts and "SmolLM2-135M (card)" in texts
    assert all(ax.get_xscale() == "log" and ax.get_ylabel() for ax in fig.axes)


@pytest.mark.parametrize("task", ["HellaSwag", "WinoGrande", "ARC-c"])
def test_quality_vs_size_labels_overlap_no_label_nor_the_legend(task):
    import itertools

    import matplotlib
    matplotlib.use("Agg")
    from slm_course.evaluate.published import plot_quality_vs_size

    fig = plot_quality_vs_size({"measured here": (0.135, 2.0, 40.0)}, task=task)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        boxes = [t.get_window_extent(renderer) for t in ax.texts]
        assert len(boxes) == 12 if task != "ARC-c" else len(boxes) == 11  # ten published, the card (not ARC-c), ours
        assert not [(a.get_text(), b.get_text()) for a, b in itertools.combinations(ax.texts, 2)
                    if a.get_window_extent(renderer).overlaps(b.get_window_extent(renderer))]
        legend = ax.get_legend().get_window_extent(renderer)
        assert not any(box.overlaps(legend) for box in boxes)
        frame = ax.get_window_extent(renderer)
        assert all(frame.x0 <= b.x0 and b.x1 <= frame.x1 and frame.y0 <= b.y0 and b.y1 <= frame.y1 for b in boxes)


def test_multiple_choice_diagram_draws_every_option_and_marks_the_pick():
    from slm_course.diagrams.ch09 import multiple_choice_scoring
    from slm_course.diagrams.drawing import count_gids, texts

    fig = multiple_choice_scoring([" A", " B", " C"], [-2.0, -0.5, -3.0], answer=0, show=False)
    assert count_gids(fig, "option") == 3 and count_gids(fig, "cache") == 1
    drawn = texts(fig)
    assert any("← picked" in t and "-0.50" in t for t in drawn) and any("right answer" in t for t in drawn)
    with pytest.raises(ValueError, match="log-likelihoods"):
        multiple_choice_scoring([" A"], [-1.0, -2.0], show=False)
