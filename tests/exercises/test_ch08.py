"""Chapter 8's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import math

import torch
import torch.nn.functional as F

from slm_course.exercises import ch08
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects
from slm_course.finetune import dpo, instruct, merge
from slm_course.finetune.instruct import pad_rows

SOLVED = notebook_objects("08")
STUB = notebook_objects("08", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def _rows(pairs, max_length, cut):
    out = []
    for prompt, answer in pairs:
        out.append(cut(list(prompt), list(answer), max_length))
    return out


def _correct_row(prompt, answer, max_length):
    prompt = prompt[-(max_length + 1 - len(answer)):]
    ids = prompt + answer
    return ids[:-1], [-100] * (len(prompt) - 1) + answer


def test_sft_collate():
    def no_prompt_mask(pairs, pad_id, max_length):
        rows = [(r[0], (p[-(max_length + 1 - len(a)):] + a)[1:]) for r, (p, a) in
                zip(_rows(pairs, max_length, _correct_row), pairs)]
        return pad_rows(rows, pad_id)

    def pads_labels_with_pad_id(pairs, pad_id, max_length):
        return pad_rows(_rows(pairs, max_length, _correct_row), pad_id, label_pad=pad_id)

    def cuts_the_end(pairs, pad_id, max_length):  # keeps the prompt's start, so the answer is cut off
        def cut(prompt, answer, max_length):
            ids = (prompt + answer)[: max_length + 1]
            n = len(prompt)
            return ids[:-1], [-100] * (n - 1) + ids[n:]
        return pad_rows(_rows(pairs, max_length, cut), pad_id)

    def masks_one_too_many(pairs, pad_id, max_length):  # the first answer token is never learned
        def cut(prompt, answer, max_length):
            x, y = _correct_row(prompt, answer, max_length)
            return x, [-100] * len(prompt[-(max_length + 1 - len(answer)):]) + answer[1:]
        return pad_rows(_rows(pairs, max_length, cut), pad_id)

    def pads_with_zero(pairs, pad_id, max_length):
        return pad_rows(_rows(pairs, max_length, _correct_row), 0)

    check(ch08.q1, [no_prompt_mask, pads_labels_with_pad_id, cuts_the_end, masks_one_too_many, pads_with_zero])
    assert ch08.q1.check(instruct.collate, quiet=True).correct


def test_chat_prompt():
    def always_generation_prompt(messages, add_generation_prompt=True):
        return instruct.format_chatml(messages, True)

    def no_newline_after_end(messages, add_generation_prompt=True):
        return instruct.format_chatml(messages, add_generation_prompt).replace("<|im_end|>\n", "<|im_end|>")

    def assistant_without_newline(messages, add_generation_prompt=True):
        text = instruct.format_chatml(messages, False)
        return text + ("<|im_start|>assistant" if add_generation_prompt else "")

    def only_last_message(messages, add_generation_prompt=True):
        return instruct.format_chatml(messages[-1:], add_generation_prompt)

    check(ch08.q2, [always_generation_prompt, no_newline_after_end, assistant_without_newline, only_last_message])


def test_dpo_loss():
    def no_reference(pc, pr, rc, rr, beta):
        return -F.logsigmoid(beta * (pc - pr)).mean()

    def beta_outside(pc, pr, rc, rr, beta):
        return -beta * F.logsigmoid((pc - rc) - (pr - rr)).mean()

    def naive_log_sigmoid(pc, pr, rc, rr, beta):  # -inf → inf for a margin of -445
        return -torch.log(torch.sigmoid(beta * ((pc - rc) - (pr - rr)))).mean()

    def summed(pc, pr, rc, rr, beta):
        return -F.logsigmoid(beta * ((pc - rc) - (pr - rr))).sum()

    def swapped(pc, pr, rc, rr, beta):
        return -F.logsigmoid(beta * ((pr - rr) - (pc - rc))).mean()

    check(ch08.q3, [no_reference, beta_outside, naive_log_sigmoid, summed, swapped])

    def softplus_form(pc, pr, rc, rr, beta):  # -log σ(z) = softplus(-z): a correct alternative
        return F.softplus(-beta * ((pc - rc) - (pr - rr))).mean()

    assert ch08.q3.check(softplus_form, quiet=True).correct


def test_task_arithmetic():
    def averages(base, finetuned, scale):
        return {k: base[k] + scale * sum(f[k] - base[k] for f in finetuned) / len(finetuned) for k in base}

    def forgets_the_base(base, finetuned, scale):
        return {k: scale * sum(f[k] - base[k] for f in finetuned) for k in base}

    def edits_base_in_place(base, finetuned, scale):
        for k in base:
            base[k] += scale * sum(f[k] - base[k] for f in finetuned)
        return base

    def scales_everything(base, finetuned, scale):
        return {k: scale * (base[k] + sum(f[k] - base[k] for f in finetuned)) for k in base}

    check(ch08.q4, [averages, forgets_the_base, edits_base_in_place, scales_everything])
    assert ch08.q4.check(lambda b, f, s: merge.task_arithmetic(b, f, scale=s), quiet=True).correct


def test_slerp():
    def lerp(t, v0, v1):
        return (1 - t) * v0 + t * v1

    def unnormalized_dot(t, v0, v1):  # acos of a dot product above 1: nan
        dot = (v0 * v1).sum().clamp(-1, 1)
        if dot.abs() > 0.9995:
            return lerp(t, v0, v1)
        theta = torch.acos(dot)
        return (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)

    def no_fallback(t, v0, v1):  # parallel and antiparallel divide by sin 0
        dot = ((v0 / v0.norm()) * (v1 / v1.norm())).sum().clamp(-1, 1)
        theta = torch.acos(dot)
        return (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)

    def unit_result(t, v0, v1):  # slerps the directions and forgets the lengths
        return merge.slerp(t, v0 / v0.norm(), v1 / v1.norm())

    def parallel_only(t, v0, v1):  # falls back for parallel but not antiparallel vectors
        dot = ((v0 / v0.norm()) * (v1 / v1.norm())).sum().clamp(-1, 1)
        if dot > 0.9995:
            return lerp(t, v0, v1)
        theta = torch.acos(dot)
        return (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)

    check(ch08.q5, [lerp, unnormalized_dot, no_fallback, unit_result, parallel_only])
    assert ch08.q5.check(merge.slerp, quiet=True).correct


def test_solutions_equal_the_package():
    pairs = [([5, 6, 7], [8, 9]), (list(range(1, 30)), [3])]
    for a, b in zip(SOLVED["sft_collate"](pairs, 0, 8), instruct.collate(pairs, 0, 8)):
        assert torch.equal(a, b)
    msgs = [{"role": "user", "content": "x"}]
    assert SOLVED["chat_prompt"](msgs) == instruct.format_chatml(msgs)
    lp = [torch.tensor([-3.0, -9.0]), torch.tensor([-5.0, -2.0]), torch.tensor([-4.0, -4.0]), torch.tensor([-4.0, -3.0])]
    torch.testing.assert_close(SOLVED["dpo_loss"](*lp, 0.3), dpo.dpo_loss(*lp, beta=0.3).loss)
    v0, v1 = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([-1.0, 0.3, 2.0])
    torch.testing.assert_close(SOLVED["slerp"](0.4, v0, v1), merge.slerp(0.4, v0, v1))
    assert math.isclose(float(SOLVED["slerp"](0.5, torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])).norm()), 1.0,
                        rel_tol=1e-6)
