"""Chapters 6, 7 and 9's diagrams draw without error and show the package's own numbers."""
from __future__ import annotations

import io

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from slm_course.diagrams import ch06, ch07, ch09  # noqa: E402
from slm_course.diagrams.drawing import count_gids, texts  # noqa: E402
from slm_course.evaluate import benchmarks as bm  # noqa: E402
from slm_course.finetune.lora import LoRALinear  # noqa: E402
from slm_course.model import SLM, SLMConfig  # noqa: E402
from slm_course.weights import save_hf  # noqa: E402
from slm_course.weights.hf_files import read_safetensors_header  # noqa: E402

NAMES = ["transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", "transformer.h.1.mlp.c_fc.weight"]


def png(figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


@pytest.fixture(scope="module")
def safetensors_file(tmp_path_factory):
    torch.manual_seed(0)
    model = SLM(SLMConfig.from_name("tiny", vocab_size=96, d_model=64, n_layers=2, context_length=64)).eval()
    return save_hf(model, tmp_path_factory.mktemp("tiny-gpt2")) / "model.safetensors"


def test_safetensors_header_reader_matches_the_safetensors_library(safetensors_file):
    from safetensors import safe_open

    length, header = read_safetensors_header(safetensors_file)
    assert length + 8 + max(e["data_offsets"][1] for e in header.values()) == safetensors_file.stat().st_size
    with safe_open(str(safetensors_file), "pt") as handle:
        assert set(handle.keys()) == set(header)
        for name in header:
            tensor = handle.get_tensor(name)
            start, end = header[name]["data_offsets"]
            assert list(tensor.shape) == header[name]["shape"] and end - start == tensor.numel() * 4


def test_safetensors_layout_draws_each_tensor_at_the_offsets_of_the_header(safetensors_file):
    length, header = read_safetensors_header(safetensors_file)
    figure = ch06.safetensors_layout(safetensors_file, NAMES, {NAMES[0]: "tok_emb.weight"}, show=False)
    drawn = texts(figure)
    assert f"{length:,} header bytes" in figure.get_suptitle()
    assert count_gids(figure, "tensor-") == len(NAMES)
    for i, name in enumerate(NAMES):
        start, end = header[name]["data_offsets"]
        assert any(t.startswith(name) and f"[{start:,}, {end:,})" in t and str(header[name]["shape"]) in t for t in drawn)
        bar = next(p for p in figure.axes[0].patches if p.get_gid() == f"tensor-{i}")
        data = next(p for p in figure.axes[0].patches if p.get_gid() == "data")
        total = max(e["data_offsets"][1] for e in header.values())
        assert bar.get_x() == pytest.approx(data.get_x() + data.get_width() * start / total)  # to scale
    assert "→ tok_emb.weight" in drawn
    assert png(figure) == png(ch06.safetensors_layout(safetensors_file, NAMES, {NAMES[0]: "tok_emb.weight"}, show=False))
    with pytest.raises(ValueError, match="not in it"):
        ch06.safetensors_layout(safetensors_file, ["no.such.tensor"], show=False)


@pytest.mark.parametrize("d_in, d_out, r, alpha", [(576, 576, 8, 16), (64, 192, 4, 8), (48, 80, 2, 32)])
def test_lora_paths_show_loralinears_scaling_and_parameter_counts(d_in, d_out, r, alpha):
    layer = LoRALinear(torch.nn.Linear(d_in, d_out, bias=False), r=r, alpha=alpha)
    trained = sum(p.numel() for p in layer.parameters() if p.requires_grad)
    figure = ch07.lora_paths(d_in, d_out, r, alpha, show=False)
    drawn = " ".join(texts(figure))
    assert f"= {layer.scaling:g}" in figure.get_suptitle()
    assert f"trained: r·(in + out) = {trained:,} weights" in drawn
    assert f"frozen: {layer.base.weight.numel():,} weights" in drawn
    assert f"A  {tuple(layer.lora_A.shape)[0]} × {tuple(layer.lora_A.shape)[1]}" in drawn
    assert f"B  {tuple(layer.lora_B.shape)[0]} × {tuple(layer.lora_B.shape)[1]}" in drawn
    assert {count_gids(figure, g) for g in ("frozen", "lora-A", "lora-B", "scale")} == {1}
    with pytest.raises(ValueError, match="r <="):
        ch07.lora_paths(4, 4, 8, 16, show=False)


def test_letter_vs_cloze_draws_the_packages_prompts_and_marks_each_pick():
    question, choices = "Which of the following is the body cavity that contains the pituitary gland?", \
        ["Abdominal", "Cranial", "Pleural", "Spinal"]
    letter = bm.mmlu_item(question, choices, 1, "letter", "anatomy")
    cloze = bm.mmlu_item(question, choices, 1, "cloze", "anatomy")
    letter_lls, cloze_lls = [-2.83, -9.38, -6.19, -4.99], [-8.1, -5.2, -9.0, -7.7]
    figure = ch09.letter_vs_cloze(letter, cloze, letter_lls, cloze_lls, show=False)
    drawn = texts(figure)
    flat = [" ".join(t.split()) for t in drawn]
    assert " ".join(letter.context.split()) in flat and " ".join(cloze.context.split()) in flat  # the prompts, wrapped
    assert count_gids(figure, "letter-option") == 4 and count_gids(figure, "cloze-option") == 4
    assert [t for t in drawn if "picked" in t] == [f"log P = {letter_lls[bm.pick(letter_lls)]:.2f}  ← picked",
                                                   f"log P = {cloze_lls[bm.pick(cloze_lls)]:.2f}  ← picked  ✓ right"]
    assert "' Cranial'" in drawn and "' B'" in drawn
    with pytest.raises(ValueError, match="log-likelihoods"):
        ch09.letter_vs_cloze(letter, cloze, letter_lls[:3], cloze_lls, show=False)
