"""The attention explorer, driven headless: set widget values in code, check what gets drawn."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from slm_course.attention import MultiHeadAttention
from slm_course.widgets.attention import (
    ALL_HEADS,
    MAX_TOKENS_CEILING,
    NO_TOKEN,
    AttentionExplorer,
    CharacterTokenizer,
    _figure,
    token_label,
)


class StandInModel(nn.Module):
    """The smallest model honouring slm_course.model's contract: ``model(idx, return_attention=True)``."""

    def __init__(self, vocab_size: int, n_layers: int = 3, n_heads: int = 2, d_model: int = 16, context_length: int = 64):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.positions = nn.Embedding(context_length, d_model)
        self.layers = nn.ModuleList(
            MultiHeadAttention(d_model, d_model, context_length, n_heads) for _ in range(n_layers)
        )
        self.head = nn.Linear(d_model, vocab_size)

    def forward(self, idx: torch.Tensor, return_attention: bool = False):
        x = self.embedding(idx) + self.positions(torch.arange(idx.shape[1]))
        attentions = []
        for layer in self.layers:
            out, weights = layer(x, return_weights=True)
            x = x + out
            attentions.append(weights)
        logits = self.head(x)
        return (logits, attentions) if return_attention else logits


@pytest.fixture()
def tokenizer() -> CharacterTokenizer:
    return CharacterTokenizer("hello world")


@pytest.fixture()
def model(tokenizer) -> StandInModel:
    torch.manual_seed(0)
    return StandInModel(tokenizer.vocab_size).eval()


def reference_weights(model, tokenizer, text: str) -> list[np.ndarray]:
    """The weights straight from the model, per layer (H, T, T)."""
    with torch.no_grad():
        _, attentions = model(torch.tensor([tokenizer.encode(text)]), return_attention=True)
    return [a[0].numpy() for a in attentions]


def assert_picture_shows(drawn) -> None:
    """The figure drawn from ``drawn`` shows its numbers: per head an unflipped heatmap (query rows,
    key columns), a title naming the layer and head, the tokens as tick labels, the token's row outlined."""
    from matplotlib.patches import Rectangle

    grid = drawn.weights if drawn.weights.ndim == 3 else drawn.weights[None]
    heads = list(range(grid.shape[0])) if drawn.head == ALL_HEADS else [drawn.head]
    num_tokens = len(drawn.labels)
    axes = [ax for ax in _figure(drawn).axes if ax.images and ax.get_title()]  # heatmaps, not the colorbar
    assert len(axes) == len(heads)
    for ax, weights, head in zip(axes, grid, heads):
        assert ax.get_title() == f"layer {drawn.layer}, head {head}"
        np.testing.assert_array_equal(np.asarray(ax.images[0].get_array()), weights)  # not transposed
        # imshow puts row 0 at the top: rows are queries (y), columns keys (x).
        assert ax.images[0].origin == "upper"
        assert list(ax.get_xticks()) == list(range(num_tokens)) == list(ax.get_yticks())
        x_labels = [t.get_text() for t in ax.get_xticklabels()]
        y_labels = [t.get_text() for t in ax.get_yticklabels()]
        assert x_labels in (drawn.labels, [""] * num_tokens, [])
        assert y_labels in (drawn.labels, [""] * num_tokens, [])
        outlines = [p for p in ax.patches if isinstance(p, Rectangle) and not p.get_fill()]
        if drawn.token is None:
            assert outlines == []
        else:
            assert len(outlines) == 1
            outline = outlines[0]
            assert (outline.get_x(), outline.get_y()) == (-0.5, drawn.token - 0.5)  # the token's row
            assert (outline.get_width(), outline.get_height()) == (num_tokens, 1.0)  # the whole row, one row high
    # In a grid only the outer axes carry labels, but every token appears on both axes somewhere.
    assert any([t.get_text() for t in ax.get_xticklabels()] == drawn.labels for ax in axes)
    assert any([t.get_text() for t in ax.get_yticklabels()] == drawn.labels for ax in axes)


def test_draws_the_selected_layer_and_head(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello", max_tokens=32)
    expected = reference_weights(model, tokenizer, "hello")
    assert explorer.drawn.layer == 0 and explorer.drawn.head == 0
    np.testing.assert_allclose(explorer.drawn.weights, expected[0][0], rtol=1e-5, atol=1e-6)
    assert explorer.drawn.labels == ["h", "e", "l", "l", "o"]
    first_png = bytes(explorer.image.value)
    assert first_png.startswith(b"\x89PNG")

    explorer.layer.value = 2
    explorer.head.value = 1
    assert (explorer.drawn.layer, explorer.drawn.head) == (2, 1)
    np.testing.assert_allclose(explorer.drawn.weights, expected[2][1], rtol=1e-5, atol=1e-6)
    assert not np.allclose(expected[2][1], expected[0][0])  # the layers really differ, so the check means something
    assert bytes(explorer.image.value) != first_png


def test_the_picture_shows_the_selected_layer_head_and_token(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello world")
    assert_picture_shows(explorer.drawn)
    explorer.layer.value, explorer.head.value, explorer.token.value = 2, 1, 7
    assert (explorer.drawn.layer, explorer.drawn.head, explorer.drawn.token) == (2, 1, 7)
    assert_picture_shows(explorer.drawn)
    assert bytes(explorer.image.value) == explorer._png(explorer.drawn)  # the image shown is this picture
    explorer.head.value = ALL_HEADS
    assert_picture_shows(explorer.drawn)
    assert bytes(explorer.image.value) == explorer._png(explorer.drawn)


@pytest.mark.parametrize("head", [1, ALL_HEADS])
def test_the_picture_checks_catch_drawing_mistakes(model, tokenizer, monkeypatch, head):
    # The checks above must fail on the mistakes they are there to catch: a transposed heatmap,
    # the outline always on row 0, a title naming another layer, tick labels in the wrong order.
    import dataclasses
    import sys

    from slm_course.widgets import attention as widget_module

    explorer = AttentionExplorer(model, tokenizer, text="hello")
    explorer.layer.value, explorer.head.value, explorer.token.value = 1, head, 3
    drawn = explorer.drawn
    real = widget_module._figure
    mistakes = {
        "transposed": lambda d: real(dataclasses.replace(d, weights=np.swapaxes(d.weights, -1, -2).copy())),
        "outline on row 0": lambda d: real(dataclasses.replace(d, token=0)),
        "wrong layer in the title": lambda d: real(dataclasses.replace(d, layer=d.layer + 1)),
        "labels reversed": lambda d: real(dataclasses.replace(d, labels=d.labels[::-1])),
    }
    for name, mistake in mistakes.items():
        monkeypatch.setattr(sys.modules[__name__], "_figure", mistake)
        with pytest.raises(AssertionError):
            assert_picture_shows(drawn)
    monkeypatch.setattr(sys.modules[__name__], "_figure", real)
    assert_picture_shows(drawn)


def test_all_heads_draws_a_grid(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="world")
    explorer.layer.value = 1
    explorer.head.value = ALL_HEADS
    assert explorer.drawn.weights.shape == (2, 5, 5)
    np.testing.assert_allclose(explorer.drawn.weights, reference_weights(model, tokenizer, "world")[1], rtol=1e-5, atol=1e-6)


def test_weights_are_causal_rows_summing_to_one(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello world")
    weights = explorer.drawn.weights
    np.testing.assert_allclose(weights.sum(axis=-1), np.ones(11), rtol=1e-5)
    assert np.all(np.triu(weights, k=1) == 0)


def test_token_selector_highlights_that_row(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello")
    assert explorer.drawn.token is None
    options = [value for _, value in explorer.token.options]
    assert options == [NO_TOKEN, 0, 1, 2, 3, 4]
    explorer.token.value = 3
    assert explorer.drawn.token == 3
    row = explorer.drawn.weights[3]
    best = int(np.argmax(row))
    assert f"attends most to {best} ({explorer.drawn.labels[best]}" in explorer.message.value
    explorer.head.value = ALL_HEADS
    assert explorer.drawn.token == 3 and "outlined in every head" in explorer.message.value
    explorer.token.value = NO_TOKEN
    assert explorer.drawn.token is None and "outlined" not in explorer.message.value


def test_new_text_rebuilds_tokens_and_keeps_a_valid_selection(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello world")
    explorer.token.value = 8
    explorer.text.value = "hi"
    assert explorer.drawn.labels == ["h", "i"]
    assert explorer.drawn.token is None  # token 8 no longer exists
    assert explorer.drawn.weights.shape == (2, 2)
    explorer.token.value = 1
    explorer.text.value = "hey"
    assert explorer.drawn.token == 1


def test_long_input_is_capped_with_a_message(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello world " * 10, max_tokens=20)
    assert explorer.drawn.weights.shape == (20, 20)
    assert "120 tokens" in explorer.message.value and "first 20" in explorer.message.value


def test_cap_never_exceeds_the_model_context(tokenizer):
    torch.manual_seed(0)
    small = StandInModel(tokenizer.vocab_size, context_length=8).eval()
    small.config = type("Config", (), {"context_length": 8})()
    explorer = AttentionExplorer(small, tokenizer, text="hello world", max_tokens=100)
    assert explorer.drawn.weights.shape == (8, 8)


def test_empty_text_shows_a_message_not_an_error(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="")
    assert explorer.drawn.weights is None
    assert "Type some text" in explorer.message.value
    explorer.text.value = "ok"
    assert explorer.drawn.weights.shape == (2, 2)


def test_encode_decode_functions_instead_of_a_tokenizer(model, tokenizer):
    explorer = AttentionExplorer(model, encode=tokenizer.encode, decode=tokenizer.decode, text="hello")
    assert explorer.drawn.labels == list("hello")
    with pytest.raises(TypeError, match="tokenizer"):
        AttentionExplorer(model, text="hello")
    with pytest.raises(ValueError, match="max_tokens"):
        AttentionExplorer(model, tokenizer, max_tokens=0)


def test_message_shows_the_text_not_html(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="a<b>")
    explorer.token.value = 1
    assert "(&lt;)" in explorer.message.value and "<b>" not in explorer.message.value


def test_leaves_the_model_mode_alone(model, tokenizer):
    model.train()
    AttentionExplorer(model, tokenizer, text="hello")
    assert model.training


def test_token_labels_make_whitespace_visible():
    assert token_label(" ") == "␣" and token_label("\n") == "↵"
    assert token_label(" the") == "␣the"
    assert token_label("abcdefghijk", limit=5) == "abcd…"


def test_character_tokenizer_round_trip_and_unknown():
    tokenizer = CharacterTokenizer("abc")
    assert tokenizer.decode(tokenizer.encode("a cab!")) == "a cab!"
    assert tokenizer.encode("é") == [0]


def test_the_widget_displays(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello")
    bundle = explorer._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle


# --------------------------------------------------------------------------- with the course's own model

SWITCHES = [  # chapter 3's five switches, each value in at least one combination
    dict(norm="layernorm", positions="learned", mlp="gelu", n_kv_heads=None, tie_embeddings=False),  # GPT-2 style
    dict(norm="rmsnorm", positions="rope", mlp="swiglu", n_kv_heads=2, tie_embeddings=True),  # Llama / SmolLM2 style
    dict(norm="rmsnorm", positions="learned", mlp="gelu", n_kv_heads=1, tie_embeddings=False),
    dict(norm="layernorm", positions="rope", mlp="swiglu", n_kv_heads=4, tie_embeddings=True),
]


@pytest.mark.parametrize("switches", SWITCHES, ids=lambda s: "-".join(str(v) for v in s.values()))
def test_works_on_an_slm_model_with_every_switch(tokenizer, switches):
    from slm_course.model import SLM, SLMConfig

    torch.manual_seed(0)
    config = SLMConfig(vocab_size=tokenizer.vocab_size, context_length=16, d_model=32, n_layers=2, n_heads=4, **switches)
    model = SLM(config).eval()
    explorer = AttentionExplorer(model, tokenizer, text="hello world, hello", max_tokens=64)
    assert explorer.max_tokens == 16  # capped at the model's context length
    assert (explorer.n_layers, explorer.n_heads) == (2, 4)  # query heads, whatever n_kv_heads is
    expected = reference_weights(model, tokenizer, "hello world, hel")
    for layer, head, token in ((0, 0, None), (1, 3, 9), (1, 2, 15)):
        explorer.layer.value, explorer.head.value = layer, head
        explorer.token.value = NO_TOKEN if token is None else token
        assert (explorer.drawn.layer, explorer.drawn.head, explorer.drawn.token) == (layer, head, token)
        np.testing.assert_allclose(explorer.drawn.weights, expected[layer][head], rtol=1e-5, atol=1e-6)
        assert_picture_shows(explorer.drawn)
    assert not np.allclose(expected[1][3], expected[0][0])
    explorer.head.value = ALL_HEADS
    np.testing.assert_allclose(explorer.drawn.weights, expected[1], rtol=1e-5, atol=1e-6)
    assert_picture_shows(explorer.drawn)


def test_ids_beyond_the_vocabulary_become_a_message(tokenizer):
    from slm_course.model import SLM, SLMConfig

    torch.manual_seed(0)
    small = SLM(SLMConfig(vocab_size=8, context_length=16, d_model=16, n_layers=1, n_heads=2)).eval()
    explorer = AttentionExplorer(small, tokenizer, text="hello")  # this tokenizer's ids go far above 8
    assert explorer.drawn.weights is None and explorer.image.value == b""
    assert "cannot read this text" in explorer.message.value and "ValueError" in explorer.message.value
    explorer.text.value = "\x00\x01"  # unknown characters: id 0, inside the vocabulary
    assert explorer.drawn.weights.shape == (2, 2) and "cannot read" not in explorer.message.value
    explorer.text.value = "hi"  # typed by a learner: the observer shows a message instead of raising
    assert explorer.drawn.weights is None and "cannot read this text" in explorer.message.value


def test_max_tokens_has_a_ceiling(model, tokenizer):
    with pytest.raises(ValueError, match=f"at most {MAX_TOKENS_CEILING}"):
        AttentionExplorer(model, tokenizer, max_tokens=MAX_TOKENS_CEILING + 1)
    with pytest.raises(ValueError, match="max_tokens"):
        AttentionExplorer(model, tokenizer, max_tokens=10**9)
    assert AttentionExplorer(model, tokenizer, text="hi", max_tokens=MAX_TOKENS_CEILING).max_tokens == MAX_TOKENS_CEILING


def test_train_demo_model_learns_and_is_deterministic():
    from slm_course.widgets.attention import train_demo_model

    text = "to be or not to be, that is the question. " * 20
    settings = dict(steps=40, batch_size=4, context_length=16, d_model=32, n_layers=1, n_heads=2, seed=3, progress=False)
    first = train_demo_model(text, **settings)
    second = train_demo_model(text, **settings)
    assert first.losses == second.losses
    assert len(first.losses) == 40
    # A uniform guess over the vocabulary costs log(vocab) nats; after 40 steps on a repetitive text it is far below.
    assert np.mean(first.losses[-5:]) < 0.6 * np.log(first.tokenizer.vocab_size)
    assert not first.model.training
    with pytest.raises(ValueError, match="characters"):
        train_demo_model("short", context_length=16, progress=False)

# The in-browser check (JupyterLab + headless Chromium, offline) is tests/test_browser.py.


def test_snapshot_is_the_static_picture_of_a_setting_without_moving_the_controls(model, tokenizer):
    explorer = AttentionExplorer(model, tokenizer, text="hello world")
    before = (explorer.layer.value, explorer.head.value, explorer.token.value)
    figure = explorer.snapshot(layer=1, head=ALL_HEADS)
    assert (explorer.layer.value, explorer.head.value, explorer.token.value) == before  # controls untouched
    heatmaps = [ax for ax in figure.axes if ax.images]
    assert [ax.get_title() for ax in heatmaps] == ["layer 1, head 0", "layer 1, head 1"]
    reference = reference_weights(model, tokenizer, "hello world")[1]
    for ax, weights in zip(heatmaps, reference):
        np.testing.assert_allclose(np.asarray(ax.images[0].get_array()), weights, rtol=1e-5, atol=1e-6)
    assert figure.get_suptitle()
    # With no arguments it is what the widget shows now: the same numbers as explorer.drawn.
    current = explorer.snapshot()
    np.testing.assert_array_equal(np.asarray([ax for ax in current.axes if ax.images][0].images[0].get_array()),
                                  explorer.drawn.weights)
    with pytest.raises(ValueError, match="layer must be between 0 and 2"):
        explorer.snapshot(layer=3)
    with pytest.raises(ValueError, match="head must be"):
        explorer.snapshot(head=5)
