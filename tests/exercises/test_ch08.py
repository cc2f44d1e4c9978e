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

    def longest_first(pairs, pad_id, max_length):  # sizes the batch by the first row
        inputs, labels = instruct.collate(pairs, pad_id, max_length)
        width = len(_correct_row(list(pairs[0][0]), list(pairs[0][1]), max_length)[0])
        return inputs[:, :width], labels[:, :width]

    def cuts_one_too_early(pairs, pad_id, max_length):  # cuts when the ids (not the inputs) exceed max_length
        def cut(prompt, answer, max_length):
            if len(prompt) + len(answer) > max_length:
                prompt = prompt[-(max_length - len(answer)):]
            ids = prompt + answer
            return ids[:-1], [-100] * (len(prompt) - 1) + answer
        return pad_rows(_rows(pairs, max_length, cut), pad_id)

    check(ch08.q1, [no_prompt_mask, pads_labels_with_pad_id, cuts_the_end, masks_one_too_many, pads_with_zero,
                    longest_first, cuts_one_too_early])
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

    def strips_content(messages, add_generation_prompt=True):
        cleaned = [{**m, "content": m["content"].strip()} for m in messages]
        return instruct.format_chatml(cleaned, add_generation_prompt)

    def default_off(messages, add_generation_prompt=False):  # the statement's default is True
        return instruct.format_chatml(messages, add_generation_prompt)

    def other_keyword(messages, generation_prompt=True):  # chat_prompt(m, add_generation_prompt=False) fails
        return instruct.format_chatml(messages, generation_prompt)

    def ascii_only(messages, add_generation_prompt=True):
        cleaned = [{**m, "content": m["content"].encode("ascii", "ignore").decode()} for m in messages]
        return instruct.format_chatml(cleaned, add_generation_prompt)

    check(ch08.q2, [always_generation_prompt, no_newline_after_end, assistant_without_newline, only_last_message,
                    strips_content, default_off, other_keyword, ascii_only])


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

    def as_float(pc, pr, rc, rr, beta):  # a Python float, not the scalar tensor training backpropagates
        return float(-F.logsigmoid(beta * ((pc - rc) - (pr - rr))).mean())

    check(ch08.q3, [no_reference, beta_outside, naive_log_sigmoid, summed, swapped, as_float])

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

    def other_names(base, models, scale):  # task_arithmetic(base=..., finetuned=..., scale=...) fails
        return merge.task_arithmetic(base, models, scale=scale)

    def edits_a_finetune(base, finetuned, scale):  # reuses the first finetune's tensors for the result
        merged = merge.task_arithmetic(base, finetuned, scale=scale)
        for k in base:
            finetuned[0][k].copy_(merged[k])
        return finetuned[0]

    check(ch08.q4, [averages, forgets_the_base, edits_base_in_place, scales_everything, other_names,
                    edits_a_finetune])
    assert ch08.q4.check(lambda base, finetuned, scale: merge.task_arithmetic(base, finetuned, scale=scale),
                          quiet=True).correct


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

    def switch_at(threshold):
        def slerp(t, v0, v1):
            return merge.slerp(t, v0, v1, dot_threshold=threshold)
        return slerp

    def one_angle_per_row(t, v0, v1):  # a matrix gets one angle per row instead of one for the tensor
        rows = [merge.slerp(t, a, b) for a, b in zip(v0.reshape(-1, v0.shape[-1]), v1.reshape(-1, v1.shape[-1]))]
        return torch.stack(rows).reshape(v0.shape)

    def with_torch_dot(t, v0, v1):  # torch.dot takes 1-D tensors only
        dot = torch.dot(v0 / v0.norm(), v1 / v1.norm()).clamp(-1, 1)
        if dot.abs() > 0.9995:
            return lerp(t, v0, v1)
        theta = torch.acos(dot)
        return (torch.sin((1 - t) * theta) * v0 + torch.sin(t * theta) * v1) / torch.sin(theta)

    check(ch08.q5, [lerp, unnormalized_dot, no_fallback, unit_result, parallel_only, switch_at(0.999),
                    switch_at(0.9999), one_angle_per_row, with_torch_dot])
    assert ch08.q5.check(merge.slerp, quiet=True).correct

    def in_float64(t, v0, v1):  # another right answer: float64 inside, float32 out
        return merge.slerp(t, v0.double(), v1.double()).float()

    assert ch08.q5.check(in_float64, quiet=True).correct


def _ties_with(base, finetuned, density, *, k_of=lambda n, d: max(1, int(d * n)), by=torch.abs,
               elect="mass", positive_on_zero=True, mean="disjoint", per_tensor=True):
    """A TIES merge with one step changed, the way a learner might write it."""
    merged = {}
    for name, b in base.items():
        deltas = []
        for ft in finetuned:
            delta = (ft[name] - b).float()
            k = k_of(delta.numel(), density)
            keep = torch.zeros(delta.numel())
            if k > 0:
                keep[by(delta).flatten().argsort(descending=True)[:k]] = 1
            deltas.append(delta * keep.reshape(delta.shape))
        stacked = torch.stack(deltas)
        votes = stacked.sum(0) if elect == "mass" else stacked.sign().sum(0)
        sign = torch.where(votes >= 0 if positive_on_zero else votes > 0, 1.0, -1.0)
        agree = (stacked.sign() == sign).float()
        if mean == "disjoint":
            merged[name] = b + (stacked * agree).sum(0) / agree.sum(0).clamp(min=1)
        elif mean == "all":
            merged[name] = b + (stacked * agree).sum(0) / len(finetuned)
        else:
            merged[name] = b + (stacked * agree).sum(0)
    return merged


def test_ties_merge():
    def by_value(base, finetuned, density):  # keeps the largest values, not magnitudes
        return _ties_with(base, finetuned, density, by=lambda d: d)

    def rounds_k(base, finetuned, density):
        return _ties_with(base, finetuned, density, k_of=lambda n, d: max(1, round(d * n)))

    def ceil_k(base, finetuned, density):
        return _ties_with(base, finetuned, density, k_of=lambda n, d: max(1, math.ceil(d * n)))

    def no_minimum_of_one(base, finetuned, density):
        return _ties_with(base, finetuned, density, k_of=lambda n, d: int(d * n))

    def majority_of_signs(base, finetuned, density):
        return _ties_with(base, finetuned, density, elect="count")

    def zero_sum_elects_minus(base, finetuned, density):
        return _ties_with(base, finetuned, density, positive_on_zero=False)

    def mean_over_all_models(base, finetuned, density):
        return _ties_with(base, finetuned, density, mean="all")

    def sum_of_agreeing(base, finetuned, density):
        return _ties_with(base, finetuned, density, mean="sum")

    def trims_the_whole_model(base, finetuned, density):  # one top-k over all tensors together
        names = list(base)
        flat = lambda sd: {"all": torch.cat([sd[n].flatten() for n in names])}
        out = _ties_with(flat(base), [flat(f) for f in finetuned], density)["all"]
        sizes = [base[n].numel() for n in names]
        return {n: part.reshape(base[n].shape) for n, part in zip(names, out.split(sizes))}

    def other_keyword(base, finetuned, fraction):  # ties_merge(..., density=0.5) fails
        return merge.ties(base, finetuned, density=fraction)

    def in_place(base, finetuned, density):
        out = merge.ties(base, finetuned, density=density)
        for name in base:
            base[name].copy_(out[name])
        return base

    check(ch08.q6, [by_value, rounds_k, ceil_k, no_minimum_of_one, majority_of_signs, zero_sum_elects_minus,
                    mean_over_all_models, sum_of_agreeing, trims_the_whole_model, other_keyword, in_place])
    assert ch08.q6.check(lambda b, f, density: merge.ties(b, f, density=density), quiet=True).correct
    assert ch08.q6.check(lambda b, f, density: _ties_with(b, f, density), quiet=True).correct  # argsort route


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
