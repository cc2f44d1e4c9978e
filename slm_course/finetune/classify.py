"""Finetuning a language model into a spam classifier (chapter 7).

The pieces, in the order the chapter uses them: the SMS spam collection as a Hugging Face
``Dataset`` (balanced by undersampling, split deterministically), padding and truncation with an
attention mask, a two-class head read at the **last real token** of each message (with causal
attention only that position has seen the whole message; a padding position after it adds nothing
and, without a mask, one before it would be attended to), choosing which layers to unfreeze, the
loss for :func:`slm_course.train.train`, and accuracy, a confusion matrix, precision and recall.

For speed on a CPU the chapter runs the frozen lower blocks once (:func:`cached_hidden`) and trains
only the top blocks on those stored activations (:class:`TopBlocks`): the same numbers as running
the whole model each step, since frozen layers compute the same thing every time. The fast profile's
setting (how many tokens, how many top blocks) is chosen by :func:`cross_validate` over the train and
validation messages, never the test split.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from slm_course.device import model_device

LABELS = ("ham", "spam")  # class 0 and class 1: spam is the "positive" class for precision and recall
# The most-used from-scratch course's published result: GPT-2 small (124M), last block + final norm
# + a new head trained, UCI SMS spam balanced by undersampling, 70/10/20 split.
REFERENCE_TEST_ACCURACY = 0.9567


# ------------------------------------------------------------------------------------------ data

def _datasets():
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    return datasets


def _features(datasets):
    return datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(LABELS))})


def read_sms_spam(path: str | Path | None = None) -> list[tuple[str, int]]:
    """``(message, label)`` pairs (label 0 = ham, 1 = spam) from the ``sms-spam`` asset's tab-separated file."""
    if path is None:
        from slm_course.assets import asset_path

        path = asset_path("sms-spam") / "spam_collection.csv"
    rows = []
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        label, sep, text = line.partition("\t")
        if not sep or label not in LABELS:
            raise ValueError(f"{path}, line {number}: expected 'ham' or 'spam', a tab, then the message.")
        rows.append((text.strip(), LABELS.index(label)))
    return rows


def load_sms_spam(path: str | Path | None = None):
    """The SMS spam collection (4,862 messages offline) as a ``datasets.Dataset`` with ``text`` and ``label``."""
    datasets = _datasets()
    rows = read_sms_spam(path)
    return datasets.Dataset.from_dict({"text": [t for t, _ in rows], "label": [y for _, y in rows]},
                                      features=_features(datasets))


def load_uci_sms_spam():
    """The full UCI SMS Spam Collection (5,574 messages) from the Hugging Face hub (needs the network)."""
    datasets = _datasets()
    raw = datasets.load_dataset("ucirvine/sms_spam", split="train")
    return datasets.Dataset.from_dict({"text": [t.strip() for t in raw["sms"]], "label": list(raw["label"])},
                                      features=_features(datasets))


def balanced_indices(labels: Sequence[int], seed: int | None = None) -> list[int]:
    """Row indices that undersample ``labels`` to the rarer class's count, in increasing order.

    With ``seed=None`` each class keeps its first rows; with a seed, rows drawn at random (seeded).
    """
    labels = list(labels)
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ValueError(f"balancing needs at least two classes, the labels are all {labels[:1]}.")
    by_class = {y: [i for i, label in enumerate(labels) if label == y] for y in classes}
    keep_n = min(len(rows) for rows in by_class.values())
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    keep = []
    for rows in by_class.values():
        chosen = torch.randperm(len(rows), generator=generator)[:keep_n].tolist() if generator else range(keep_n)
        keep += [rows[j] for j in chosen]
    return sorted(keep)


def balance(dataset, seed: int = 0):
    """Undersample: keep every message of the rarer class and as many of each other class, drawn with
    ``seed``; rows come back shuffled (seeded). Needs a ``label`` column."""
    keep = balanced_indices(dataset["label"], seed=seed)
    order = torch.randperm(len(keep), generator=torch.Generator().manual_seed(seed)).tolist()
    return dataset.select([keep[j] for j in order])


def split(dataset, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0):
    """A ``DatasetDict`` with ``train``, ``validation`` and ``test`` (``train_test_split`` twice, seeded,
    stratified by label so each split keeps the class balance)."""
    datasets = _datasets()
    if not (0 < val_fraction < 1 and 0 < test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"val_fraction and test_fraction must be in (0, 1) and sum below 1, got "
                         f"{val_fraction} and {test_fraction}.")
    first = dataset.train_test_split(test_size=test_fraction, seed=seed, stratify_by_column="label")
    rest = first["train"].train_test_split(test_size=val_fraction / (1 - test_fraction), seed=seed,
                                           stratify_by_column="label")
    return datasets.DatasetDict(train=rest["train"], validation=rest["test"], test=first["test"])


def tokenize(dataset, encode: Callable[[str], list[int]], max_length: int):
    """Add ``input_ids`` (truncated to ``max_length`` tokens, keeping the start) and ``n_tokens`` columns."""
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}.")

    def encode_batch(batch: dict) -> dict:
        ids = [encode(text)[:max_length] or [0] for text in batch["text"]]
        return {"input_ids": ids, "n_tokens": [len(i) for i in ids]}

    return dataset.map(encode_batch, batched=True)


def spam_splits(encode: Callable[[str], list[int]] | None = None, *, max_length: int = 64, seed: int = 0,
                dataset=None):
    """The chapter's data in one call: load (or take ``dataset``), balance, split 70/10/20, tokenize."""
    splits = split(balance(dataset if dataset is not None else load_sms_spam(), seed=seed), seed=seed)
    return splits if encode is None else _datasets().DatasetDict(
        {name: tokenize(part, encode, max_length) for name, part in splits.items()})


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int, *, max_length: int | None = None,
              side: str = "right") -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists → ``(ids, attention_mask)``, both ``(B, T)`` long, ``T`` the longest row (≤ ``max_length``).

    Rows longer than ``max_length`` are truncated (their start kept); the mask is 1 on real tokens
    and 0 on padding; ``side="right"`` pads after the message (what the course's model needs, since it
    has no padding mask), ``"left"`` before it.
    """
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}.")
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("pad_batch needs at least one row and no empty rows.")
    rows = [list(s)[:max_length] if max_length else list(s) for s in sequences]
    T = max(len(r) for r in rows)
    ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(rows), T, dtype=torch.long)
    for i, r in enumerate(rows):
        where = slice(0, len(r)) if side == "right" else slice(T - len(r), T)
        ids[i, where] = torch.tensor(r, dtype=torch.long)
        mask[i, where] = 1
    return ids, mask


def last_token_index(attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B,)`` position of each row's last real token (last 1 in the mask), for right or left padding."""
    if attention_mask.dim() != 2 or (attention_mask.sum(1) == 0).any():
        raise ValueError("attention_mask must be (B, T) with at least one real token in each row.")
    T = attention_mask.shape[1]
    positions = torch.arange(T, device=attention_mask.device).expand_as(attention_mask)
    return torch.where(attention_mask.bool(), positions, -1).max(dim=1).values


def last_real_token(values: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``values`` ``(B, T, ...)`` at each row's last real token → ``(B, ...)``."""
    index = last_token_index(attention_mask)
    return values[torch.arange(values.shape[0], device=values.device), index]


# ------------------------------------------------------------------------------------------ model

def add_classification_head(model: nn.Module, num_classes: int = 2, *, seed: int = 0) -> nn.Module:
    """Replace the model's output layer by a new ``nn.Linear(d_model, num_classes)`` (in place).

    ``model(ids)`` then gives ``(B, T, num_classes)``. A tied output layer is untied: the token
    embeddings keep their pretrained matrix. The head's init is seeded.
    """
    d_model = model.config.d_model
    generator = torch.Generator().manual_seed(seed)
    head = nn.Linear(d_model, num_classes, bias=True)
    with torch.no_grad():
        head.weight.copy_(torch.randn(num_classes, d_model, generator=generator) * 0.02)
        head.bias.zero_()
    model.lm_head = head.to(model.tok_emb.weight.device)
    return model


def unfreeze(model: nn.Module, blocks: int | str = 1, *, final_norm: bool = True, head: bool = True) -> int:
    """Freeze everything, then unfreeze the top ``blocks`` transformer blocks (``"all"`` = every
    parameter), the final norm and the head. Returns the number of trainable parameters."""
    n_layers = len(model.blocks)
    if blocks == "all":
        model.requires_grad_(True)
    else:
        if isinstance(blocks, bool) or not isinstance(blocks, int) or not 0 <= blocks <= n_layers:
            raise ValueError(f"blocks must be an int from 0 to {n_layers} or 'all', got {blocks!r}.")
        model.requires_grad_(False)
        for block in list(model.blocks)[n_layers - blocks:]:
            block.requires_grad_(True)
        model.final_norm.requires_grad_(final_norm)
        model.lm_head.requires_grad_(head)
    return sum(p.numel() for p in {id(p): p for p in model.parameters()}.values() if p.requires_grad)


def classification_logits(model: nn.Module, ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """``(B, num_classes)``: the head's output at each row's last real token (right padding).

    ``model`` is a whole model (``ids`` token ids) or a :class:`TopBlocks` (``ids`` its cached activations),
    which computes its top block at the last real token only. Both move to the model's device."""
    device = model_device(model)
    ids, attention_mask = ids.to(device), attention_mask.to(device)
    if isinstance(model, TopBlocks):
        return model(ids, attention_mask)
    return last_real_token(model(ids), attention_mask)


def classification_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of ``(ids, attention_mask, labels)``: a ``loss_fn`` for ``slm_course.train.train``."""
    ids, mask, labels = batch
    return F.cross_entropy(classification_logits(model, ids, mask), labels)


@torch.no_grad()
def cached_hidden(model: nn.Module, ids: torch.Tensor, n_frozen: int, *, batch_size: int = 32,
                  attention_mask: torch.Tensor | None = None, progress: bool = False,
                  desc: str = "frozen blocks") -> torch.Tensor:
    """Activations ``(N, T, d_model)`` after the first ``n_frozen`` blocks, computed once (no grad).

    With ``attention_mask`` the rows run in order of length, each batch only up to its longest row
    (right padding), and the rest stays zero: the same values at every real position, far fewer
    tokens computed than padding every batch to the longest message. ``progress`` shows a
    ``tqdm.auto`` bar over the messages (labelled ``desc``).
    """
    from slm_course.train.progress import progress_bar

    was_training = model.training
    model.eval()
    out = torch.zeros(ids.shape[0], ids.shape[1], model.config.d_model, device=ids.device)  # where ids are
    device = model_device(model)
    lengths = (attention_mask.sum(1) if attention_mask is not None
               else torch.full((ids.shape[0],), ids.shape[1], device=ids.device))
    order = torch.argsort(lengths, stable=True)  # similar lengths share a batch: little padding computed
    with progress_bar(ids.shape[0], desc=desc, unit="message", enabled=progress) as bar:
        for start in range(0, ids.shape[0], batch_size):
            rows = order[start:start + batch_size]
            T = int(lengths[rows].max())
            out[rows, :T] = _embed_and_run(model, ids[rows, :T].to(device), 0, n_frozen).to(out.device)
            bar.update(len(rows))
    model.train(was_training)
    return out


def _embed_and_run(model: nn.Module, ids: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    model.check_input(ids)
    T = ids.shape[1]
    x = model.tok_emb(ids)  # (B, T, d_model)
    if model.pos_emb is not None:
        x = x + model.pos_emb(torch.arange(T, device=ids.device))
    return _run_blocks(model, x, start, stop)


def _run_blocks(model: nn.Module, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    rope = model.rope_angles(x.shape[1], x.device) if model.config.positions == "rope" else None
    for block in list(model.blocks)[start:stop]:
        x = block(x, rope)
    return x


class TopBlocks(nn.Module):
    """The top of ``model`` from block ``start`` on (shares its modules): activations ``(B, T, d_model)``
    from :func:`cached_hidden` → head outputs ``(B, T, num_classes)``. Train it with the same loss.

    Given the ``attention_mask`` it returns ``(B, num_classes)`` at each row's last real token, and the
    top block computes only that position (``Block``'s ``query_index``): its keys and values still come
    from every position, but one query per row, and the feed-forward, final norm and head run on one row.
    The same numbers up to float rounding, for about half the work when two blocks train.
    """

    def __init__(self, model: nn.Module, start: int) -> None:
        super().__init__()
        self.model, self.start = model, start

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        if attention_mask is None:
            x = _run_blocks(self.model, hidden, self.start, len(self.model.blocks))
            return self.model.lm_head(self.model.final_norm(x))
        index = last_token_index(attention_mask)  # (B,)
        n_layers = len(self.model.blocks)
        if self.start == n_layers:  # no block on top: the head reads the stored activations
            x = hidden[torch.arange(hidden.shape[0], device=hidden.device), index]
        else:
            x = _run_blocks(self.model, hidden, self.start, n_layers - 1)
            rope = self.model.rope_angles(x.shape[1], x.device) if self.model.config.positions == "rope" else None
            x = self.model.blocks[n_layers - 1](x, rope, query_index=index)[:, 0]  # (B, d_model)
        return self.model.lm_head(self.model.final_norm(x))


# ------------------------------------------------------------------------------------------ metrics

def confusion_matrix(predictions: torch.Tensor, labels: torch.Tensor, num_classes: int = 2) -> torch.Tensor:
    """``(num_classes, num_classes)`` counts, row = true class, column = predicted class."""
    counts = torch.zeros(num_classes, num_classes, dtype=torch.long, device=predictions.device)
    counts.index_put_((labels.long(), predictions.long()), torch.ones_like(labels, dtype=torch.long), accumulate=True)
    return counts


def precision_recall(confusion: torch.Tensor, positive: int = 1) -> tuple[float, float]:
    """Precision (of the messages called ``positive``, the share that are) and recall (of the ``positive``
    messages, the share found); 0.0 where nothing was predicted or present."""
    tp = int(confusion[positive, positive])
    predicted, actual = int(confusion[:, positive].sum()), int(confusion[positive].sum())
    return (tp / predicted if predicted else 0.0), (tp / actual if actual else 0.0)


@torch.no_grad()
def evaluate(model: nn.Module, inputs: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor,
             *, batch_size: int = 64) -> dict[str, Any]:
    """Accuracy, mean loss, confusion matrix, spam precision and recall of ``model`` on the rows given.

    ``inputs`` are token ids ``(N, T)`` for a whole model or cached activations ``(N, T, d)`` for
    :class:`TopBlocks`.
    """
    was_training = model.training
    model.eval()
    logits = torch.cat([classification_logits(model, inputs[i:i + batch_size], attention_mask[i:i + batch_size])
                        for i in range(0, len(labels), batch_size)]).cpu()  # the metrics are counted on the CPU
    labels = labels.cpu()
    model.train(was_training)
    predictions = logits.argmax(-1)
    confusion = confusion_matrix(predictions, labels, logits.shape[-1])
    precision, recall = precision_recall(confusion)
    return {"accuracy": float((predictions == labels).float().mean()),
            "loss": float(F.cross_entropy(logits, labels)), "confusion": confusion,
            "precision": precision, "recall": recall}


@torch.no_grad()
def classify(model: nn.Module, encode: Callable[[str], list[int]], texts: Sequence[str] | str, *,
             max_length: int = 64, pad_id: int = 0) -> list[tuple[str, float]]:
    """``(label, spam probability)`` for each message of ``texts`` with a whole finetuned model."""
    if isinstance(texts, str):
        texts = [texts]
    if not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError("classify expects one or more non-empty messages (strings).")
    ids, mask = pad_batch([encode(t) for t in texts], pad_id, max_length=max_length)
    model.eval()
    probs = torch.softmax(classification_logits(model, ids, mask), dim=-1)[:, 1]
    return [(LABELS[int(p > 0.5)], round(float(p), 4)) for p in probs]


# ------------------------------------------------------------------------------------------ the run

def as_tensors(part, pad_id: int, max_length: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A tokenized split → ``(ids (N, T), attention_mask (N, T), labels (N,))``, right-padded to ``max_length``."""
    ids, mask = pad_batch(part["input_ids"], pad_id, max_length=max_length)
    if ids.shape[1] < max_length:
        grow = max_length - ids.shape[1]
        ids, mask = F.pad(ids, (0, grow), value=pad_id), F.pad(mask, (0, grow))
    return ids, mask, torch.tensor(part["label"], dtype=torch.long)


def train_classifier(model: nn.Module, splits, *, pad_id: int, max_length: int, blocks: int | str = 2,
                     lora_rank: int | None = None, max_steps: int = 100, batch_size: int = 16, lr: float = 1e-4,
                     eval_every: int = 25, seed: int = 0, progress: bool = False,
                     cache: dict | None = None) -> dict[str, Any]:
    """Finetune ``model`` (with a head already added) on tokenized ``splits`` with ``slm_course.train.train``.

    ``blocks``: how many top blocks train (plus final norm and head), or ``"all"``. With an int, the
    frozen lower blocks run once (:func:`cached_hidden`) and steps go through the top only. With
    ``lora_rank`` the top blocks' attention gets LoRA adapters (α = 2·r) instead of full updates.
    ``progress`` shows ``tqdm.auto`` bars: one over the messages while the frozen blocks run, one over
    the training steps (with the loss); a stored notebook keeps them finished, never at 0 %.
    Returns ``{"history", "validation", "test", "trainable", "seconds", "adapted", "cache"}`` (``adapted``
    the module trained: the model or its :class:`TopBlocks`; ``cache`` the frozen blocks' activations,
    which a second run with the same ``blocks`` on a fresh copy of the same model may reuse; with a
    ``cache`` and an int ``blocks``, ``splits`` is not read and may be ``None``). ``test`` is ``None``
    when the data has no ``test`` split (cross-validation trains and scores without one).
    """
    from slm_course.finetune.lora import apply_lora
    from slm_course.train import TrainConfig, train
    from slm_course.train.progress import progress_bar

    started = time.perf_counter()
    reuse = cache is not None and blocks != "all"  # the top blocks train on activations already computed
    if not reuse:
        if splits is None:
            raise ValueError("train_classifier needs tokenized splits, or a cache of activations with an int blocks.")
        data = {name: as_tensors(part, pad_id, max_length) for name, part in splits.items()}
    n_layers = len(model.blocks)
    trainable = unfreeze(model, blocks)
    if lora_rank is not None:
        if blocks == "all":
            raise ValueError("LoRA here adapts the top blocks: give blocks as an int.")
        model.requires_grad_(False)
        top = [f"blocks.{i}.attn.{p}" for i in range(n_layers - blocks, n_layers)
               for p in ("q_proj", "k_proj", "v_proj", "out_proj")]
        apply_lora(model, top, r=lora_rank, alpha=2 * lora_rank, seed=seed)
        model.lm_head.requires_grad_(True)
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if blocks == "all":
        adapted = model
    else:
        adapted = TopBlocks(model, n_layers - blocks)
        if not reuse:  # every split through the frozen blocks once, one bar over all their messages
            frozen = {}
            with progress_bar(sum(len(labels) for _, _, labels in data.values()), desc="frozen blocks, once",
                              unit="message", enabled=progress) as bar:
                for name, (ids, mask, labels) in data.items():
                    frozen[name] = (cached_hidden(model, ids, n_layers - blocks, attention_mask=mask), mask, labels)
                    bar.update(len(labels))
        data = cache if reuse else frozen
    inputs, mask, labels = data["train"]
    n, per_epoch = len(labels), max(1, len(labels) // batch_size)

    def batches(i: int):
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed + i // per_epoch))
        rows = order[(i % per_epoch) * batch_size:(i % per_epoch + 1) * batch_size]
        return inputs[rows], mask[rows], labels[rows]

    def eval_fn(module: nn.Module) -> dict[str, float]:
        result = evaluate(module, *data["validation"])
        return {"val_accuracy": result["accuracy"], "val_loss": result["loss"]}

    config = TrainConfig(max_steps=max_steps, lr=lr, warmup_steps=max(1, max_steps // 10), weight_decay=0.0,
                         eval_every=eval_every, seed=seed, progress=False)
    with progress_bar(max_steps, desc="training", unit="step", enabled=progress) as bar:
        def step_loss(module: nn.Module, batch) -> torch.Tensor:  # one call per step (no accumulation)
            loss = classification_loss(module, batch)
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
            bar.update(1)
            return loss

        history = train(adapted, batches, config, loss_fn=step_loss, eval_fn=eval_fn)
    return {"history": history, "validation": evaluate(adapted, *data["validation"]),
            "test": evaluate(adapted, *data["test"]) if "test" in data else None, "trainable": trainable,
            "seconds": time.perf_counter() - started, "adapted": adapted, "cache": data}


ABLATION = (("last block", dict(blocks=1)), ("last two blocks", dict(blocks=2)), ("last four blocks", dict(blocks=4)),
            ("all layers", dict(blocks="all")), ("LoRA r=8, top 2 blocks", dict(blocks=2, lora_rank=8)),
            ("random init, all layers", dict(blocks="all")))
# Peak learning rates: the chapter's for the top blocks (5e-4) and LoRA (1e-3); smaller for every pretrained layer.
ABLATION_LR = {"last block": 5e-4, "last two blocks": 5e-4, "last four blocks": 5e-4, "all layers": 3e-5,
               "LoRA r=8, top 2 blocks": 1e-3, "random init, all layers": 1e-4}


def ablation(load_model: Callable[[], tuple[nn.Module, Any]], *, max_length: int = 64, max_steps: int = 300,
             max_steps_all: int | None = None, batch_size: int = 16, seed: int = 0, progress: bool = True,
             on_row: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
    """The chapter's ablation table: one row per setting of :data:`ABLATION`, each from a freshly loaded
    model (``load_model() -> (model, tokenizer)``), on the balanced splits at up to ``max_length`` tokens.

    Rows that train top blocks share one pass of the frozen blocks (its seconds are the row's
    ``frozen_seconds``, the same for each); ``seconds`` is the row's own training and evaluation.
    ``max_steps_all`` caps the steps of the all-layer rows (slow on a CPU; ``None`` = ``max_steps``).
    Each row: ``setting, test_accuracy, validation_accuracy, trainable, steps, seconds, frozen_seconds``;
    ``on_row(row)``, if given, is called as each row is done (a long run shows its rows as they come).
    """
    rows, frozen = [], {}  # frozen: start block -> (activations per split, seconds)
    most_blocks = max(s["blocks"] for _, s in ABLATION if s["blocks"] != "all")
    for name, settings in ABLATION:
        model, tokenizer = load_model()
        if name.startswith("random"):
            torch.manual_seed(seed)
            model = type(model)(model.config)
        add_classification_head(model, seed=seed)
        pad_id = tokenizer.eos_id if getattr(tokenizer, "eos_id", None) is not None else 0
        splits = spam_splits(tokenizer.encode, max_length=max_length, seed=seed)
        steps = max_steps if settings["blocks"] != "all" or max_steps_all is None else max_steps_all
        cache, frozen_seconds = None, 0.0
        if settings["blocks"] != "all":
            start = len(model.blocks) - settings["blocks"]
            lowest = len(model.blocks) - most_blocks  # one pass to the lowest cut serves every such row
            cache, frozen_seconds = _frozen_pass(model, splits, pad_id, max_length, start, frozen, lowest)
        run = train_classifier(model, splits, pad_id=pad_id, max_length=max_length, max_steps=steps,
                               batch_size=batch_size, lr=ABLATION_LR[name], eval_every=max(1, steps // 4),
                               seed=seed, progress=progress, cache=cache, **settings)
        rows.append({"setting": name, "test_accuracy": run["test"]["accuracy"],
                     "validation_accuracy": run["validation"]["accuracy"], "trainable": run["trainable"],
                     "steps": steps, "seconds": run["seconds"], "frozen_seconds": frozen_seconds})
        if on_row is not None:
            on_row(rows[-1])
    return rows


def _frozen_pass(model: nn.Module, splits, pad_id: int, max_length: int, start: int, frozen: dict, lowest: int):
    """Activations after block ``start`` for every split: one pass of the frozen blocks up to ``lowest``
    (kept in ``frozen``), then the blocks from there to ``start`` without gradients; the seconds in all."""
    lower = [s for s in frozen if s <= start]
    if not lower:
        began = time.perf_counter()
        data = {name: as_tensors(part, pad_id, max_length) for name, part in splits.items()}
        frozen[lowest] = ({name: (cached_hidden(model, ids, lowest, attention_mask=mask), mask, labels)
                           for name, (ids, mask, labels) in data.items()}, time.perf_counter() - began)
        lower = [lowest]
    below = max(lower)
    cache, seconds = frozen[below]
    if below == start:
        return cache, seconds
    began = time.perf_counter()
    with torch.no_grad():
        model.eval()
        moved = {name: (torch.cat([_run_blocks(model, hidden[i:i + 64], below, start)
                                   for i in range(0, len(labels), 64)]), mask, labels)
                 for name, (hidden, mask, labels) in cache.items()}
    return moved, seconds + time.perf_counter() - began


# ------------------------------------------------------------------------------------------ choosing the setting

# (max_length, top blocks trained) pairs the fast profile's cross-validation compares. Left out: 48 and 64 tokens
# with 4 blocks, whose steps take 1.5x and 2x those of 32 tokens with 4 blocks, the setting that used most of the
# chapter's 150 s when the grid was fixed.
CV_GRID = ((32, 1), (32, 2), (32, 4), (48, 1), (48, 2), (64, 1), (64, 2))


def stratified_folds(labels: Sequence[int], k: int = 5, seed: int = 0) -> list[list[int]]:
    """``k`` disjoint lists of row indices covering ``range(len(labels))``, each with about the same share of
    every class (each class's rows shuffled with ``seed``, then dealt out in turn); each list sorted."""
    labels = list(labels)
    if k < 2 or k > len(labels):
        raise ValueError(f"k must be from 2 to the number of rows ({len(labels)}), got {k}.")
    folds: list[list[int]] = [[] for _ in range(k)]
    generator, dealt = torch.Generator().manual_seed(seed), 0
    for y in sorted(set(labels)):
        rows = [i for i, label in enumerate(labels) if label == y]
        for j in torch.randperm(len(rows), generator=generator).tolist():
            folds[dealt % k].append(rows[j])
            dealt += 1
    return [sorted(fold) for fold in folds]


def best_setting(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The row with the highest mean cross-validation accuracy; a tie goes to the lower mean loss."""
    return max(rows, key=lambda row: (row["accuracy"], -row["loss"]))


def cross_validate(model: nn.Module, splits, *, pad_id: int, grid: Sequence[tuple[int, int]] = CV_GRID,
                   k: int = 5, max_steps: int = 112, batch_size: int = 16, lr: float = 5e-4, seed: int = 0,
                   on_row: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Choose ``(max_length, blocks)`` by ``k``-fold cross-validation over ``splits["train"]`` and
    ``splits["validation"]`` pooled; ``splits["test"]`` is never read.

    ``model`` has its head already added; every run starts from its weights as given (the top blocks,
    final norm and head are restored before each). ``splits`` must be tokenized to at least the longest
    ``max_length`` of ``grid``. The frozen blocks run once, at the longest length, to the lowest cut the
    grid needs (:func:`_frozen_pass`); a shorter ``max_length`` takes the first positions of those
    activations, which with causal attention are what a run at that length computes (up to float
    rounding), and its mask cut the same way puts the head on the last real token within the cut. Each
    setting then trains :func:`train_classifier` on ``k - 1`` folds for ``max_steps`` and is scored on the
    fold left out. Returns ``{"rows", "chosen", "folds", "n", "frozen_seconds"}`` (the last: the frozen
    blocks' one pass and the derivations from it): ``rows`` one per setting
    (``max_length, blocks, accuracy, loss`` (means over folds), ``fold_accuracy, fold_loss, seconds`` (mean
    training seconds per fold)), ``chosen`` the :func:`best_setting` row, ``folds`` the held-out row
    indices into the pool (training rows first, then validation rows). ``on_row(row)`` is called as each
    setting is done.
    """
    from datasets import concatenate_datasets

    grid = [(int(length), int(blocks)) for length, blocks in grid]
    n_layers = len(model.blocks)
    if not grid or any(length < 1 or not 1 <= blocks <= n_layers for length, blocks in grid):
        raise ValueError(f"grid must be (max_length >= 1, blocks from 1 to {n_layers}) pairs, got {grid}.")
    pool = concatenate_datasets([splits["train"], splits["validation"]])
    longest, most_blocks = max(length for length, _ in grid), max(blocks for _, blocks in grid)
    folds = stratified_folds(pool["label"], k=k, seed=seed)
    lowest = n_layers - most_blocks
    top = [f"blocks.{i}." for i in range(lowest, n_layers)] + ["final_norm.", "lm_head."]
    initial = {name: value.detach().clone() for name, value in model.state_dict().items()
               if any(name.startswith(prefix) for prefix in top)}
    frozen: dict = {}
    derived: dict = {}  # start block -> the pool's activations there, at the longest length
    rows, frozen_seconds = [], 0.0
    for length, blocks in grid:
        start = n_layers - blocks
        if start not in derived:
            began = time.perf_counter()
            derived[start] = _frozen_pass(model, {"pool": pool}, pad_id, longest, start, frozen, lowest)[0]["pool"]
            frozen_seconds += time.perf_counter() - began
        hidden, mask, labels = derived[start]
        hidden, mask = hidden[:, :length], mask[:, :length]
        accuracy, loss, seconds = [], [], []
        for held_out in folds:
            keep = torch.ones(len(labels), dtype=torch.bool)
            keep[held_out] = False
            fold = {"train": (hidden[keep], mask[keep], labels[keep]),
                    "validation": (hidden[held_out], mask[held_out], labels[held_out])}
            model.load_state_dict(initial, strict=False)
            run = train_classifier(model, None, pad_id=pad_id, max_length=length, blocks=blocks,
                                   max_steps=max_steps, batch_size=batch_size, lr=lr, eval_every=0, seed=seed,
                                   cache=fold)
            accuracy.append(run["validation"]["accuracy"])
            loss.append(run["validation"]["loss"])
            seconds.append(run["seconds"])
        rows.append({"max_length": length, "blocks": blocks, "accuracy": sum(accuracy) / k, "loss": sum(loss) / k,
                     "fold_accuracy": accuracy, "fold_loss": loss, "seconds": sum(seconds) / k})
        if on_row is not None:
            on_row(rows[-1])
    model.load_state_dict(initial, strict=False)
    return {"rows": rows, "chosen": best_setting(rows), "folds": folds, "n": len(pool),
            "frozen_seconds": frozen_seconds}
