"""Chapter 5's diagrams: the decode loop, and what the KV cache saves (prefill, then one position per step).

The cache's shapes and size come from a real ``slm_course.generate.KVCache``, so the picture states
what the course's cache stores.
"""
from __future__ import annotations

from slm_course.diagrams.drawing import INK, MUTED, PAPER, arrow, box, canvas, colour, finish


def decode_loop(*, show: bool = True):
    """Draw the loop ``generate`` runs: the ids so far → the model → the last position's logits →
    temperature, top-k, top-p → sample (or argmax) → append the token → again. Boxes carry the gids
    ``"ids"``, ``"model"``, ``"logits"``, ``"filters"``, ``"choose"``. Returns the ``Figure`` when ``show``
    is False, else displays it.
    """
    figure, ax = canvas(11.4, 2.9, title="The decode loop: one new token per turn")
    y, h = 1.05, 0.9
    parts = [("ids", 0.1, 1.7, "ids so far\n(1, T)", colour(0)),
             ("model", 2.3, 1.5, "model", colour(4)),
             ("logits", 4.3, 1.7, "logits[:, -1]\n(1, V)", colour(2)),
             ("filters", 6.5, 2.2, "÷ temperature\ntop-k · top-p", colour(1)),
             ("choose", 9.2, 2.1, "sample\n(argmax if greedy)", colour(3))]
    for name, x, w, text, shade in parts:
        box(ax, x, y, w, h, text, fill=shade, text_colour="white", gid=name, fontsize=10)
    for (_, x, w, _, _), (_, nx, _, _, _) in zip(parts, parts[1:]):
        arrow(ax, (x + w, y + h / 2), (nx, y + h / 2))
    arrow(ax, (10.25, y), (0.95, y), curve=-0.18, text="", colour=INK)
    ax.text(5.6, 0.12, "append the token: (1, T) → (1, T + 1), stop at max_new_tokens or a stop string",
            ha="center", va="center", fontsize=9.5, color=INK, style="italic")
    return finish(figure, show)


def kv_cache(cache=None, *, prompt_length: int = 5, new_tokens: int = 4, show: bool = True):
    """Draw the work of generating ``new_tokens`` after a ``prompt_length``-token prompt, one row per
    forward pass and one column per position: without a cache every pass recomputes every position;
    with one, the *prefill* computes the prompt once and each *decode* pass computes one position and
    reads the stored keys and values of the others. ``cache`` (a ``KVCache``) supplies the stored
    shapes and size written underneath. Computed cells carry the gids ``"without-computed"`` and
    ``"with-computed"``, cells read from the cache ``"with-read"``. Returns the ``Figure`` when ``show``
    is False, else displays it.
    """
    if prompt_length < 1 or new_tokens < 1:
        raise ValueError(f"prompt_length and new_tokens must be ≥ 1, got {prompt_length} and {new_tokens}.")
    passes, positions = new_tokens, prompt_length + new_tokens - 1  # the last token is produced, never fed
    cell = 0.42
    panel = positions * cell + 1.2
    width, height = 2 * panel + 0.6, passes * cell + 2.6
    figure, ax = canvas(width, height, title="Generating without and with a KV cache: positions computed per pass")
    top = height - 0.95
    counts = {}
    for p, (label, cached) in enumerate((("without a cache", False), ("with a KV cache", True))):
        x0 = 1.0 + p * (panel + 0.4)
        ax.text(x0 + positions * cell / 2, top + 0.12, label, ha="center", va="bottom", fontsize=11, weight="bold")
        computed = 0
        for row in range(passes):
            y = top - (row + 1) * cell
            name = "prefill" if (cached and row == 0) else ("decode" if cached else f"pass {row + 1}")
            ax.text(x0 - 0.08, y + cell / 2, name, ha="right", va="center", fontsize=8)
            for col in range(prompt_length + row):
                fresh = not cached or row == 0 or col == prompt_length + row - 1
                prompt = col < prompt_length
                fill = (colour(0) if prompt else colour(1)) if fresh else "#E4E4E4"
                kind = "computed" if fresh else "read"
                box(ax, x0 + col * cell, y, cell, cell, "", fill=fill, edge="white", rounded=False,
                    gid=f"{'with' if cached else 'without'}-{kind}")
                computed += fresh
        counts[cached] = computed
        ax.text(x0 + positions * cell / 2, top - passes * cell - 0.25, f"{computed} positions computed",
                ha="center", va="top", fontsize=10, color=INK)
    if cache is not None:
        shape = (cache.batch_size, cache.n_kv_heads, cache.max_length, cache.keys[0].shape[-1])
        stored = (f"stored per layer: K and V, each {shape} (batch, kv heads, max length, head dim); "
                  f"{cache.n_layers} layers, {cache.num_bytes() / 2**20:.1f} MiB")
    else:
        stored = "stored per layer: K and V, each (batch, kv heads, max length, head dim)"
    ax.text(0.2, 0.55, stored, ha="left", va="center", fontsize=9.5, color=INK)
    ax.text(0.2, 0.2, "blue: prompt positions · orange: generated · grey: keys and values read back from the cache",
            ha="left", va="center", fontsize=9, color=MUTED, style="italic")
    return finish(figure, show)
