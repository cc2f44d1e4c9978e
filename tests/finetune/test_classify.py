"""Chapter 7's classifier pieces: data splits, padding, the last real token, frozen tops, metrics."""
import pytest
import torch

from slm_course.finetune import classify as C
from slm_course.model import SLM, SLMConfig

LLAMA_TINY = dict(vocab_size=101, context_length=64, d_model=48, n_layers=3, n_heads=6, n_kv_heads=2, d_ff=80,
                  norm="rmsnorm", positions="rope", mlp="swiglu", tie_embeddings=True, qkv_bias=False, bias=False)


def encode(text):
    return [1 + ord(c) % 100 for c in text]


def tiny_classifier(seed=0, **overrides):
    torch.manual_seed(seed)
    return C.add_classification_head(SLM(SLMConfig(**{**LLAMA_TINY, **overrides}))).eval()


def toy_dataset(n_ham=30, n_spam=10):
    import datasets
    texts = [f"hello friend {i}" for i in range(n_ham)] + [f"WIN £{i}00 now, call 0800{i}" for i in range(n_spam)]
    return datasets.Dataset.from_dict({"text": texts, "label": [0] * n_ham + [1] * n_spam},
                                      features=C._features(datasets))


def test_read_sms_spam_rejects_a_bad_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("ham\tfine\nspammy\tno\n", encoding="utf-8")
    with pytest.raises(ValueError, match="line 2"):
        C.read_sms_spam(path)


@pytest.mark.asset
def test_sms_spam_asset_loads_balances_and_splits():
    data = C.load_sms_spam()
    assert len(data) == 4862 and sum(data["label"]) == 642
    splits = C.spam_splits(encode, max_length=16)
    sizes = {k: len(v) for k, v in splits.items()}
    assert sum(sizes.values()) == 2 * 642 and sizes["test"] == 257
    for part in splits.values():
        assert abs(sum(part["label"]) - len(part) / 2) <= 1 and max(part["n_tokens"]) <= 16
    again = C.spam_splits(encode, max_length=16)
    assert again["test"]["text"] == splits["test"]["text"]
    texts = list(data["text"])
    repeated = {t for t in set(texts) if texts.count(t) > 1}  # the collection has duplicate messages
    assert not (set(splits["train"]["text"]) & set(splits["test"]["text"])) - repeated


def test_balance_and_split_are_deterministic_and_disjoint():
    data = toy_dataset()
    balanced = C.balance(data, seed=1)
    assert len(balanced) == 20 and sum(balanced["label"]) == 10
    assert balanced["text"] == C.balance(data, seed=1)["text"] != C.balance(data, seed=2)["text"]
    parts = C.split(balanced, val_fraction=0.2, test_fraction=0.2, seed=0)
    assert [len(parts[k]) for k in ("train", "validation", "test")] == [12, 4, 4]
    assert sum(parts["test"]["label"]) == 2  # stratified
    seen = [t for p in parts.values() for t in p["text"]]
    assert sorted(seen) == sorted(balanced["text"])
    with pytest.raises(ValueError, match="two classes"):
        C.balance(data.filter(lambda r: r["label"] == 0))
    with pytest.raises(ValueError, match="sum below 1"):
        C.split(balanced, 0.5, 0.5)


def test_pad_batch_and_last_token_both_sides():
    ids, mask = C.pad_batch([[5, 6, 7], [8], [1, 2, 3, 4, 9]], pad_id=0, max_length=4)
    assert ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [1, 2, 3, 4]]
    assert mask.tolist() == [[1, 1, 1, 0], [1, 0, 0, 0], [1, 1, 1, 1]]
    assert C.last_token_index(mask).tolist() == [2, 0, 3]
    left_ids, left_mask = C.pad_batch([[5, 6, 7], [8]], pad_id=0, side="left")
    assert left_ids.tolist() == [[5, 6, 7], [0, 0, 8]] and C.last_token_index(left_mask).tolist() == [2, 2]
    values = torch.arange(2 * 3 * 2).reshape(2, 3, 2)
    assert C.last_real_token(values, left_mask).tolist() == [[4, 5], [10, 11]]
    with pytest.raises(ValueError):
        C.pad_batch([[1], []], 0)
    with pytest.raises(ValueError):
        C.last_token_index(torch.tensor([[1, 0], [0, 0]]))


def test_head_reads_the_last_real_token_so_padding_changes_nothing():
    model = tiny_classifier()
    texts = ["hi", "free entry, call now 0800 123", "ok see you"]
    alone = torch.cat([C.classification_logits(model, *C.pad_batch([encode(t)], 0)) for t in texts])
    ids, mask = C.pad_batch([encode(t) for t in texts], pad_id=0)
    together = C.classification_logits(model, ids, mask)
    assert together.shape == (3, 2)
    torch.testing.assert_close(together, alone, rtol=1e-5, atol=1e-5)
    at_last_position = model(ids)[:, -1]  # the mistake: the last position is padding for short rows
    assert not torch.allclose(at_last_position[0], alone[0], atol=1e-4)
    assert model.lm_head.weight.data_ptr() != model.tok_emb.weight.data_ptr()  # untied


def test_unfreeze_counts():
    model = tiny_classifier()
    block = sum(p.numel() for p in model.blocks[-1].parameters())
    head_norm = sum(p.numel() for p in model.lm_head.parameters()) + model.config.d_model
    assert C.unfreeze(model, 1) == block + head_norm
    assert {n.split(".")[1] for n, p in model.named_parameters() if p.requires_grad and n.startswith("blocks")} == {"2"}
    assert C.unfreeze(model, 0) == head_norm
    assert C.unfreeze(model, "all") == model.num_parameters()
    with pytest.raises(ValueError):
        C.unfreeze(model, 4)


def test_cached_hidden_and_top_blocks_equal_the_whole_model():
    model = tiny_classifier()
    ids, mask = C.pad_batch([encode(t) for t in ["a b c", "longer message here", "x"]], 0)
    hidden = C.cached_hidden(model, ids, n_frozen=2, batch_size=2, attention_mask=mask)
    top = C.TopBlocks(model, start=2)
    torch.testing.assert_close(C.last_real_token(top(hidden), mask), C.classification_logits(model, ids, mask),
                               rtol=1e-5, atol=1e-5)
    # Given the mask, the top block runs at the last real token only: the same scores, (B, num_classes).
    torch.testing.assert_close(top(hidden, mask), C.classification_logits(model, ids, mask), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(C.TopBlocks(model, start=3)(C.cached_hidden(model, ids, n_frozen=3, attention_mask=mask), mask),
                               C.classification_logits(model, ids, mask), rtol=1e-5, atol=1e-5)  # no block on top
    labels = torch.tensor([0, 1, 0])
    loss = C.classification_loss(top, (hidden, mask, labels))
    assert torch.isclose(loss, C.classification_loss(model, (ids, mask, labels)), atol=1e-5)
    # The gradients reaching the trained block are the same too.
    grads = []
    for module, inputs in ((top, hidden), (model, ids)):
        model.zero_grad()
        C.classification_loss(module, (inputs, mask, labels)).backward()
        grads.append(model.blocks[2].mlp.up.weight.grad.clone())
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-6)


def test_confusion_precision_recall():
    pred, true = torch.tensor([1, 1, 0, 0, 1, 0]), torch.tensor([1, 0, 0, 1, 1, 0])
    confusion = C.confusion_matrix(pred, true)
    assert confusion.tolist() == [[2, 1], [1, 2]]
    assert C.precision_recall(confusion) == (2 / 3, 2 / 3)
    assert C.precision_recall(C.confusion_matrix(torch.tensor([0, 0]), torch.tensor([1, 0]))) == (0.0, 0.0)


def test_evaluate_and_classify():
    model = tiny_classifier()
    ids, mask = C.pad_batch([encode(t) for t in ["a", "bb", "ccc", "dddd"]], 0)
    labels = torch.tensor([0, 1, 1, 0])
    result = C.evaluate(model, ids, mask, labels, batch_size=3)
    predictions = C.classification_logits(model, ids, mask).argmax(-1)
    assert result["accuracy"] == float((predictions == labels).float().mean())
    assert result["confusion"].sum() == 4
    out = C.classify(model, encode, ["a", "WIN NOW"])
    assert [label for label, _ in out] == [C.LABELS[int(p)] for p in C.classification_logits(
        model, *C.pad_batch([encode("a"), encode("WIN NOW")], 0)).argmax(-1)]
    assert all(0.0 <= p <= 1.0 for _, p in out)
    with pytest.raises(ValueError):
        C.classify(model, encode, [""])


@pytest.mark.network
def test_full_uci_set_loads():
    data = C.load_uci_sms_spam()
    assert len(data) == 5574 and sum(data["label"]) == 747


@pytest.mark.parametrize("settings", [dict(blocks=1), dict(blocks="all"), dict(blocks=2, lora_rank=2)])
def test_train_classifier_learns_a_toy_task(settings):
    data = C.split(toy_dataset(40, 40), seed=0)
    splits = {k: C.tokenize(v, encode, 24) for k, v in data.items()}
    model = tiny_classifier()
    frozen = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("blocks.0.")}
    run = C.train_classifier(model, splits, pad_id=0, max_length=24, max_steps=40, batch_size=8, lr=3e-3,
                             eval_every=20, **settings)
    history = run["history"]
    assert len(history.train_loss) == 40 and history.evals[-1]["step"] == 39
    assert run["test"]["accuracy"] >= 0.9 and run["test"]["confusion"].sum() == 16
    if settings["blocks"] != "all":  # the lowest block was frozen: bit-identical
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in frozen.items())
    if "lora_rank" in settings:
        assert run["trainable"] == sum(p.numel() for n, p in model.named_parameters() if "lora_" in n) + 2 * 48 + 2


def test_progress_bars_count_messages_and_steps_and_change_nothing(capsys):
    data = C.split(toy_dataset(40, 40), seed=0)
    splits = {k: C.tokenize(v, encode, 24) for k, v in data.items()}
    runs = []
    for progress in (False, True):
        model = tiny_classifier()
        runs.append(C.train_classifier(model, splits, pad_id=0, max_length=24, max_steps=12, batch_size=8, lr=3e-3,
                                       eval_every=6, progress=progress))
        bars = capsys.readouterr().err
        if not progress:
            assert "training" not in bars and "frozen" not in bars
    assert runs[0]["history"].train_loss == runs[1]["history"].train_loss
    assert torch.equal(runs[0]["test"]["confusion"], runs[1]["test"]["confusion"])
    assert "training" in bars and "12/12" in bars  # the steps bar ends full
    assert "frozen blocks, once" in bars and "80/80" in bars  # every message of every split ran once
    assert "loss=" in bars


def test_balanced_indices():
    labels = [1, 0, 0, 2, 0, 1, 2, 2, 0]
    assert C.balanced_indices(labels) == [0, 1, 2, 3, 5, 6]
    seeded = C.balanced_indices(labels, seed=3)
    assert seeded == sorted(seeded) and [labels[i] for i in seeded].count(0) == 2


def test_padded_batch_diagram():
    from slm_course.diagrams import ch07
    figure = ch07.padded_batch()
    texts = [t.get_text() for t in figure.axes[0].texts]
    assert texts.count("<pad>") == 6 and "head → (ham, spam)" in texts


def test_frozen_pass_from_a_lower_cut_equals_a_direct_pass():
    data = C.split(toy_dataset(20, 20), seed=0)
    splits = {k: C.tokenize(v, encode, 24) for k, v in data.items()}
    model, frozen = tiny_classifier(), {}
    derived, _ = C._frozen_pass(model, splits, 0, 24, start=2, frozen=frozen, lowest=1)
    assert list(frozen) == [1]  # the pass went to the lowest cut once
    for name, (hidden, mask, labels) in derived.items():
        ids, _, _ = C.as_tensors(splits[name], 0, 24)
        direct = C.cached_hidden(model, ids, 2, attention_mask=mask)
        torch.testing.assert_close(C.last_real_token(hidden, mask), C.last_real_token(direct, mask),
                                   rtol=1e-5, atol=1e-5)
    again, _ = C._frozen_pass(model, splits, 0, 24, start=1, frozen=frozen, lowest=1)
    assert again is frozen[1][0]


@pytest.mark.asset
def test_ablation_rows_on_a_tiny_model(monkeypatch):
    class CharTokenizer:
        eos_id = 0
        encode = staticmethod(encode)

    passes, shown, real_cached_hidden = [], [], C.cached_hidden
    monkeypatch.setattr(C, "cached_hidden", lambda *a, **k: passes.append(a[2]) or real_cached_hidden(*a, **k))
    rows = C.ablation(lambda: (tiny_classifier(n_layers=5), CharTokenizer()), max_length=16, max_steps=3, max_steps_all=2,
                      batch_size=8, progress=False, on_row=shown.append)
    assert [r["setting"] for r in rows] == [name for name, _ in C.ABLATION] and shown == rows
    assert [r["steps"] for r in rows] == [3, 3, 3, 2, 3, 2]
    assert all(0.0 <= r["test_accuracy"] <= 1.0 and r["seconds"] > 0 for r in rows)
    assert passes == [1, 1, 1]  # one frozen pass per split, to the lowest cut (5 - 4 blocks), reused by every row
    assert all(r["frozen_seconds"] > 0 for r in rows if r["setting"] not in ("all layers", "random init, all layers"))
    assert rows[3]["frozen_seconds"] == rows[5]["frozen_seconds"] == 0.0
    assert rows[0]["trainable"] < rows[1]["trainable"] < rows[3]["trainable"] == rows[5]["trainable"]


class _Untouchable:
    """A stand-in for the test split: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"cross-validation read the test split ({name})")

    def __getitem__(self, key):
        raise AssertionError(f"cross-validation read the test split ([{key!r}])")

    def __len__(self):
        raise AssertionError("cross-validation read the test split (len)")


def test_stratified_folds_are_disjoint_balanced_and_seeded():
    labels = [0] * 13 + [1] * 7
    folds = C.stratified_folds(labels, k=4, seed=0)
    assert sorted(i for fold in folds for i in fold) == list(range(20))
    assert all(abs(sum(labels[i] for i in fold) - 7 / 4) <= 1 for fold in folds)
    assert folds == C.stratified_folds(labels, k=4, seed=0) != C.stratified_folds(labels, k=4, seed=1)
    with pytest.raises(ValueError, match="k must be"):
        C.stratified_folds(labels, k=1)


def test_cross_validate_uses_train_and_validation_only_and_picks_the_best(monkeypatch):
    import datasets
    data = C.split(toy_dataset(24, 24), seed=0)
    splits = {"train": C.tokenize(data["train"], encode, 24), "validation": C.tokenize(data["validation"], encode, 24),
              "test": _Untouchable()}
    model = tiny_classifier()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    seen = []  # (blocks, max_length, training rows, held-out rows) of every run
    real_train = C.train_classifier

    def spy(model, splits, **kwargs):
        cache = kwargs["cache"]
        seen.append((kwargs["blocks"], kwargs["max_length"], cache["train"], cache["validation"]))
        assert "test" not in cache
        return real_train(model, splits, **kwargs)

    monkeypatch.setattr(C, "train_classifier", spy)
    grid = [(24, 1), (12, 1), (12, 2)]
    result = C.cross_validate(model, splits, pad_id=0, grid=grid, k=3, max_steps=4, batch_size=8, lr=3e-3)
    n = len(splits["train"]) + len(splits["validation"])
    folds = result["folds"]
    assert result["n"] == n and len(folds) == 3 and len(seen) == 3 * len(grid)
    assert sorted(i for fold in folds for i in fold) == list(range(n))  # disjoint, and they cover train + val
    for blocks, length, (x_train, m_train, _), (x_held, m_held, y_held) in seen:
        assert len(x_train) + len(x_held) == n and x_held.shape[1] == m_held.shape[1] == length
        assert int(m_train.sum(1).max()) <= length  # the head's last real token lies within the cut
    assert [(r["max_length"], r["blocks"]) for r in result["rows"]] == grid
    best = max(result["rows"], key=lambda r: (r["accuracy"], -r["loss"]))
    assert result["chosen"] is best
    assert all(r["accuracy"] == sum(r["fold_accuracy"]) / 3 and len(r["fold_loss"]) == 3 for r in result["rows"])
    state = model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in before.items())  # the weights given come back restored

    # a shorter length cut from the 24-token activations = a run tokenized at 12 tokens from the start
    pool = datasets.concatenate_datasets([data["train"], data["validation"]])
    held = folds[0]
    fold = {"train": C.tokenize(pool.select([i for i in range(n) if i not in held]), encode, 12),
            "validation": C.tokenize(pool.select(held), encode, 12)}
    direct = real_train(tiny_classifier(), fold, pad_id=0, max_length=12, blocks=1, max_steps=4, batch_size=8,
                        lr=3e-3, eval_every=0)
    row = result["rows"][1]
    assert direct["test"] is None
    assert abs(direct["validation"]["loss"] - row["fold_loss"][0]) < 1e-4
    assert direct["validation"]["accuracy"] == row["fold_accuracy"][0]


def test_cv_benchmark_reads_its_grid_and_refuses_a_bad_one():
    from benchmark_support import load_benchmark

    cv = load_benchmark("classify_cv")
    assert cv.parse_grid("32x1,64x2") == [(32, 1), (64, 2)]
    assert cv.parse_grid(",".join(f"{t}x{b}" for t, b in C.CV_GRID)) == list(C.CV_GRID)
    for bad in ("32-1", "32x", "x2,64x1"):
        with pytest.raises(SystemExit, match="max_length x blocks pairs"):
            cv.parse_grid(bad)
