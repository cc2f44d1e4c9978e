"""Chapter 8's diagrams: RLHF (reward model + PPO) against DPO, and a merge tree with its scores.

``dpo_vs_rlhf()`` shows the two pipelines from the same preference pairs: RLHF fits a reward model
and then samples and optimizes the policy with PPO against it (a KL penalty to the reference);
DPO reads the pairs directly into one classification-style loss over the policy and a frozen
reference. ``merge_tree(tree, scores)`` draws a :class:`slm_course.finetune.merge.MergeNode`
tree, leaves at the bottom, each node labelled with its method and score.
"""
from __future__ import annotations

from typing import Mapping

from slm_course.diagrams.drawing import INK, PAPER, arrow, box, canvas, colour, finish


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
