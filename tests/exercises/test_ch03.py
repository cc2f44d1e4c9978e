"""Chapter 3's checks: each fails on the stub and on known-wrong answers, and passes on the solution."""
import torch
import torch.nn.functional as F

from slm_course.exercises import ch03
from slm_course.exercises.testing import assert_check_behaviour, notebook_objects

SOLVED = notebook_objects("03")
STUB = notebook_objects("03", stub=True)


def check(problem, wrong):
    assert_check_behaviour(problem, SOLVED[problem.target], STUB[problem.target], wrong)


def test_layer_norm():
    def unbiased_variance(x, weight, bias, eps=1e-5):  # torch.var's default divides by d - 1
        return (x - x.mean(-1, keepdim=True)) / torch.sqrt(x.var(-1, keepdim=True) + eps) * weight + bias

    def no_eps(x, weight, bias, eps=1e-5):
        return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, unbiased=False) * weight + bias

    def wrong_dimension(x, weight, bias, eps=1e-5):
        mean, var = x.mean(0, keepdim=True), x.var(0, keepdim=True, unbiased=False)
        return (x - mean) / torch.sqrt(var + eps) * weight + bias

    def forgets_bias(x, weight, bias, eps=1e-5):
        return F.layer_norm(x, x.shape[-1:], weight, None, eps)

    check(ch03.q1, [unbiased_variance, no_eps, wrong_dimension, forgets_bias])
    partly = ch03.q1.check(no_eps, quiet=True)
    assert 0 < partly.passed < partly.total  # only the zero-variance and large-eps inputs expose it


def test_rms_norm():
    def centres(x, weight, eps=1e-6):  # that is LayerNorm without a bias
        return F.layer_norm(x, x.shape[-1:], weight, None, eps)

    def eps_outside(x, weight, eps=1e-6):
        return x / (x.pow(2).mean(-1, keepdim=True).sqrt() + eps) * weight

    def no_square_root(x, weight, eps=1e-6):
        return x / (x.pow(2).mean(-1, keepdim=True) + eps) * weight

    def default_eps_1e5(x, weight, eps=1e-5):  # LayerNorm's default, not the one the exercise asks for
        return x / torch.sqrt(x.pow(2).mean(-1, keepdim=True) + eps) * weight

    check(ch03.q2, [centres, eps_outside, no_square_root, default_eps_1e5])
    result = ch03.q2.check(default_eps_1e5, quiet=True)
    assert result.passed == result.total - 1 and "default eps" in result.message  # only that case exposes it


def _angles(T, d, theta, start=0):
    freqs = theta ** (-torch.arange(0, d, 2).float() / d)
    return torch.outer(torch.arange(start, start + T).float(), freqs)


def test_rope():
    def interleaved(x, theta=10_000.0):  # the original Llama layout: pairs (2i, 2i+1)
        angles = _angles(x.shape[-2], x.shape[-1], theta)
        a, b = x[..., 0::2], x[..., 1::2]
        out = torch.stack([a * angles.cos() - b * angles.sin(), b * angles.cos() + a * angles.sin()], dim=-1)
        return out.flatten(-2)

    def positions_from_one(x, theta=10_000.0):
        angles = _angles(x.shape[-2], x.shape[-1], theta, start=1)
        d = x.shape[-1]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([x1 * angles.cos() - x2 * angles.sin(), x2 * angles.cos() + x1 * angles.sin()], -1)

    def rotates_backwards(x, theta=10_000.0):
        angles = -_angles(x.shape[-2], x.shape[-1], theta)
        d = x.shape[-1]
        x1, x2 = x[..., : d // 2], x[..., d // 2:]
        return torch.cat([x1 * angles.cos() - x2 * angles.sin(), x2 * angles.cos() + x1 * angles.sin()], -1)

    def ignores_theta(x, theta=10_000.0):
        return SOLVED["rope"](x)

    check(ch03.q3, [interleaved, positions_from_one, rotates_backwards, ignores_theta])
    partly = ch03.q3.check(positions_from_one, quiet=True)
    assert partly.passed < partly.total
    named = ch03.q3.check(interleaved, quiet=True)
    assert "interleaved layout" in named.message and "x[..., i + d/2]" in named.message
    assert "interleaved" not in ch03.q3.check(rotates_backwards, quiet=True).message


def test_rope_accepts_a_float64_computation():
    def computes_in_float64(x, theta=10_000.0):  # the right rotation, computed and returned in float64
        return SOLVED["rope"](x.double(), theta)

    result = ch03.q3.check(computes_in_float64, quiet=True)
    assert result.correct, result.message


def test_swiglu():
    def sigmoid_gate(x, w_gate, w_up, w_down):
        return (torch.sigmoid(x @ w_gate.T) * (x @ w_up.T)) @ w_down.T

    def gates_the_wrong_branch(x, w_gate, w_up, w_down):
        return ((x @ w_gate.T) * F.silu(x @ w_up.T)) @ w_down.T

    def gelu_mlp(x, w_gate, w_up, w_down):  # no gate at all
        return F.gelu(x @ w_up.T) @ w_down.T

    check(ch03.q4, [sigmoid_gate, gates_the_wrong_branch, gelu_mlp])


def test_repeat_kv():
    def tiles(x, n_heads):  # 0, 1, 0, 1 … instead of 0, 0, 1, 1 …
        return x.repeat(1, n_heads // x.shape[1], 1, 1)

    def repeats_tokens(x, n_heads):
        return x.repeat_interleave(n_heads // x.shape[1], dim=2)

    check(ch03.q5, [tiles, repeats_tokens])
    partly = ch03.q5.check(tiles, quiet=True)
    assert 0 < partly.passed < partly.total  # with n_heads == n_kv_heads tiling is harmless


def test_gpt_parameter_count():
    solution = SOLVED["gpt_parameter_count"]

    def forgets_positions(vocab, context, d, layers, tie):
        return solution(vocab, 0, d, layers, tie)

    def counts_tied_head_twice(vocab, context, d, layers, tie):
        return solution(vocab, context, d, layers, False)

    def no_biases(vocab, context, d, layers, tie):
        return solution(vocab, context, d, layers, tie) - layers * (3 * d + d + 4 * d + d)

    def off_by_a_half(vocab, context, d, layers, tie):  # not a whole number of parameters
        return solution(vocab, context, d, layers, tie) + 0.5

    def float_arithmetic(vocab, context, d, layers, tie):  # the right number as a float: the statement says int
        return float(solution(vocab, context, d, layers, tie))

    def true_division(vocab, context, d, layers, tie):  # `4 * d * d / 1`-style arithmetic gives a float
        return solution(vocab, context, d, layers, tie) / 1

    check(ch03.q6, [forgets_positions, counts_tied_head_twice, no_biases, off_by_a_half, float_arithmetic,
                    true_division])
    assert "(an int), got float" in ch03.q6.check(float_arithmetic, quiet=True).reason
    assert solution(50257, 1024, 768, 12, True) == 124_439_808  # the published GPT-2 figure


def test_llama_parameter_count():
    solution = SOLVED["llama_parameter_count"]

    def kv_as_query_heads(vocab, d, layers, heads, kv, d_ff, tie):  # forgets grouped-query attention
        return solution(vocab, d, layers, heads, heads, d_ff, tie)

    def layernorm_biases(vocab, d, layers, heads, kv, d_ff, tie):  # RMSNorm has no bias
        return solution(vocab, d, layers, heads, kv, d_ff, tie) + (2 * layers + 1) * d

    def two_matrix_mlp(vocab, d, layers, heads, kv, d_ff, tie):  # SwiGLU has three matrices
        return solution(vocab, d, layers, heads, kv, d_ff, tie) - layers * d * d_ff

    def counts_positions(vocab, d, layers, heads, kv, d_ff, tie):  # RoPE has no learned table
        return solution(vocab, d, layers, heads, kv, d_ff, tie) + 2048 * d

    def head_always(vocab, d, layers, heads, kv, d_ff, tie):
        return solution(vocab, d, layers, heads, kv, d_ff, False)

    def kv_width_by_kv_heads(vocab, d, layers, heads, kv, d_ff, tie):  # d // kv per K/V head instead of d // heads
        base = solution(vocab, d, layers, heads, kv, d_ff, tie)
        return base + layers * 2 * d * (kv * (d // kv) - kv * (d // heads))

    check(ch03.q7, [kv_as_query_heads, layernorm_biases, two_matrix_mlp, counts_positions, head_always,
                    kv_width_by_kv_heads])
    assert solution(49152, 576, 30, 9, 3, 1536, True) == 134_515_008  # SmolLM2-135M, the published size


def test_norms_refuse_the_library_functions():
    def layer_norm_library(x, weight, bias, eps=1e-5):
        return F.layer_norm(x, x.shape[-1:], weight, bias, eps)

    def layer_norm_in_place(x, weight, bias, eps=1e-5):  # edits the caller's x
        x -= x.mean(dim=-1, keepdim=True)
        return x / torch.sqrt(x.pow(2).mean(dim=-1, keepdim=True) + eps) * weight + bias

    check(ch03.q1, [layer_norm_library, layer_norm_in_place])
    assert "uses `torch.nn.functional.layer_norm`, which this exercise asks you not to use" in ch03.q1.check(layer_norm_library, quiet=True).reason

    def rms_norm_library(x, weight, eps=1e-6):
        return F.rms_norm(x, x.shape[-1:], weight, eps)

    def rms_norm_method_of_module(x, weight, eps=1e-6):
        norm = torch.nn.RMSNorm(x.shape[-1], eps=eps)
        with torch.no_grad():
            norm.weight.copy_(weight)
            return norm(x)

    check(ch03.q2, [rms_norm_library, rms_norm_method_of_module])

    def rsqrt_form(x, weight, eps=1e-6):  # a correct alternative
        return x * torch.rsqrt(x.square().mean(-1, keepdim=True) + eps) * weight

    assert ch03.q2.check(rsqrt_form, quiet=True).correct


def test_rope_written_into_its_input_is_caught():
    solution = SOLVED["rope"]

    def rotates_in_place(x, theta=10_000.0):  # writes the rotated halves back into the caller's x
        rotated = solution(x, theta)
        x.copy_(rotated)
        return x

    result = ch03.q3.check(rotates_in_place, quiet=True)
    assert not result.correct and "changed its input `x` in place" in result.reason


def test_layer_norm_and_rope_mistakes_the_statements_rule_out():
    def one_pass_variance(x, weight, bias, eps=1e-5):  # E[x²] − E[x]²: cancels for a large mean in float32
        mean = x.mean(-1, keepdim=True)
        var = (x * x).mean(-1, keepdim=True) - mean ** 2
        return (x - mean) / torch.sqrt(var + eps) * weight + bias

    assert ch03.q1.check(one_pass_variance, quiet=True).status == "incorrect"

    def centred_two_pass(x, weight, bias, eps=1e-5):  # a correct alternative: the mean of squared deviations
        centred = x - x.mean(-1, keepdim=True)
        return centred * torch.rsqrt((centred ** 2).mean(-1, keepdim=True) + eps) * weight + bias

    assert ch03.q1.check(centred_two_pass, quiet=True).correct

    def four_dims_only(x, theta=10_000.0):  # unpacks (B, H, T, d): fails on a (T, d) input
        _, _, T, d = x.shape
        return SOLVED["rope"](x, theta)

    assert ch03.q3.check(four_dims_only, quiet=True).status == "incorrect"
