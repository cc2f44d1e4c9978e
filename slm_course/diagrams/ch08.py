"""Chapter 8's diagrams: the SFT label mask, RLHF against DPO, TIES merging, a merge tree, knowledge fusion.

``sft_label_mask(pairs, …)`` draws the batch :func:`slm_course.finetune.instruct.collate` makes: each row's
input tokens above their labels, prompt / answer / padding coloured, −100 where the loss skips.
``dpo_vs_rlhf()`` shows the two pipelines from the same preference pairs: RLHF fits a reward model
and then samples and optimizes the policy with PPO against it (a KL penalty to the reference);
DPO reads the pairs directly into one classification-style loss over the policy and a frozen
reference. ``ties_merge()`` draws task vectors and TIES's trim → elect → merge on one small weight vector,
every number from :func:`slm_course.finetune.merge.ties_stages`. ``merge_tree(tree, scores)`` draws a
:class:`slm_course.finetune.merge.MergeNode` tree, leaves at the bottom, each node labelled with its
method and score. ``teacher_fusion(teachers, …)`` draws several teachers' next-token distributions fused
(average and MinCE, from :func:`slm_course.finetune.fuse.fused_targets`) into a student's target.
The ``*_data`` functions return the numbers each figure draws, so tests compare them with the package.
"""
from __future__ import annotations

from typing import Mapping

from slm_course.diagrams.drawing import INK, MUTED, PAPER, arrow, box, canvas, colour, finish


def dpo_vs_rlhf(*, show: bool = True):
    """Two rows from the same preference pairs: RLHF's four stages (top) and DPO's one loss (bottom)."""
    fig, ax = canvas(11, 4.2, title="RLHF trains a reward model and runs PPO; DPO optimizes the pairs directly")
    box(ax, 0.1, 1.55, 1.9, 1.1, "preference pairs\n(prompt, chosen,\nrejected)", fill=colour(0), text_colour="white",
        gid="pairs", fontsize=10)
    top = [("reward model\n(fit on pairs)", 2.7), ("sample replies\nfrom the policy", 5.0),
           ("PPO update\n+ KL to reference", 7.3)]
    for i, (text, x) in enumerate(top):
        box(ax, x, 2.75, 1.9, 1.05, text, fill=PAPER, gid=f"rlhf-{i}", fontsize=10)
    arrow(ax, (2.0, 2.4), (2.7, 3.2))
    arrow(ax, (4.6, 3.27), (5.0, 3.27), text="score")
    arrow(ax, (6.9, 3.27), (7.3, 3.27))
    arrow(ax, (8.25, 3.8), (6.0, 3.8), curve=0.35, text="repeat")
    box(ax, 9.5, 2.75, 1.4, 1.05, "policy", fill=colour(1), text_colour="white", gid="rlhf-policy")
    arrow(ax, (9.2, 3.27), (9.5, 3.27))
    box(ax, 2.7, 0.35, 6.5, 1.05, "DPO loss  −log σ(β·[(log π − log π_ref)(chosen) − (same)(rejected)])\n"
        "policy + frozen reference; no reward model, no sampling", fill=PAPER, gid="dpo-loss", fontsize=10)
    arrow(ax, (2.0, 1.8), (2.7, 0.9))
    box(ax, 9.5, 0.35, 1.4, 1.05, "policy", fill=colour(1), text_colour="white", gid="dpo-policy")
    arrow(ax, (9.2, 0.87), (9.5, 0.87))
    ax.text(0.1, 3.95, "RLHF", fontsize=12, weight="bold", color=INK)
    ax.text(0.1, 1.2, "DPO", fontsize=12, weight="bold", color=INK)
    return finish(fig, show)


def merge_tree(tree, scores: Mapping[str, float] | None = None, *, show: bool = True):
    """Draw ``tree`` (a ``MergeNode``): leaves on the bottom row, each merge above its inputs, with
    ``scores[name]`` (e.g. mean exact match) printed in every box that has one."""
    from slm_course.finetune.merge import MergeNode

    if not isinstance(tree, MergeNode):
        raise TypeError(f"merge_tree draws a MergeNode tree, got {type(tree).__name__}.")
    scores = dict(scores or {})
    depth: dict[str, int] = {}
    methods: dict[str, str] = {}

    def walk(node, level):  # level 0 = leaves; a node sits one above its highest input
        if not isinstance(node, MergeNode):
            depth[node] = 0
            return 0
        level = 1 + max(walk(child, 0) for child in node.inputs)
        depth[node.name], methods[node.name] = level, node.method
        return level

    top = walk(tree, 0)
    rows: dict[int, list[str]] = {}
    for name in dict.fromkeys(tree.names()):
        rows.setdefault(depth[name], []).append(name)
    width = max(len(r) for r in rows.values()) * 2.6 + 0.4
    fig, ax = canvas(width, 1.5 * (top + 1) + 0.3, title="A merge tree: every node a merge of the ones below it")
    where: dict[str, tuple[float, float]] = {}
    for level, names in rows.items():
        step = width / len(names)
        for i, name in enumerate(names):
            x, y = step * i + (step - 2.2) / 2, 0.2 + 1.5 * level
            label = name + (f"\n{methods[name]}" if name in methods else "")
            label += f"\nscore {scores[name]:.2f}" if name in scores else ""
            box(ax, x, y, 2.2, 1.0, label, fill=colour(level) if level else PAPER,
                text_colour="white" if level else INK, gid=f"node-{name}", fontsize=9)
            where[name] = (x + 1.1, y)
    for child, parent in tree.edges():
        (cx, cy), (px, py) = where[child], where[parent]
        arrow(ax, (cx, cy + 1.0), (px, py), gid=f"edge-{child}-{parent}")
    return finish(fig, show)


# --------------------------------------------------------------------------- the SFT label mask

ROLE_FILL = {"prompt": PAPER, "answer": colour(2), "pad": "#E2E2E2"}


def _visible(text: str) -> str:
    """A token's text with its spaces and newlines made visible (· and ↵), shortened to fit a cell."""
    text = text.replace(" ", "·").replace("\n", "↵")
    return text if len(text) <= 7 else text[:6] + "…"


def sft_mask_data(pairs, pad_id: int, max_length: int) -> dict:
    """What :func:`sft_label_mask` draws: ``instruct.collate(pairs, pad_id, max_length)`` as lists.

    Returns ``inputs`` and ``labels`` (one list per row, padded to the batch's length ``T``) and ``roles``:
    per position ``"answer"`` where the label is learned (not -100), ``"pad"`` after a row's last learned
    label (the collate right-pads, and every row ends with its answer), ``"prompt"`` before it where the
    label is -100; ``input_roles`` the same for the input token at each position (the token labelled one
    position earlier); ``counts`` is each row's number of labels per role."""
    from slm_course.finetune.instruct import IGNORE_INDEX, collate

    inputs, labels = collate(pairs, pad_id, max_length)
    roles, input_roles = [], []
    for row in labels.tolist():
        last = max(t for t, label in enumerate(row) if label != IGNORE_INDEX)
        roles.append(["answer" if label != IGNORE_INDEX else "pad" if t > last else "prompt"
                      for t, label in enumerate(row)])
        # the input at t is the token labelled at t − 1: an answer token when that label is learned
        input_roles.append(["pad" if t > last else "answer" if t and row[t - 1] != IGNORE_INDEX else "prompt"
                            for t in range(len(row))])
    counts = [{role: row.count(role) for role in ROLE_FILL} for row in roles]
    return {"inputs": inputs.tolist(), "labels": labels.tolist(), "roles": roles, "input_roles": input_roles,
            "counts": counts}


def sft_label_mask(pairs, pad_id: int, max_length: int, token_text=None, *, head: int = 3, tail: int = 18,
                   show: bool = True):
    """The batch ``instruct.collate`` makes of ``pairs`` (``(prompt_ids, answer_ids)``): for each row its input
    tokens (gid ``input-r``) above its labels (gid ``label-r``), coloured prompt / answer / padding, with
    "−100" where the loss skips a position. A long batch shows its first ``head`` and last ``tail``
    positions; every row's counts of the three roles are printed beside it. ``token_text(id)`` names a
    token (default: the id)."""
    data = sft_mask_data(pairs, pad_id, max_length)
    T = len(data["inputs"][0])
    shown = list(range(T)) if T <= head + tail + 1 else [*range(head), None, *range(T - tail, T)]
    name = (lambda i: str(i)) if token_text is None else (lambda i: _visible(token_text(i)))
    cell, left, rows = 0.66, 1.25, len(data["inputs"])
    width = left + len(shown) * cell + 2.3
    figure, ax = canvas(width, 1.6 * rows + 0.85, title="The SFT collate: only the answer is in the loss; "
                                                        "prompt and padding get the label −100")
    for r in range(rows):
        y = 1.6 * (rows - 1 - r) + 0.55
        ax.text(left - 0.1, y + 0.78, f"row {r} input", ha="right", va="center", fontsize=9, color=INK)
        ax.text(left - 0.1, y + 0.22, "label (next)", ha="right", va="center", fontsize=9, color=INK)
        for k, t in enumerate(shown):
            x = left + k * cell
            if t is None:
                ax.text(x + cell / 2, y + 0.5, "…", ha="center", va="center", fontsize=12, color=MUTED)
                continue
            label = data["labels"][r][t]
            label_text = "−100" if label == -100 else name(label)
            for role, text, dy, gid in ((data["input_roles"][r][t], name(data["inputs"][r][t]), 0.55, "input"),
                                        (data["roles"][r][t], label_text, 0.0, "label")):
                ink = "white" if role == "answer" else (MUTED if role == "pad" else INK)
                box(ax, x, y + dy, cell, 0.46, text, fill=ROLE_FILL[role], rounded=False, fontsize=7.5,
                    gid=f"{gid}-{r}", text_colour=ink)
            if r == 0:
                ax.text(x + cell / 2, 1.6 * rows + 0.1, str(t), ha="center", va="bottom", fontsize=7, color=MUTED)
        c = data["counts"][r]
        ax.text(left + len(shown) * cell + 0.15, y + 0.5,
                f"labels:\n{c['prompt']} prompt (−100)\n{c['answer']} answer\n{c['pad']} pad (−100)",
                va="center", fontsize=8.5, color=INK)
    for k, (role, text) in enumerate([("prompt", "prompt: label −100"), ("answer", "answer: learned"),
                                      ("pad", "padding: label −100")]):
        box(ax, left + k * 2.6, 0.02, 0.35, 0.3, fill=ROLE_FILL[role], rounded=False, gid=f"legend-{role}")
        ax.text(left + k * 2.6 + 0.45, 0.17, text, va="center", fontsize=9, color=INK)
    ax.text(left + 3 * 2.6, 0.17, "label at t = input at t + 1", va="center", fontsize=9, color=MUTED, style="italic")
    return finish(figure, show)


# --------------------------------------------------------------------------- task vectors and TIES

def ties_data(base, a, b, density: float = 0.5) -> dict:
    """TIES on two finetunes ``a``, ``b`` of the 1-D tensor ``base`` (equal weights), every stage from
    :func:`slm_course.finetune.merge.ties_stages`, as lists: ``base``, ``tau`` (two task vectors),
    ``trimmed`` (two), ``elected`` (±1), ``agree`` (two 0/1 rows), ``delta`` and ``merged``."""
    from slm_course.finetune.merge import ties_stages

    if base.dim() != 1:
        raise ValueError(f"ties_data draws one weight vector: give 1-D tensors, got shape {tuple(base.shape)}.")
    stages = ties_stages(base, [a, b], [1.0, 1.0], [density, density])
    return {"base": base.tolist(), "tau": stages["task_vectors"].tolist(), "trimmed": stages["trimmed"].tolist(),
            "elected": stages["elected"].tolist(), "agree": stages["agree"].tolist(),
            "delta": stages["delta"].tolist(), "merged": stages["merged"].tolist(), "density": density}


def _sign_fill(value: float) -> str:
    return colour(0) if value > 0 else colour(1) if value < 0 else "#E2E2E2"


def ties_merge(base=None, a=None, b=None, density: float = 0.5, *, show: bool = True):
    """Task vectors and TIES's three stages on one small weight vector: τ = finetune − base for A and B
    (gids ``tau-0``, ``tau-1``), trimmed to their largest ``density`` share (``trim-0``, ``trim-1``; an entry
    whose sign loses the election is outlined, gid ``dropped``), the elected signs (``elect``), the mean of
    the agreeing entries (``delta``) and the merged weights (``merged``). Numbers from :func:`ties_data`;
    the defaults are a six-weight example that shows every case."""
    import torch

    if base is None:
        base = torch.tensor([0.5, -0.2, 1.0, 0.3, -0.6, 0.8])
        a = base + torch.tensor([0.9, -0.4, 0.05, 0.6, -0.1, -0.7])
        b = base + torch.tensor([0.7, 0.3, -0.5, -0.8, 0.02, 0.2])
    data = ties_data(base, a, b, density)
    n, cell, left = len(data["base"]), 0.8, 3.3
    figure, ax = canvas(left + n * cell + 2.9, 7.3, title="TIES: trim each task vector, elect a sign per weight, "
                                                          "average what agrees")
    rows = [  # (y, label, values, gid)
        (6.6, "θ_base (the model both started from)", data["base"], "base"),
        (6.0, "task vector τ_A = θ_A − θ_base", data["tau"][0], "tau-0"),
        (5.45, "task vector τ_B = θ_B − θ_base", data["tau"][1], "tau-1"),
        (4.35, f"1 trim: τ_A, largest {density:.0%} |τ| kept", data["trimmed"][0], "trim-0"),
        (3.8, f"1 trim: τ_B, largest {density:.0%} |τ| kept", data["trimmed"][1], "trim-1"),
        (2.7, "2 elect: sign of the trimmed sum", data["elected"], "elect"),
        (1.6, "3 merge: mean of the agreeing entries", data["delta"], "delta"),
        (0.5, "θ_merged = θ_base + Δ", data["merged"], "merged"),
    ]
    for y, label, values, gid in rows:
        ax.text(left - 0.12, y + 0.25, label, ha="right", va="center", fontsize=9, color=INK)
        for j, v in enumerate(values):
            x = left + j * cell
            if gid == "elect":
                box(ax, x, y, cell, 0.5, "+" if v > 0 else "−", fill=_sign_fill(v), rounded=False, fontsize=12,
                    gid=gid, text_colour="white", weight="bold")
            elif gid in ("merged", "base"):
                box(ax, x, y, cell, 0.5, f"{v:.2f}", fill="white", rounded=False, fontsize=8.5, gid=gid)
            else:
                box(ax, x, y, cell, 0.5, f"{v:+.2f}" if v else "0", fill=_sign_fill(v), rounded=False, fontsize=8.5,
                    gid=gid, text_colour="white" if v else MUTED)
            if gid.startswith("trim-") and v and not data["agree"][int(gid[-1])][j]:
                box(ax, x + 0.04, y + 0.04, cell - 0.08, 0.42, fill="none", edge=colour(3), rounded=False,
                    gid="dropped")
                ax.plot([x + 0.08, x + cell - 0.08], [y + 0.08, y + 0.42], color=colour(3), lw=1.6)
    right = left + n * cell + 0.2
    notes = [(5.72, "what each finetune changed"), (4.07, "small changes are zeroed"),
             (2.95, "the sign with more total mass"), (1.85, "disagreeing entries (outlined)\nare left out"),
             (0.75, "task arithmetic would add\nτ_A + τ_B in full instead")]
    for y, text in notes:
        ax.text(right, y, text, va="center", fontsize=8.5, color=MUTED, style="italic")
    for y0, y1 in ((5.4, 4.9), (3.75, 3.25), (2.65, 2.15), (1.55, 1.05)):
        arrow(ax, (left - 0.45, y0), (left - 0.45, y1), colour=MUTED, lw=1.0)
    return finish(figure, show)


# --------------------------------------------------------------------------- knowledge fusion

def fusion_data(teachers, inputs, labels, position: int = -1) -> dict:
    """What :func:`teacher_fusion` draws for row 0 of ``inputs`` ``(B, T)``: each teacher's next-token
    probabilities at ``position`` (``probs``), its mean cross-entropy on the row's labelled tokens
    (``ce``, :func:`slm_course.finetune.fuse.sequence_cross_entropy`), the chosen teacher (lowest CE), and
    the ``"average"`` and ``"min_ce"`` fused targets at that position from :func:`fuse.fused_targets`."""
    import torch
    import torch.nn.functional as F

    from slm_course.finetune.fuse import fused_targets, sequence_cross_entropy

    with torch.no_grad():
        logits = [t.eval()(inputs).float() for t in teachers]
        ce = [float(sequence_cross_entropy(lg, labels)[0]) for lg in logits]
        probs = [F.softmax(lg, dim=-1)[0, position].tolist() for lg in logits]
    return {"probs": probs, "ce": ce, "chosen": min(range(len(ce)), key=ce.__getitem__),
            "average": fused_targets(teachers, inputs, labels, "average")[0, position].tolist(),
            "min_ce": fused_targets(teachers, inputs, labels, "min_ce")[0, position].tolist(),
            "target": int(labels[0, position]), "inputs": inputs[0].tolist(), "labels": labels[0].tolist()}


def _bars(ax, probs, x: float, y: float, width: float, height: float, fill: str, gid: str, target: int) -> None:
    """A small bar chart of ``probs`` in the box at ``(x, y)``; the true next token's bar outlined."""
    step = width / len(probs)
    for j, p in enumerate(probs):
        box(ax, x + j * step + 0.03, y, step - 0.06, max(p, 0.005) * height, fill=fill, rounded=False, gid=gid,
            edge=INK if j == target else fill)
    ax.plot([x, x + width], [y, y], color=INK, lw=0.8)


def teacher_fusion(teachers, inputs, labels, *, show: bool = True):
    """Several teachers' next-token distributions on the same text (gids ``teacher-k``, bars ``probs-k``),
    fused two ways (``average``, ``min_ce``) into the target a student learns beside the true token
    (gid ``student``). Numbers from :func:`fusion_data` (the last position of row 0)."""
    data = fusion_data(teachers, inputs, labels)
    k, target = len(teachers), data["target"]
    height = max(3.6, 1.25 * k + 0.9)
    figure, ax = canvas(12.2, height + 0.2, title=f"Knowledge fusion: {k} teachers' next-token distributions, "
                                                  "fused, become the student's target")
    top, mid = height - 0.2, (height - 0.2) / 2 + 0.2
    shown = lambda ids: " ".join("−100" if i == -100 else str(i) for i in ids)  # noqa: E731
    box(ax, 0.1, mid - 0.75, 2.0, 1.5, f"the same text for\nevery teacher\ninputs {shown(data['inputs'])}\n"
        f"labels {shown(data['labels'])}", fill=PAPER, gid="text", fontsize=8.5)
    scale = 1.0 / max(max(p) for p in data["probs"] + [data["average"]])
    bus = 6.15
    for i in range(k):
        y = top - (i + 1) * 1.25 + 0.1
        chosen = i == data["chosen"]
        box(ax, 2.8, y, 3.0, 1.1, "", fill="white", edge=colour(3) if chosen else INK, gid=f"teacher-{i}")
        ax.text(2.9, y + 0.95, f"teacher {i}: CE on the answer {data['ce'][i]:.2f}" + ("  (lowest)" if chosen else ""),
                fontsize=8, color=colour(3) if chosen else INK, va="center")
        ax.text(5.7, y + 0.72, f"p(true) {data['probs'][i][target]:.2f}", ha="right", fontsize=7.5, color=MUTED)
        _bars(ax, data["probs"][i], 3.0, y + 0.12, 2.6, 0.55 * scale, colour(4 + i), f"probs-{i}", target)
        arrow(ax, (2.1, mid), (2.8, y + 0.55), colour=MUTED, lw=1.0)
        ax.plot([5.8, bus], [y + 0.55, y + 0.55], color=MUTED, lw=1.0)
    ax.plot([bus, bus], [top - k * 1.25 + 0.65, top - 0.6], color=MUTED, lw=1.0)
    for y, key, title, fill in ((mid + 0.2, "average", "average of the teachers", colour(0)),
                                (mid - 1.6, "min_ce", f"MinCE: teacher {data['chosen']}'s (lowest CE)",
                                 colour(4 + data["chosen"]))):
        box(ax, 6.5, y, 3.0, 1.3, "", fill="white", gid=key)
        ax.text(6.6, y + 1.15, title, fontsize=8.5, color=INK, va="center")
        ax.text(9.4, y + 0.9, f"p(true) {data[key][target]:.2f}", ha="right", fontsize=7.5, color=MUTED)
        _bars(ax, data[key], 6.7, y + 0.12, 2.6, 0.7 * scale, fill, f"bars-{key}", target)
        arrow(ax, (bus, min(max(y + 0.65, top - k * 1.25 + 0.65), top - 0.6)), (6.5, y + 0.65), colour=MUTED, lw=1.0)
        arrow(ax, (9.5, y + 0.65), (10.1, mid), colour=MUTED, lw=1.0)
    box(ax, 10.1, mid - 0.9, 2.0, 1.8, "student loss\n(1 − α)·CE(true token)\n+ α·CE(fused target)",
        fill=colour(2), text_colour="white", gid="student", fontsize=9)
    ax.text(0.1, 0.05, "outlined bar: the true next token. FuseLLM and FuseChat first align tokens across the "
            "teachers' vocabularies; these teachers share one.", fontsize=8.5, color=MUTED, style="italic")
    return finish(figure, show)
