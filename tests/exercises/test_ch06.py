"""Chapter 6's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import re

import torch

from slm_course.exercises import ch06
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects
from slm_course.model.hf import load_converted
from slm_course.weights import dequantize_q8_0, unpermute_rows
from slm_course.weights.gguf_load import permute_rows
from slm_course.weights.gguf_load import gguf_name

SOLVED = notebook_objects("06")
STUB = notebook_objects("06", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def test_gguf_names():
    solved = SOLVED["gguf_to_ours"]

    def single_digit_layers(name):  # a regex that reads one digit: blk.29 becomes blocks.2
        if not name.startswith("blk."):
            return solved(name)
        return f"blocks.{name[4]}." + solved("blk.0." + name.split(".", 2)[2])[len("blocks.0."):]

    def gate_up_swapped(name):
        swap = {"ffn_gate": "ffn_up", "ffn_up": "ffn_gate"}
        return solved(re.sub(r"ffn_(gate|up)", lambda m: swap[m.group(0)], name))

    def forgets_output(name):  # only the block tensors and the embedding
        return "final_norm.weight" if name == "output.weight" else solved(name)

    def norms_swapped(name):
        return solved(name.replace("attn_norm", "@").replace("ffn_norm", "attn_norm").replace("@", "ffn_norm"))

    check(ch06.q1, [single_digit_layers, gate_up_swapped, forgets_output, norms_swapped])


def test_split_c_attn():
    def no_transpose(weight):
        return tuple(weight.chunk(3, dim=1))  # (d, d) blocks, but still (in, out)

    def split_then_transpose_rows(weight):
        d = weight.shape[0]
        full = weight.reshape(3 * d, d)  # a reshape is not a transpose
        return full[:d], full[d:2 * d], full[2 * d:]

    def as_list(weight):
        return list(weight.t().chunk(3))

    def kqv_order(weight):
        q, k, v = weight.t().chunk(3)
        return k, q, v

    check(ch06.q2, [no_transpose, split_then_transpose_rows, as_list, kqv_order])
    assert ch06.q2.check(lambda w: tuple(w.t().chunk(3)), quiet=True).status == "correct"  # another right answer


def test_dequantize_q8_0_block():
    def unsigned_bytes(block):
        d = block[:2].contiguous().view(torch.float16).float()
        return d * block[2:].float()

    def float16_product(block):  # overflows beyond 65504 and rounds to float16
        d = block[:2].contiguous().view(torch.float16)
        return (d * block[2:].contiguous().view(torch.int8).half()).float()

    def big_endian_scale(block):
        d = block[:2].flip(0).contiguous().view(torch.float16).float()
        return d * block[2:].contiguous().view(torch.int8).float()

    def scale_from_last_bytes(block):
        d = block[-2:].contiguous().view(torch.float16).float()
        return d * block[:32].contiguous().view(torch.int8).float()

    def bits_by_hand_no_subnormals(block):  # sign, exponent, mantissa: forgets that exponent 0 is subnormal
        bits = int(block[0]) | (int(block[1]) << 8)
        sign, exponent, mantissa = (-1.0) ** (bits >> 15), (bits >> 10) & 31, bits & 1023
        d = 0.0 if bits & 0x7FFF == 0 else sign * 2.0 ** (exponent - 15) * (1 + mantissa / 1024)
        return d * block[2:].contiguous().view(torch.int8).float()

    check(ch06.q3, [unsigned_bytes, float16_product, big_endian_scale, scale_from_last_bytes,
                    bits_by_hand_no_subnormals])
    assert ch06.q3.check(lambda b: dequantize_q8_0(b), quiet=True).status == "correct"

    def numpy_route(block):  # another right answer: NumPy reads the bytes, float32 result
        import numpy as np

        raw = bytes(block.tolist())
        d = np.frombuffer(raw[:2], dtype="<f2").astype(np.float32)
        return torch.from_numpy(d * np.frombuffer(raw[2:], dtype=np.int8).astype(np.float32))

    assert ch06.q3.check(numpy_route, quiet=True).status == "correct"


def test_unpermute():
    def forward_permutation(weight, n_heads):  # applies llama.cpp's permutation again
        h = weight.shape[0] // n_heads
        return weight.reshape(n_heads, 2, h // 2, -1).transpose(1, 2).reshape(weight.shape)

    def ignores_heads(weight, n_heads):  # one big head
        return unpermute_rows(weight, 1)

    def in_place(weight, n_heads):
        weight.copy_(unpermute_rows(weight, n_heads))
        return weight

    def identity(weight, n_heads):
        return weight.clone()

    def other_argument_name(weight, heads):  # the loader calls unpermute(w, n_heads=...)
        return unpermute_rows(weight, heads)

    check(ch06.q4, [forward_permutation, ignores_heads, in_place, identity, other_argument_name])

    def by_index(weight, n_heads):  # another right answer: gather the rows by index
        h = weight.shape[0] // n_heads
        order = [head * h + 2 * i + half for head in range(n_heads) for half in (0, 1) for i in range(h // 2)]
        return weight[order]

    assert ch06.q4.check(by_index, quiet=True).status == "correct"


def test_permute_qk():
    def undoes_instead(weight, n_heads):  # exercise 4's direction
        return unpermute_rows(weight, n_heads)

    def ignores_heads(weight, n_heads):
        return permute_rows(weight, 1)

    def in_place(weight, n_heads):
        weight.copy_(permute_rows(weight, n_heads))
        return weight

    def other_argument_name(weight, heads):
        return permute_rows(weight, heads)

    check(ch06.q6, [undoes_instead, ignores_heads, in_place, other_argument_name])
    assert ch06.q6.check(lambda weight, n_heads: permute_rows(weight.clone(), n_heads), quiet=True).status == "correct"
    w = torch.randn(24, 3)
    assert torch.equal(SOLVED["unpermute"](SOLVED["permute_qk"](w, 3), 3), w)


def test_skipped_unpermute_prediction():
    def everything_changes():
        return {"same_position": True, "other_positions": True, "without_rope": True}

    def only_rope_matters_everywhere():  # forgets that a rotation by 0 is none
        return {"same_position": True, "other_positions": True, "without_rope": False}

    def nothing_changes():
        return {"same_position": False, "other_positions": False, "without_rope": False}

    def strings_for_bools():
        return {"same_position": "no", "other_positions": "yes", "without_rope": "no"}

    check(ch06.q7, [everything_changes, only_rope_matters_everywhere, nothing_changes, strings_for_bools])
    # the expected answer is what running shows, on other sizes too
    assert ch06.skipped_unpermute_effect(n_heads=3, head_dim=8, seq_len=9) == SOLVED["skipped_unpermute_prediction"]()


def test_check_shapes():
    solved = SOLVED["check_shapes"]

    def unsorted(checkpoint, model):
        return {"missing": [k for k in model if k not in checkpoint],
                "unexpected": [k for k in checkpoint if k not in model],
                "mismatched": [k for k in model if k in checkpoint and tuple(model[k]) != tuple(checkpoint[k])]}

    def list_vs_tuple_mismatch(checkpoint, model):  # (8, 8) != [8, 8]
        report = solved(checkpoint, model)
        report["mismatched"] = sorted(k for k in set(model) & set(checkpoint) if model[k] != checkpoint[k])
        return report

    def missing_counted_as_mismatched(checkpoint, model):
        report = solved(checkpoint, model)
        report["mismatched"] = sorted(set(report["mismatched"]) | set(report["missing"]))
        return report

    def reversed_roles(checkpoint, model):
        report = solved(checkpoint, model)
        report["missing"], report["unexpected"] = report["unexpected"], report["missing"]
        return report

    def stops_at_first_problem(checkpoint, model):  # what the statement's loader should not do
        report = solved(checkpoint, model)
        return {k: v[:1] for k, v in report.items()}

    def only_model_side_tuple(checkpoint, model):  # (8, 16) != [8, 16]: list shapes all look mismatched
        report = solved(checkpoint, model)
        report["mismatched"] = sorted(k for k in set(model) & set(checkpoint) if tuple(model[k]) != checkpoint[k])
        return report

    check(ch06.q5, [unsorted, list_vs_tuple_mismatch, missing_counted_as_mismatched, reversed_roles,
                    stops_at_first_problem, only_model_side_tuple])


def test_solutions_equal_the_package():
    from slm_course.weights.gguf_load import GGUF_BLOCK_MAP

    for layer in (0, 17):
        for ours in GGUF_BLOCK_MAP:
            assert SOLVED["gguf_to_ours"](gguf_name(f"blocks.{layer}.{ours}")) == f"blocks.{layer}.{ours}"
    w = torch.randn(36, 5)
    assert torch.equal(SOLVED["unpermute"](w, 3), unpermute_rows(w, 3))
    block = torch.randint(0, 256, (34,), dtype=torch.uint8)
    block[1] = 0x3C  # a finite scale
    assert torch.equal(SOLVED["dequantize_q8_0_block"](block), dequantize_q8_0(block))
    from slm_course.model import SLM, SLMConfig

    model = SLM(SLMConfig.from_name("tiny", vocab_size=64, n_layers=1, d_model=32))
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items() if k != "lm_head.weight"}
    bad = {**shapes, "final_norm.weight": (31,)}
    bad.pop("tok_emb.weight")
    report = SOLVED["check_shapes"](bad, shapes)
    assert report == {"missing": ["tok_emb.weight"], "unexpected": [], "mismatched": ["final_norm.weight"]}
    try:  # the package's loader names the same two keys
        load_converted(model, {k: torch.zeros(s) for k, s in bad.items()})
    except ValueError as err:
        assert "tok_emb.weight" in str(err) and "final_norm.weight (checkpoint shape (31,)" in str(err)
    else:
        raise AssertionError("load_converted accepted a bad checkpoint")
