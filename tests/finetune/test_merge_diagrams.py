"""Chapter 8's figures: the RLHF-vs-DPO diagram and the merge tree drawing."""
import pytest

from slm_course.diagrams import ch08
from slm_course.diagrams.drawing import count_gids, texts
from slm_course.finetune.merge import MergeNode


def test_dpo_vs_rlhf_draws_both_pipelines():
    fig = ch08.dpo_vs_rlhf(show=False)
    assert count_gids(fig, "rlhf-") == 4 and count_gids(fig, "dpo-") == 2
    assert any("reward model" in t for t in texts(fig)) and any("frozen reference" in t for t in texts(fig))


def test_merge_tree_draws_every_node_edge_and_score():
    tree = MergeNode("root", "linear", [MergeNode("m1", "slerp", ["a", "b"]), MergeNode("m2", "ties", ["a", "b"])])
    fig = ch08.merge_tree(tree, {"a": 0.5, "b": 0.25, "m1": 0.75, "root": 0.875}, show=False)
    assert count_gids(fig, "node-") == 5 and count_gids(fig, "edge-") == 6
    drawn = "\n".join(texts(fig))
    assert "score 0.88" in drawn and "slerp" in drawn and "score 0.75" in drawn
    with pytest.raises(TypeError):
        ch08.merge_tree("root", show=False)
