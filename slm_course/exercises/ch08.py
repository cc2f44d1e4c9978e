"""Chapter 8 exercises (instruction finetuning): the loss mask of the collate, a chat-template
formatter, the DPO loss, a task-arithmetic merge, SLERP of two vectors (with its parallel and
antiparallel edge cases, where the formula divides by sin 0 — the idea applied where it breaks) and a
TIES merge (trim, elect a sign, disjoint mean: the lesson's merges carried to a new method).

Expected values come from :mod:`slm_course.finetune.instruct`, ``.dpo`` and ``.merge``.
"""
from __future__ import annotations

import functools

import torch

from slm_course.exercises.compare import compare_values
from slm_course.exercises.core import Case, Problem, call, random_tensor
from slm_course.finetune.dpo import dpo_loss as package_dpo_loss
from slm_course.finetune.instruct import collate, format_chatml
from slm_course.finetune.merge import slerp as package_slerp
from slm_course.finetune.merge import task_arithmetic as package_task_arithmetic
from slm_course.finetune.merge import ties as package_ties

# float32 meets 1e-5 relative; a near-parallel switch at the wrong cosine moves SLERP by 1e-4 and more
_CLOSE = functools.partial(compare_values, rtol=1e-5, atol=1e-6)


def _collate_cases() -> list[Case]:
    batches = [
        ("two rows of different lengths", [([5, 6, 7], [8, 9]), ([1], [2])], 0, 16),
        ("a prompt longer than max_length", [(list(range(10, 40)), [3, 4, 5])], 7, 8),
        ("id 0 inside prompt and answer, pad_id 0", [([0, 12, 0], [0, 250]), ([4, 4], [0])], 0, 6),
        ("an answer that fills max_length", [([9, 8], [1, 2, 3, 4])], 99, 4),
        ("pad_id 2047, three rows", [([1, 2, 3, 4, 5, 6], [7]), ([11], [12, 13, 14]), ([21, 22], [23, 24])], 2047, 5),
        ("the longest row last", [([1], [2]), ([3, 4], [5]), ([6, 7, 8, 9], [10, 11])], 0, 16),
        ("a row of exactly max_length + 1 ids: nothing to cut", [([1, 2, 3], [4, 5, 6]), ([7], [8])], 1, 5),
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
        ([{"role": "user", "content": "  Grüße, señor — ¿qué tal? 日本  \n"}], True),  # kept as given
    ]
    cases = [Case(f"chat_prompt({msgs!r}, add_generation_prompt={gen})", call(msgs, gen),
                  lambda msgs=msgs, gen=gen: format_chatml(msgs, gen)) for msgs, gen in convos]
    short = [{"role": "system", "content": ""}, {"role": "user", "content": "2 + 2?"}]
    cases.append(Case(f"chat_prompt({short!r}) — the default", call(short), lambda: format_chatml(short, True)))
    cases.append(Case(f"chat_prompt({short!r}, add_generation_prompt=False)", call(short, add_generation_prompt=False),
                      lambda: format_chatml(short, False)))
    return cases


def _dpo_cases() -> list[Case]:
    small = [random_tensor(5, seed=s) * 3 - 20 for s in (1, 2, 3, 4)]
    hand = [torch.tensor([-4.0, -6.0]), torch.tensor([-8.0, -5.0]), torch.tensor([-5.0, -5.0]), torch.tensor([-7.0, -6.0])]
    far = [torch.tensor([-10.0, -900.0]), torch.tensor([-900.0, -10.0]), torch.tensor([-10.0, -10.0]),
           torch.tensor([-10.0, -10.0])]  # margins of ±890 nats: log(sigmoid(·)) must not become -inf
    one = [torch.tensor([-70.0]), torch.tensor([-10.0]), torch.tensor([-10.0]), torch.tensor([-10.0])]  # N = 1
    cases = []
    for label, lp, beta in (("random log-probs (5,)", small, 0.1), ("the lesson's hand example", hand, 0.1),
                            ("random log-probs, beta=2.0", small, 2.0), ("margins of ±890 nats, beta=0.5", far, 0.5),
                            ("one pair, margin -60 nats, beta=1.0", one, 1.0)):
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
        Case("task_arithmetic(base=base, finetuned=[c, a], scale=0.3)", call(base=base, finetuned=[c, a], scale=0.3),
             lambda: package_task_arithmetic(base, [c, a], scale=0.3)),
    ]


def _slerp_cases() -> list[Case]:
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    v, w = random_tensor(8, seed=30), random_tensor(8, seed=31) * 3
    m0, m1 = random_tensor(3, 4, seed=32), random_tensor(3, 4, seed=33) * 2
    inputs = [
        ("t=0.5, orthogonal unit vectors", 0.5, e1, e2),
        ("t=0.25, random vectors of different norms", 0.25, v, w),
        ("t=0.0", 0.0, v, w),
        ("t=1.0", 1.0, v, w),
        ("t=0.3, parallel: v1 = 2·v0", 0.3, v, 2 * v),
        ("t=0.25, antiparallel: v1 = -v0", 0.25, v, -v),
        ("t=0.7, nearly parallel (cos θ > 0.9995)", 0.7, e1, torch.tensor([1.0, 0.01])),
        ("t=0.5, cos θ = 0.9993: SLERP, not the linear fallback", 0.5, e1, _at_cosine(0.9993)),
        ("t=0.5, cos θ = 0.9997: the linear fallback", 0.5, e1, _at_cosine(0.9997)),
        ("t=0.5, cos θ = -0.9993: SLERP, not the linear fallback", 0.5, e1, _at_cosine(-0.9993)),
        ("t=0.4, two (3, 4) matrices: one angle for the whole tensor", 0.4, m0, m1),
    ]
    return [Case(f"slerp({label})", call(t, a, b), lambda t=t, a=a, b=b: package_slerp(t, a, b), compare=_CLOSE)
            for label, t, a, b in inputs]


def _at_cosine(c: float) -> torch.Tensor:
    """A unit vector in the plane whose cosine with (1, 0) is ``c``."""
    return torch.tensor([c, (1 - c * c) ** 0.5])


def _ties_cases() -> list[Case]:
    base = {"w": random_tensor(4, 5, seed=40), "b": random_tensor(6, seed=41)}
    fts = [{k: v + random_tensor(*v.shape, seed=42 + 3 * i + j) for j, (k, v) in enumerate(base.items())}
           for i in range(3)]
    zero = {"v": torch.zeros(3)}
    # entry 0: +1, +1, -5 (mass elects -, a count of signs +); entry 1: +0.5, -0.5 (a sum of exactly 0 elects +);
    # entry 2: +2, +4, -1 (the disjoint mean of the agreeing two is 3)
    hand = [{"v": torch.tensor([1.0, 0.5, 2.0])}, {"v": torch.tensor([1.0, -0.5, 4.0])},
            {"v": torch.tensor([-5.0, 0.0, -1.0])}]
    ten = {"v": torch.zeros(10)}
    peaks = [{"v": torch.tensor([0.1, -0.9, 0.3, 0.05, -0.7, 0.2, 0.6, -0.15, 0.01, 0.4])},
             {"v": torch.tensor([-0.2, 0.8, 0.1, 0.5, -0.3, -0.05, 0.25, 0.9, -0.6, 0.02])}]
    scales = {"big": torch.zeros(2, 3), "small": torch.zeros(4)}
    scaled = [{"big": random_tensor(2, 3, seed=50) * 100, "small": random_tensor(4, seed=51) * 0.01},
              {"big": random_tensor(2, 3, seed=52) * 100, "small": random_tensor(4, seed=53) * 0.01}]
    rows = [("base, three random finetunes, density 0.5", base, fts, 0.5),
            ("hand-made: the sign by mass, a sum of exactly 0, the disjoint mean; density 1.0", zero, hand, 1.0),
            ("10 entries, density 0.35: 3 kept, the largest magnitudes negative", ten, peaks, 0.35),
            ("10 entries, density 0.05: still one kept", ten, peaks, 0.05)]
    cases = [Case(f"ties_merge({label})", call(b, f, d), lambda b=b, f=f, d=d: package_ties(b, f, density=d),
                  compare=_CLOSE) for label, b, f, d in rows]
    cases.append(Case("ties_merge(tensors ×100 and ×0.01, density=0.5): each tensor trimmed on its own",
                      call(scales, scaled, density=0.5), lambda: package_ties(scales, scaled, density=0.5),
                      compare=_CLOSE))
    return cases


q1 = Problem(
    name="q1", chapter="08", target="sft_collate", title="the loss mask of the SFT collate", cases=_collate_cases,
    hints=[
        "Join prompt + answer, then inputs = ids[:-1] and labels = ids[1:]. A label is -100 where the token it "
        "predicts is still part of the prompt; pad inputs with pad_id and labels with -100. Too long? Drop tokens "
        "from the START of the prompt (keep max_length + 1 - len(answer) of them), never from the answer.",
        "Worked small: prompt 5 6 7, answer 8 9. The ids are 5 6 7 8 9; inputs 5 6 7 8; labels 6 7 8 9 with the "
        "first two (6 and 7 are prompt tokens) replaced by -100: -100 -100 8 9. A prompt of p tokens masks p - 1 labels.",
    ],
    points=2,
)

q2 = Problem(
    name="q2", chapter="08", target="chat_prompt", title="a ChatML chat-template formatter", cases=_chat_cases,
    hints=[
        "Each message becomes '<|im_start|>' + role + newline + content + '<|im_end|>' + newline; with "
        "add_generation_prompt the text ends with the opening of the assistant's turn.",
        "One message worked out: role user, content Hi gives the text <|im_start|>user, a newline, Hi, "
        "<|im_end|>, a newline. Put content in as given (no strip), and let the keyword's default be True.",
    ],
    points=1,
)

q3 = Problem(
    name="q3", chapter="08", target="dpo_loss", title="the DPO loss", cases=_dpo_cases,
    hints=[
        "Implicit reward = beta · (log π − log π_ref). The loss is −log σ(chosen reward − rejected reward), "
        "averaged over pairs. Use F.logsigmoid, which stays finite where log(torch.sigmoid(·)) gives −inf.",
        "Where it breaks: at a margin of minus 900 nats σ is 0 in float32 and its log is minus infinity, "
        "while log σ of m equals minus softplus of minus m, which never forms σ itself. Average over the pairs last."
    ],
    points=2,
)

q4 = Problem(
    name="q4", chapter="08", target="task_arithmetic", title="a task-arithmetic merge", cases=_task_arithmetic_cases,
    hints=[
        "A task vector is finetuned − base. Add the SUM of the task vectors, times scale, to the base — for every "
        "tensor name — and return a new dict (do not change the inputs).",
        "Worked small, one name: base 1.0, finetunes 1.5 and 0.5, scale 2: the task vectors are +0.5 and -0.5, "
        "their sum 0, the merge 1.0. Build each new tensor with plain minus and plus: += would write into base.",
    ],
    points=1,
)

q5 = Problem(
    name="q5", chapter="08", target="slerp", title="SLERP of two vectors", cases=_slerp_cases,
    hints=[
        "The angle θ comes from the cosine of the NORMALIZED vectors (clamped to [-1, 1]); the result is "
        "sin((1−t)θ)/sin θ · v0 + sin(tθ)/sin θ · v1. When |cos θ| > 0.9995 sin θ ≈ 0: fall back to (1−t)·v0 + t·v1.",
        "The cosine is one number for the whole tensor: multiply the two normalized tensors entry by entry and "
        "sum everything (a matrix gets one angle, not one per row). Test its absolute value against 0.9995 "
        "before you take acos.",
    ],
    points=2,
)


q6 = Problem(
    name="q6", chapter="08", target="ties_merge", title="a TIES merge: trim, elect, disjoint mean",
    cases=_ties_cases,
    hints=[
        "Per tensor name: the task vectors ft − base; keep in each only its k largest entries by magnitude "
        "(k = max(1, int(density · numel))), zero the rest; per entry elect the sign of the trimmed vectors' sum "
        "(0 counts as +); average only the nonzero entries that have that sign; add the average to the base.",
        "One entry worked out: trimmed task values +1, +1 and -5. Their sum is -3, so minus is elected (the "
        "count of signs would say plus); only -5 agrees, so the merge adds -5. With +2, +4, -1 it adds 3.",
    ],
    points=2,
)
