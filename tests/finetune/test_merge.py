"""Chapter 8: weight merging checked by hand, on tied models, and against mergekit 0.1.5 on saved models."""
import math

import pytest
import torch

from slm_course.finetune.merge import (
    MergeNode, build_merge_tree, linear, merge_models, merge_state_dicts, slerp, slerp_merge, task_arithmetic,
    task_vector, ties, trim,
)
from slm_course.model import SLM, SLMConfig


def test_linear_and_task_arithmetic_by_hand():
    base = {"w": torch.tensor([1.0, 1.0, 1.0])}
    a, b = {"w": torch.tensor([2.0, 1.0, 0.0])}, {"w": torch.tensor([1.0, 3.0, 1.0])}
    torch.testing.assert_close(linear([a, b])["w"], torch.tensor([1.5, 2.0, 0.5]))
    torch.testing.assert_close(linear([a, b], [3, 1])["w"], torch.tensor([1.75, 1.5, 0.25]))
    torch.testing.assert_close(task_vector(a, base)["w"], torch.tensor([1.0, 0.0, -1.0]))
    # base + τa + τb = [1,1,1] + [1,0,-1] + [0,2,0]
    torch.testing.assert_close(task_arithmetic(base, [a, b])["w"], torch.tensor([2.0, 3.0, 0.0]))
    torch.testing.assert_close(task_arithmetic(base, [a, b], scale=0.5)["w"], torch.tensor([1.5, 2.0, 0.5]))
    with pytest.raises(ValueError, match="one weight per model"):
        linear([a, b], [1.0])
    with pytest.raises(ValueError, match="one architecture"):
        linear([a, {"v": torch.zeros(3)}])


def test_slerp_of_vectors_including_parallel_and_antiparallel():
    e1, e2 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    half = slerp(0.5, e1, e2)
    torch.testing.assert_close(half, torch.tensor([math.sqrt(0.5), math.sqrt(0.5)]))  # stays on the circle
    torch.testing.assert_close(slerp(1 / 3, e1, e2), torch.tensor([math.cos(math.pi / 6), math.sin(math.pi / 6)]))
    torch.testing.assert_close(slerp(0.0, e1, e2), e1)
    torch.testing.assert_close(slerp(1.0, e1, e2), e2)
    torch.testing.assert_close(slerp(0.25, e1, 3 * e1), 1.5 * e1)  # parallel: linear
    torch.testing.assert_close(slerp(0.25, e1, -e1), 0.5 * e1)  # antiparallel: linear, no division by sin 0
    # Different norms: the angle is that of the directions, the result scales both.
    v = slerp(0.5, 2 * e1, 2 * e2)
    assert torch.linalg.vector_norm(v).item() == pytest.approx(2.0)


def test_ties_by_hand():
    base = {"w": torch.zeros(4)}
    a = {"w": torch.tensor([3.0, -1.0, 0.5, 2.0])}
    b = {"w": torch.tensor([-1.0, -2.0, 0.1, 4.0])}
    torch.testing.assert_close(trim(a["w"], 0.5), torch.tensor([3.0, 0.0, 0.0, 2.0]))
    # density 0.5: a → [3,0,0,2], b → [0,-2,0,4]; signs of the sums [3,-2,0,6] → [+,-,+,+];
    # entry 0: only a agrees → 3; entry 1: only b → -2; entry 2: nobody → 0; entry 3: (2+4)/2 = 3.
    torch.testing.assert_close(ties(base, [a, b], density=0.5)["w"], torch.tensor([3.0, -2.0, 0.0, 3.0]))
    # density 1: entry 0 sum 2 → +, only a agrees → 3; entry 3 → 3; entry 2 (0.5+0.1)/2
    torch.testing.assert_close(ties(base, [a, b], density=1.0)["w"], torch.tensor([3.0, -1.5, 0.3, 3.0]))


def _tied_pair():
    torch.manual_seed(0)
    base = SLM(SLMConfig(vocab_size=64, context_length=16, d_model=16, n_layers=1, n_heads=2, tie_embeddings=True))
    children = []
    for seed in (1, 2):
        child = SLM(base.config)
        g = torch.Generator().manual_seed(seed)
        child.load_state_dict({k: v + 0.1 * torch.randn(v.shape, generator=g) for k, v in base.state_dict().items()})
        children.append(child)
    return base, children


@pytest.mark.parametrize("method,params", [("linear", {}), ("task_arithmetic", {"scale": 0.7}), ("slerp", {"t": 0.3}),
                                           ("ties", {"density": 0.4})])
def test_merged_model_stays_tied_and_leaves_parents_alone(method, params):
    base, (a, b) = _tied_pair()
    a.load_state_dict({**a.state_dict(), "lm_head.weight": a.state_dict()["tok_emb.weight"]})
    before = a.tok_emb.weight.clone()
    merged = merge_models(method, base, [a, b], **params)
    assert merged.lm_head.weight is merged.tok_emb.weight
    sd = merge_state_dicts(method, base.state_dict(), [a.state_dict(), b.state_dict()], **params)
    assert sd["lm_head.weight"] is sd["tok_emb.weight"]
    assert torch.equal(a.tok_emb.weight, before)
    assert not torch.equal(merged.tok_emb.weight, base.tok_emb.weight)


def test_merge_tree_merges_merges_and_scores_every_node():
    base, (a, b) = _tied_pair()
    tree = MergeNode("root", "linear", [MergeNode("ab_slerp", "slerp", ["a", "b"], {"t": 0.5}),
                                        MergeNode("ab_ties", "ties", ["a", "b"], {"density": 0.5})])
    models, scores = build_merge_tree(tree, base, {"a": a, "b": b}, score=lambda m: float(m.tok_emb.weight.sum()))
    assert set(scores) == {"a", "b", "ab_slerp", "ab_ties", "root"}
    expected = linear([models["ab_slerp"].state_dict(), models["ab_ties"].state_dict()])
    torch.testing.assert_close(models["root"].tok_emb.weight, expected["tok_emb.weight"])
    assert ("ab_slerp", "root") in tree.edges() and ("a", "ab_ties") in tree.edges()
    with pytest.raises(ValueError, match="neither a leaf"):
        build_merge_tree(MergeNode("x", "linear", ["c"]), base, {"a": a})


# --------------------------------------------------------------------------- parity with mergekit


@pytest.fixture(scope="module")
def saved_llamas(tmp_path_factory):
    pytest.importorskip("mergekit")
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("merge")
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32,
                         tie_word_embeddings=False)
    base = LlamaForCausalLM(config)
    base.save_pretrained(root / "base")
    sds = {"base": {k: v.clone() for k, v in base.state_dict().items()}}
    for name, seed in (("a", 1), ("b", 2)):
        g = torch.Generator().manual_seed(seed)
        sd = {k: v + 0.05 * torch.randn(v.shape, generator=g) for k, v in base.state_dict().items()}
        base.load_state_dict(sd)
        base.save_pretrained(root / name)
        sds[name] = sd
    return root, sds


def _mergekit(root, config, name):
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge
    from safetensors.torch import load_file

    out = root / f"out-{name}"
    run_merge(MergeConfiguration.model_validate(config), str(out),
              MergeOptions(copy_tokenizer=False, quiet=True, write_model_card=False))
    return load_file(out / "model.safetensors")


@pytest.mark.parametrize("method,theirs,ours", [
    ("linear", {"models": [{"model": "a", "parameters": {"weight": 0.7}}, {"model": "b", "parameters": {"weight": 0.6}}]},
     lambda s: linear([s["a"], s["b"]], [0.7, 0.6])),
    ("task_arithmetic", {"base_model": "base", "parameters": {"lambda": 0.8},
                         "models": [{"model": "a", "parameters": {"weight": 0.6}},
                                    {"model": "b", "parameters": {"weight": 0.9}}]},
     lambda s: task_arithmetic(s["base"], [s["a"], s["b"]], [0.6, 0.9], scale=0.8)),
    ("slerp", {"base_model": "a", "parameters": {"t": 0.3}, "models": [{"model": "a"}, {"model": "b"}]},
     lambda s: slerp_merge(s["a"], s["b"], t=0.3)),
    ("ties", {"base_model": "base", "models": [{"model": "a", "parameters": {"weight": 0.6, "density": 0.5}},
                                               {"model": "b", "parameters": {"weight": 0.4, "density": 0.3}}]},
     lambda s: ties(s["base"], [s["a"], s["b"]], [0.6, 0.4], density=[0.5, 0.3])),
])
def test_equal_to_mergekit(saved_llamas, method, theirs, ours):
    root, sds = saved_llamas

    def resolve(entry):
        return {**entry, "model": str(root / entry["model"])}

    config = {"merge_method": method, "dtype": "float32", **theirs, "models": [resolve(m) for m in theirs["models"]]}
    if "base_model" in config:
        config["base_model"] = str(root / config["base_model"])
    merged_by_mergekit = _mergekit(root, config, method)
    merged_by_us = ours(sds)
    assert set(merged_by_mergekit) == set(merged_by_us)
    for key, value in merged_by_mergekit.items():
        torch.testing.assert_close(merged_by_us[key], value, rtol=1e-5, atol=1e-6, msg=f"{method}: {key}")
    assert not torch.allclose(merged_by_us["model.embed_tokens.weight"], sds["a"]["model.embed_tokens.weight"])


def test_ties_stages_are_exactly_what_ties_computes_per_tensor():
    from slm_course.finetune.merge import ties_stages

    g = torch.Generator().manual_seed(0)
    base = torch.randn(4, 6, generator=g)
    tuned = [base + torch.randn(4, 6, generator=g) for _ in range(3)]
    stages = ties_stages(base, tuned, [1.0, 0.5, 2.0], [0.3, 0.5, 0.7])
    merged = ties({"w": base}, [{"w": t} for t in tuned], weights=[1.0, 0.5, 2.0], density=[0.3, 0.5, 0.7])["w"]
    assert torch.equal(stages["merged"], merged)
    torch.testing.assert_close(stages["task_vectors"], torch.stack([t - base for t in tuned]))
    assert [int((row != 0).sum()) for row in stages["trimmed"]] == [7, 12, 16]  # int(density · 24) kept
    assert set(stages["elected"].unique().tolist()) <= {-1.0, 1.0}
    assert bool(((stages["agree"] == 1) <= (stages["trimmed"].sign() == stages["elected"])).all())
