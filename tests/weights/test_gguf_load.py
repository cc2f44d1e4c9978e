"""GGUF → SLM: tiny random Llama models written as GGUF (llama.cpp's layout), loaded, same logits;
the Q/K permutation; hyper-parameters from metadata; one-sentence errors for bad files."""
from __future__ import annotations

import pytest
import torch

import gguf

from gguf_helpers import tiny_llama, write_llama_gguf
from slm_course.weights import load_gguf, permute_rows, unpermute_rows

IDX = torch.randint(0, 96, (2, 20), generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("matrix_type, tie, kv_heads", [("F32", True, 2), ("F16", False, 1), ("Q8_0", True, 4),
                                                         ("Q4_1", False, 2), ("Q4_0", True, 2)])
def test_tiny_llama_gguf_logits_match(tmp_path, matrix_type, tie, kv_heads):
    reference = tiny_llama(tie=tie, kv_heads=kv_heads)
    path = tmp_path / "tiny.gguf"
    write_llama_gguf(reference, path, matrix_type)
    model, info = load_gguf(path)
    assert model.config.n_kv_heads == kv_heads and model.config.rope_theta == 500.0
    assert model.config.tie_embeddings == tie
    with torch.no_grad():
        torch.testing.assert_close(model(IDX), reference(IDX).logits, atol=1e-4, rtol=1e-4)
    assert info["tensor_types"].get(matrix_type, 0) >= 7


def test_without_unpermuting_the_logits_differ(tmp_path, monkeypatch):
    reference = tiny_llama()
    path = tmp_path / "tiny.gguf"
    write_llama_gguf(reference, path)
    monkeypatch.setattr("slm_course.weights.gguf_load.unpermute_rows", lambda w, n: w)
    model, _ = load_gguf(path)
    with torch.no_grad():
        assert (model(IDX) - reference(IDX).logits).abs().max() > 1e-2


def test_permutation_round_trip_and_layout():
    w = torch.arange(2 * 8, dtype=torch.float32).reshape(16, 1)  # 2 heads of head_dim 8
    p = permute_rows(w, 2)
    assert p[:8, 0].tolist() == [0, 4, 1, 5, 2, 6, 3, 7]  # halves interleaved within each head
    assert torch.equal(unpermute_rows(p, 2), w)
    with pytest.raises(ValueError, match="heads"):
        unpermute_rows(torch.zeros(10, 3), 4)


def test_hyperparameters_come_from_metadata(tmp_path):
    reference = tiny_llama(theta=1234.0, eps=1e-5, layers=3)
    path = tmp_path / "tiny.gguf"
    write_llama_gguf(reference, path)
    model, info = load_gguf(path)
    c = model.config
    assert (c.n_layers, c.d_model, c.n_heads, c.n_kv_heads, c.d_ff, c.vocab_size, c.context_length) == (3, 64, 4, 2, 96, 96, 64)
    assert c.rope_theta == 1234.0 and abs(c.norm_eps - 1e-5) < 1e-12
    assert info["metadata"]["llama.block_count"] == 3


def test_not_a_gguf_file(tmp_path):
    path = tmp_path / "model.safetensors"
    path.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}" + bytes(64))
    with pytest.raises(ValueError, match=r"not a GGUF file: it starts with .*b'GGUF'"):
        load_gguf(path)


@pytest.mark.parametrize("keep", [0.5, 0.999])
def test_truncated_file(tmp_path, keep):
    path = tmp_path / "tiny.gguf"
    write_llama_gguf(tiny_llama(), path, "Q8_0")
    data = path.read_bytes()
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(ValueError, match="truncated"):
        load_gguf(cut)
    header_only = tmp_path / "header.gguf"
    header_only.write_bytes(data[:40])
    with pytest.raises(ValueError, match="truncated"):
        load_gguf(header_only)


def test_unsupported_quantization_type(tmp_path):
    path = tmp_path / "q5.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    from gguf.quants import quantize

    w = torch.randn(4, 64).numpy()
    writer.add_tensor("blk.0.attn_q.weight", quantize(w, gguf.GGMLQuantizationType.Q5_0), raw_dtype=gguf.GGMLQuantizationType.Q5_0)
    writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
    with pytest.raises(ValueError, match="Q5_0, a quantization type the course does not dequantize; supported: F32, F16, Q4_0, Q4_1, Q8_0"):
        load_gguf(path)


def test_unsupported_architecture(tmp_path):
    path = tmp_path / "phi.gguf"
    writer = gguf.GGUFWriter(str(path), "phi2")
    writer.add_tensor("token_embd.weight", torch.zeros(4, 8).numpy())
    writer.write_header_to_file(); writer.write_kv_data_to_file(); writer.write_tensors_to_file(); writer.close()
    with pytest.raises(ValueError, match="holds a 'phi2' model; the course builds 'llama'"):
        load_gguf(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="No GGUF file"):
        load_gguf(tmp_path / "nothing.gguf")
