"""Int8Linear / Int4Linear: kernel path equals the dequantize path; swapped into a model; ties survive; QAT."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from slm_course.model import SLM, SLMConfig
from slm_course.quantize.layers import kernel_activation_dtype
from slm_course.quantize import (
    FakeQuantLinear, Int4Linear, Int8Linear, QuantizedEmbedding, convert_qat, dequantize, fake_quantize,
    int4_kernel_available, int8_kernel_available, mean_nll, memory_bytes_in_use, prepare_qat, quantize_model,
    straight_through, weight_bytes, zeropoint_quantize, absmax_quantize, minmax_quantize,
)


def tiny(**overrides) -> SLM:
    torch.manual_seed(0)
    return SLM(SLMConfig.from_name("tiny", **overrides)).eval()


@pytest.fixture
def linear():
    torch.manual_seed(0)
    return nn.Linear(128, 96)


@pytest.mark.parametrize("cls,kwargs", [(Int8Linear, {}), (Int4Linear, {"group_size": 32}), (Int4Linear, {"group_size": 64})])
def test_kernel_and_fallback_agree(linear, cls, kwargs):
    x = torch.randn(1, 3, 128, generator=torch.Generator().manual_seed(1))  # decode-sized: the kernel path
    fallback = cls.from_linear(linear, use_kernel=False, **kwargs)
    assert not fallback.use_kernel
    reference = nn.functional.linear(x, fallback.dequantized_weight(), linear.bias)
    torch.testing.assert_close(fallback(x), reference)
    fast = cls.from_linear(linear, **kwargs)
    available = int8_kernel_available() if cls is Int8Linear else int4_kernel_available()
    assert fast.use_kernel == available
    # bfloat16 activations (where the CPU has them natively) round by up to 2^-8 relative
    tolerance = 2e-2 if kernel_activation_dtype() == torch.bfloat16 else 1e-4
    torch.testing.assert_close(fast(x), fallback(x), rtol=tolerance, atol=tolerance)


@pytest.mark.parametrize("out_features", [101, 40])
def test_int4_output_widths_the_kernel_cannot_tile_dequantize_instead(out_features):
    # PyTorch's int4 CPU packing takes whole blocks of 16 output rows: other widths (a 101-token vocabulary)
    # must not crash at construction; they take the dequantized path and give its numbers.
    torch.manual_seed(0)
    layer = nn.Linear(64, out_features)
    q = Int4Linear.from_linear(layer, group_size=32)
    assert not q.use_kernel
    x = torch.randn(1, 1, 64)
    torch.testing.assert_close(q(x), nn.functional.linear(x, q.dequantized_weight(), layer.bias))
    assert q(x).shape == (1, 1, out_features)


def test_dequantized_weights_match_the_quantizers(linear):
    w = linear.weight.detach()
    torch.testing.assert_close(Int8Linear.from_linear(linear).dequantized_weight(),
                               dequantize(absmax_quantize(w, 8, "channel")))
    torch.testing.assert_close(Int4Linear.from_linear(linear, 32).dequantized_weight(),
                               dequantize(minmax_quantize(w, 4, "group", 32, fp16_scales=True)), rtol=0, atol=0)
    layer = Int4Linear.from_linear(linear, 32)
    torch.testing.assert_close(layer.rows(torch.tensor([[3, 0]])), layer.dequantized_weight()[[3, 0]][None])


@pytest.mark.parametrize("bits,tolerance", [(8, 0.05), (4, 0.6)])
def test_quantized_model_keeps_the_tie_and_shrinks(bits, tolerance):
    model = tiny()
    idx = torch.randint(0, 2048, (2, 24), generator=torch.Generator().manual_seed(2))
    before, size = model(idx), weight_bytes(model)
    names = quantize_model(model, bits)
    assert names[0] == "blocks.0.attn.q_proj" and names[-1] == "lm_head" and len(names) == 4 * 6 + 1
    assert isinstance(model.tok_emb, QuantizedEmbedding) and model.tok_emb.head[0] is model.lm_head
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    after = model(idx)
    assert (after - before).abs().max() < tolerance
    assert weight_bytes(model) < size / (3 if bits == 8 else 4.5)
    assert memory_bytes_in_use(model) >= weight_bytes(model)
    # the saved state holds the integers once: no float copy of the embedding
    assert not any(k.startswith("tok_emb") for k in model.state_dict())


def test_untied_model_and_targets():
    model = tiny(tie_embeddings=False)
    names = quantize_model(model, 8, skip=["lm_head"])
    assert "lm_head" not in names and isinstance(model.lm_head, nn.Linear)
    assert isinstance(model.tok_emb, nn.Embedding)
    with pytest.raises(ValueError, match="bits must be 8 or 4"):
        quantize_model(tiny(), 3)


def test_straight_through_estimator():
    w = torch.tensor([0.3, -1.2, 0.9], requires_grad=True)
    w_q = torch.tensor([0.25, -1.25, 1.0])
    out = straight_through(w, w_q)
    assert torch.equal(out.detach(), w_q)
    (out * torch.tensor([1.0, 2.0, 3.0])).sum().backward()
    assert w.grad.tolist() == [1.0, 2.0, 3.0]  # the gradient passes straight through the rounding


def test_qat_wraps_trains_and_converts():
    model = tiny()
    names = prepare_qat(model, bits=4, group_size=32)
    assert all(isinstance(model.get_submodule(n), FakeQuantLinear) for n in names)
    idx = torch.randint(0, 2048, (4, 33), generator=torch.Generator().manual_seed(3))
    loss = model.loss(idx[:, :-1], idx[:, 1:])
    loss.backward()
    assert model.lm_head.linear.weight.grad is not None and model.lm_head.linear.weight.grad.abs().sum() > 0
    with torch.no_grad():  # the QAT forward equals the converted int4 model's forward
        qat_logits = model(idx[:, :-1])
    convert_qat(model)
    assert isinstance(model.lm_head, Int4Linear) and isinstance(model.tok_emb, QuantizedEmbedding)
    torch.testing.assert_close(model(idx[:, :-1]), qat_logits, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="prepare_qat"):
        convert_qat(tiny())


def test_fake_quantize_is_quantize_then_dequantize():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(fake_quantize(w, 4, 32), dequantize(minmax_quantize(w, 4, "group", 32, fp16_scales=True)))
    torch.testing.assert_close(fake_quantize(w, 4, 32, symmetric=True), dequantize(absmax_quantize(w, 4, "group", 32)))


def test_int4_stores_fp16_scales_and_minima(linear):
    layer = Int4Linear.from_linear(linear, 32)
    assert layer.scale.dtype == layer.minimum.dtype == torch.float16 and layer.scale.shape == (96, 4)
    saved = sum(t.numel() * t.element_size() for t in layer.state_dict().values())
    assert saved == 96 * 128 // 2 + 2 * 2 * 96 * 4 + 4 * 96  # nibbles, fp16 scale + minimum, fp32 bias
    # min/max grid: the smallest and largest weight of every group are reproduced up to fp16 rounding
    w = linear.weight.detach().reshape(96, 4, 32)
    back = layer.dequantized_weight().reshape(96, 4, 32)
    torch.testing.assert_close(back.amin(-1), w.amin(-1), atol=2e-3, rtol=0)
    torch.testing.assert_close(back.amax(-1), w.amax(-1), atol=2e-3, rtol=0)


def test_mean_nll_of_uniform_model():
    class Uniform(nn.Module):
        def forward(self, idx):
            return torch.zeros(*idx.shape, 50)
    assert mean_nll(Uniform(), list(range(50)) * 3, context_length=16) == pytest.approx(torch.log(torch.tensor(50.0)).item())
    with pytest.raises(ValueError, match="at least 17"):
        mean_nll(Uniform(), [1, 2, 3], context_length=16)


def test_kernels_take_bfloat16_activations_on_every_cpu():
    assert kernel_activation_dtype() == torch.bfloat16
    int8 = Int8Linear.from_linear(nn.Linear(64, 32))
    if int8.use_kernel:
        assert int8.kernel_scale.dtype == torch.bfloat16
        assert torch.equal(int8.kernel_scale, int8.scale.to(torch.bfloat16))  # converted once, at construction
    layer = Int4Linear.from_linear(nn.Linear(64, 32), 32)
    if layer.use_kernel:
        assert layer.kernel_scales.dtype == kernel_activation_dtype()
    assert layer(torch.randn(1, 64)).dtype == torch.float32  # the output is float32 on every path


@pytest.mark.parametrize("bits", [8, 4])
def test_fused_kernel_calls_give_the_same_numbers_in_fewer_calls(bits):
    available = int8_kernel_available() if bits == 8 else int4_kernel_available()
    if not available:
        pytest.skip("this PyTorch has no CPU weight-only kernel for these bits")
    from slm_course.generate import generate
    from slm_course.quantize import FusedKernelCall

    model = tiny(positions="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2)
    alone = tiny(positions="rope", norm="rmsnorm", mlp="swiglu", n_kv_heads=2)
    quantize_model(model, bits)
    quantize_model(alone, bits, fuse=False)
    blocks = len(model.blocks)
    fused = [m for m in model.modules() if isinstance(m, FusedKernelCall)]
    assert len(fused) == 2 * blocks and not any(isinstance(m, FusedKernelCall) for m in alone.modules())
    assert model.blocks[0].attn.fused_qkv.widths == [model.config.d_model, 2 * model.config.head_dim,
                                                     2 * model.config.head_dim]
    # the layers' integers and scales are views of the stacked ones: nothing stored twice, nothing saved differently
    assert memory_bytes_in_use(model) == memory_bytes_in_use(alone)
    assert weight_bytes(model) == weight_bytes(alone)
    assert model.state_dict().keys() == alone.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), alone.state_dict().values()))
    idx = torch.randint(0, 2048, (1, 12), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        assert torch.equal(model(idx[:, :1]), alone(idx[:, :1]))  # one row: the kernels (bit for bit)
        assert torch.equal(model(idx), alone(idx))
    assert torch.equal(generate(model, idx, 6), generate(alone, idx, 6))
    # turning one layer's kernel off sends all three through their own layers again
    attn = model.blocks[0].attn
    x = torch.randn(1, 1, model.config.d_model)
    stacked = attn.fused_qkv(x)
    attn.k_proj.use_kernel = False
    for got, layer in zip(attn.fused_qkv(x), (attn.q_proj, attn.k_proj, attn.v_proj)):
        assert torch.equal(got, layer(x))
    assert torch.equal(stacked[0], attn.q_proj(x))  # a layer alone, on its views, gives the stacked call's numbers
    with pytest.raises(ValueError, match="stacks two or more"):
        FusedKernelCall([attn.q_proj])


@pytest.mark.slow
def test_compiled_int8_layers_use_the_product_chosen_for_the_cpu_kind(monkeypatch):
    # Inside torch.compile (compiled decoding) Int8Linear and a stacked call multiply with int8_product, Inductor's
    # own loop on float32 activations (the fallback's numbers), with AVX-512 code; elsewhere they keep PyTorch's
    # int8 kernel (the eager layer's numbers, bfloat16 activations). Both paths run here, whatever this CPU is, by
    # setting the capability the choice reads (the code Inductor generates is this CPU's either way).
    if not int8_kernel_available():
        pytest.skip("this PyTorch has no CPU weight-only int8 kernel")
    from slm_course.quantize import FusedKernelCall, compiled_int8_uses_loop
    from slm_course.quantize import layers as layers_module
    from slm_course.quantize.layers import int8_product

    assert compiled_int8_uses_loop() is (torch.backends.cpu.get_cpu_capability() == "AVX512")
    torch.manual_seed(0)
    linears = [nn.Linear(96, width, bias=False) for width in (64, 32, 32)]
    layer = Int8Linear.from_linear(nn.Linear(96, 48))
    fused = FusedKernelCall([Int8Linear.from_linear(m) for m in linears])
    x = torch.randn(1, 1, 96, generator=torch.Generator().manual_seed(2))
    exact = nn.functional.linear(x, layer.dequantized_weight(), layer.bias)
    torch.testing.assert_close(int8_product(x[0], layer.q, layer.scale)[None] + layer.bias, exact, rtol=1e-5, atol=1e-5)
    assert (layer(x) - exact).abs().max() > 1e-4  # eager: the kernel's bfloat16 activations round visibly
    for capability in ("AVX512", "AVX2"):
        monkeypatch.setattr(layers_module, "_CPU_CAPABILITY", capability)
        loop = compiled_int8_uses_loop()
        assert loop is (capability == "AVX512")
        with torch.no_grad():
            torch.testing.assert_close(torch.compile(layer, fullgraph=True)(x), exact if loop else layer(x),
                                       rtol=1e-5, atol=1e-5)
            for got, part in zip(torch.compile(fused, fullgraph=True)(x), fused.layers):
                assert got.shape == (1, 1, part.out_features)
                expected = nn.functional.linear(x, part.dequantized_weight()) if loop else part(x)
                torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_memory_counts_a_view_and_its_matrix_once():
    from slm_course.quantize.layers import _distinct_bytes
    whole = torch.zeros(10, 4)
    assert _distinct_bytes([whole, whole[:3], whole[3:]]) == whole.numel() * 4
    assert _distinct_bytes([whole[:3], whole[5:]]) == (3 + 5) * 4 * 4  # rows 3 and 4 are not covered
    assert _distinct_bytes([whole, torch.zeros(2)]) == whole.numel() * 4 + 2 * 4  # another tensor adds its own
