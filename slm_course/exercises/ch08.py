"""Chapter 8 exercises (instruction finetuning): the loss mask of the collate, a chat-template
formatter, the DPO loss, a task-arithmetic merge and SLERP of two vectors (with its parallel and
antiparallel edge cases, where the formula divides by sin 0 — the idea applied where it breaks).

Expected values come from :mod:`slm_course.finetune.instruct`, ``.dpo`` and ``.merge``.
"""
from __future__ import annotations

import torch

from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.finetune.dpo import dpo_loss as package_dpo_loss
from slm_course.finetune.instruct import collate, format_chatml
from slm_course.finetune.merge import slerp as package_slerp
from slm_course.finetune.merge import task_arithmetic as package_task_arithmetic


def _collate_cases() -> list[Case]:
    batches = [
        ("two rows of different lengths", [([5, 6, 7], [8, 9]), ([1], [2])], 0, 16),
        ("a prompt longer than max_length", [(list(range(10, 40)), [3, 4, 5])], 7, 8),
        ("id 0 inside prompt and answer, pad_id 0", [([0, 12, 0], [0, 250]), ([4, 4], [0])], 0, 6),
        ("an answer that fills max_length", [([9, 8], [1, 2, 3, 4])], 99, 4),
        ("pad_id 2047, three rows", [([1, 2, 3, 4, 5, 6], [7]), ([11], [12, 13, 14]), ([21, 22], [23, 24])], 2047, 5),
    ]
    return [Case(f"sft_collate({label})", call(pairs, pad, length),
                 lambda pairs=pairs, pad=pad, length=length: collate(pairs, pad, length))
            for label, pairs, pad, length in batches]


def _chat_cases() -> list[Case]:
    convos = [
        ([{"role": "user", "content": "Reverse the list: owl, fox"}], True),
        ([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3 + 4?"}], True),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
          {"role": "user", "content": "Line one\nline two: {\"a\": 1}"}], True),
        ([{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}], False),
    ]
    return [Case(f"chat_prompt({msgs!r}, add_generation_prompt={gen})", call(msgs, gen),
                 lambda msgs=msgs, gen=gen: format_chatml(msgs, gen)) for msgs, gen in convos]


def _dpo_cases() -> list[Case]:
    small = [random_tensor(5, seed=s) * 3 - 20 for s in (1, 2, 3, 4)]
    hand = [torch.tensor([-4.0, -6.0]), torch.tensor([-8.0, -5.0]), torch.tensor([-5.0, -5.0]), torch.tensor([-7.0, -6.0])]
    far = [torch.tensor([-10.0, -900.0]), torch.tensor([-900.0, -10.0]), torch.tensor([-10.0, -10.0]),
           torch.tensor([-10.0, -10.0])]  # margins of ±890 nats: log(sigmoid(·)) must not become -inf
    cases = []
    for label, lp, beta in (("random log-probs (5,)", small, 0.1), ("the lesson's hand example", hand, 0.1),
                            ("random log-probs, beta=2.0", small, 2.0), ("margins of ±890 nats, beta=0.5", far, 0.5)):
        cases.append(Case(f"dpo_loss({label})", call(*lp, beta),
                          lambda lp=lp, beta=beta: package_dpo_loss(*lp, beta=beta).loss))
    return cases


def _task_arithmetic_cases() -> list[Case]:
    base = {"w": random_tensor(3, 4, seed=5), "b": random_tensor(4, seed=6)}
    a = {k: v + random_tensor(*v.shape, seed=7 + i) * 0.1 for i, (k, v) in enumerate(base.items())}
    b = {k: v + random_tensor(*v.shape, seed=17 + i) * 0.1 for i, (k, v) in enumerate(base.items())}
    c = {k: v - 0.2 for k, v in base.items()}
    return [
        Case("task_arithmetic(base, [a, b], scale=1.0)", call(base, [a, b], 1.0),
             lambda: package_task_arithmetic(base, [a, b], scale=1.0)),
        Case("task_arithmetic(base, [a, b, c], scale=0.5)", call(base, [a, b, c], 0.5),
             lambda: package_task_arithmetic(base, [a, b, c], scale=0.5)),
        Case("task_arithmetic(base, [a], scale=2.0)", call(base, [a], 2.0),
             lambda: package_task_arithmetic(base, [a], scale=2.0)),
    ]


def _slerp_cases() -> list[Case]:
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    v, w = random_tensor(8, seed=30), random_tensor(8, seed=31) * 3
    inputs = [
        ("t=0.5, orthogonal unit vectors", 0.5, e1, e2),
        ("t=0.25, random vectors of different norms", 0.25, v, w),
        ("t=0.0", 0.0, v, w),
        ("t=1.0", 1.0, v, w),
        ("t=0.3, parallel: v1 = 2·v0", 0.3, v, 2 * v),
        ("t=0.25, antiparallel: v1 = -v0", 0.25, v, -v),
        ("t=0.7, nearly parallel (cos θ > 0.9995)", 0.7, e1, torch.tensor([1.0, 0.01])),
    ]
    return [Case(f"slerp({label})", call(t, a, b), lambda t=t, a=a, b=b: package_slerp(t, a, b))
            for label, t, a, b in inputs]


q1 = Problem(
    name="q1", chapter="08", target="sft_collate", title="the loss mask of the SFT collate", cases=_collate_cases,
    hints=[
        "Join prompt + answer, then inputs = ids[:-1] and labels = ids[1:]. A label is -100 where the token it "
        "predicts is still part of the prompt; pad inputs with pad_id and labels with -100. Too long? Drop tokens "
        "from the START of the prompt (keep max_length + 1 - len(answer) of them), never from the answer.",
        "Skeleton, per row:\n"
        "    prompt = prompt[-(max_length + 1 - len(answer)):]\n"
        "    ids = prompt + answer\n"
        "    x, y = ids[:-1], [-100] * (len(prompt) - ____) + ____\n"
        "then make (B, T) tensors filled with pad_id / -100 (T = the longest x) and copy each row in.",
    ],
    points=2,
)

q2 = Problem(
    name="q2", chapter="08", target="chat_prompt", title="a ChatML chat-template formatter", cases=_chat_cases,
    hints=[
        "Each message becomes '<|im_start|>' + role + newline + content + '<|im_end|>' + newline; with "
        "add_generation_prompt the text ends with the opening of the assistant's turn.",
        "Skeleton:\n"
        "    text = ''.join(f'<|im_start|>{____}\\n{____}<|im_end|>\\n' for m in messages)\n"
        "    return text + ('____' if add_generation_prompt else '')",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="08", target="dpo_loss", title="the DPO loss", cases=_dpo_cases,
    hints=[
        "Implicit reward = beta · (log π − log π_ref). The loss is −log σ(chosen reward − rejected reward), "
        "averaged over pairs. Use F.logsigmoid, which stays finite where log(torch.sigmoid(·)) gives −inf.",
        "Skeleton:\n"
        "    margin = beta * ((policy_chosen - ____) - (policy_rejected - ____))\n"
        "    return -F.____(margin).____()",
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="08", target="task_arithmetic", title="a task-arithmetic merge", cases=_task_arithmetic_cases,
    hints=[
        "A task vector is finetuned − base. Add the SUM of the task vectors, times scale, to the base — for every "
        "tensor name — and return a new dict (do not change the inputs).",
        "Skeleton:\n"
        "    return {name: base[name] + ____ * sum(ft[name] - ____ for ft in finetuned) for name in ____}",
    ],
    points=1,
)

q5 = Problem(
    name="q5", chapter="08", target="slerp", title="SLERP of two vectors", cases=_slerp_cases,
    hints=[
        "The angle θ comes from the cosine of the NORMALIZED vectors (clamped to [-1, 1]); the result is "
        "sin((1−t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1. When |cos θ| > 0.9995 sin θ ≈ 0: fall back to (1−t)·v0 + t·v1.",
        "Skeleton:\n"
        "    dot = ((v0 / v0.norm()) * (v1 / ____)).sum().clamp(____, ____)\n"
        "    if dot.abs() > 0.9995:\n"
        "        return ____\n"
        "    theta = torch.acos(dot)\n"
        "    return (torch.sin((1 - t) * theta) * v0 + torch.sin(____) * v1) / ____",
    ],
    points=2,
)

