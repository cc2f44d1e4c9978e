"""Chapter 8's progress bars: a live bar over the optimizer steps that changes no number and leaves one line."""
import pytest
import torch

from slm_course.finetune import sft
from slm_course.finetune.dpo import generate_pairs
from slm_course.finetune.instruct import generate_examples
from slm_course.model import SLM, SLMConfig

EOS = 255


class _Chars:
    def encode(self, text):
        return [ord(c) % 250 for c in text]

    def decode(self, ids):
        return "".join(chr(i) for i in ids if i < 250)


def _model(seed=0):
    torch.manual_seed(seed)
    return SLM(SLMConfig(vocab_size=256, context_length=256, d_model=32, n_layers=1, n_heads=2))


def test_finetune_with_a_bar_trains_exactly_as_without_and_prints_its_summary(capsys):
    pairs = sft.encode_examples(generate_examples(16, seed=0), _Chars(), eos_id=EOS)
    quiet, shown = _model(), _model()
    h_quiet = sft.finetune(quiet, pairs, steps=6, pad_id=EOS, batch_size=4, lr=3e-3, max_length=256)
    assert capsys.readouterr().out == ""  # no bar, no summary by default
    h_shown = sft.finetune(shown, pairs, steps=6, pad_id=EOS, batch_size=4, lr=3e-3, max_length=256, progress=True,
                           label="SFT test")
    out = capsys.readouterr()
    assert h_shown.train_loss == h_quiet.train_loss
    assert all(torch.equal(p, q) for p, q in zip(quiet.state_dict().values(), shown.state_dict().values()))
    line = out.out.strip()
    assert line.startswith("SFT test: 6/6 steps in ") and line.endswith(
        f"loss {h_quiet.train_loss[0]:.3f} → {h_quiet.train_loss[-1]:.3f}")
    assert "SFT test" in out.err  # tqdm's text bar ran on stderr outside a notebook


def test_preference_tune_with_a_bar_logs_the_same_run(capsys):
    pairs = generate_pairs(8, seed=0)
    runs = []
    for progress in (False, True):
        model = _model()
        _, log, _ = sft.preference_tune(model, pairs, _Chars(), steps=4, pad_id=EOS, beta=0.5, batch_size=4, lr=3e-3,
                                        max_length=256, eos_id=EOS, progress=progress)
        runs.append(log.loss)
    assert runs[0] == runs[1]
    assert capsys.readouterr().out.strip().startswith("DPO: 4/4 steps in ")


def test_step_progress_counts_tracked_calls_and_passes_the_loss_through():
    bar = sft.StepProgress(3, "demo")
    tracked = bar.track(lambda model, batch: torch.tensor(batch, dtype=torch.float32))
    assert float(tracked(None, 2.5)) == 2.5 and float(tracked(None, 1.25)) == 1.25
    summary = bar.close()
    assert summary.startswith("demo: 2/3 steps in ") and summary.endswith("loss 2.500 → 1.250")
    off = sft.StepProgress(3, enabled=False)
    fn = lambda model, batch: batch  # noqa: E731
    assert off.track(fn) is fn and "0/3 steps" in off.close()
    with pytest.raises(ValueError, match="steps"):
        sft.StepProgress(-1)


@pytest.mark.slow
def test_in_a_notebook_the_stored_output_is_the_summary_not_a_bar():
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    source = (
        "import torch\n"
        "from slm_course.finetune import sft\n"
        "from slm_course.finetune.instruct import generate_examples\n"
        "from slm_course.model import SLM, SLMConfig\n"
        "class Chars:\n"
        "    def encode(self, text): return [ord(c) % 250 for c in text]\n"
        "torch.manual_seed(0)\n"
        "model = SLM(SLMConfig(vocab_size=256, context_length=256, d_model=16, n_layers=1, n_heads=2))\n"
        "pairs = sft.encode_examples(generate_examples(8, seed=0), Chars(), eos_id=255)\n"
        "history = sft.finetune(model, pairs, steps=3, pad_id=255, batch_size=4, max_length=256, progress=True)\n"
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
    nbclient.NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    outputs = nb.cells[0].outputs
    texts = [o.get("data", {}).get("text/plain", "") or o.get("text", "") for o in outputs]
    assert any(t.startswith("SFT: 3/3 steps in ") for t in texts), outputs
    assert not any("it/s" in t or "%|" in t for t in texts), outputs
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), outputs
