"""Chapter 10's diagrams: the float formats' bits, group-wise int4 for one weight row, a weight-only quantized
layer at work, and what a deployed model's memory is made of.

``float_formats()`` draws the bits fp32, bf16 and fp16 store for one value (sign, exponent, mantissa, read
from the tensors themselves) beside each format's range: largest, smallest normal and smallest subnormal
number (``torch.finfo``) — where fp16's small gradients underflow.

``int4_group_packing()`` quantizes one small seeded row with the package's own quantizer
(``slm_course.quantize.minmax_quantize`` with float16 scales, exactly what ``Int4Linear`` stores) and
draws every number it produced: the floats split in groups, each group's minimum and scale, the 4-bit
codes and the bytes ``pack_int4`` packs them into (code ``2j`` in the low nibble, ``2j + 1`` in the high).
``weight_only_linear()`` draws what ``Int8Linear``/``Int4Linear`` do at inference (stored integers and
scales → dequantize or the CPU weight-only kernel → matmul with float activations → float output) beside
the bytes per weight each format stores, measured with ``slm_course.quantize.weight_bytes``.
``memory_breakdown()`` stacks weights, KV cache and activations per precision from
``slm_course.deploy.deployment_memory`` against the memory typical devices leave for a model.
All compute their numbers with ``data`` functions the tests compare against the package.
"""
from __future__ import annotations

import math

from slm_course.diagrams.drawing import INK, MUTED, PAPER, arrow, box, canvas, colour, finish, token_strip

CELL = 0.6  # width of one weight's cell, in inches


def int4_group_data(n_weights: int = 16, group_size: int = 8, seed: int = 0) -> dict:
    """The numbers ``int4_group_packing`` draws: a seeded row of ``n_weights`` floats (two decimals) and
    what ``minmax_quantize(row, 4, "group", group_size, fp16_scales=True)`` and ``pack_int4`` make of it.

    Returns plain lists: ``row``, ``minimum`` and ``scale`` (one per group, the float16 values as floats),
    ``codes`` (0–15), ``packed`` (bytes), ``dequantized``, ``max_error`` and ``nbytes`` (``Quantized.nbytes``)."""
    import torch

    from slm_course.quantize import minmax_quantize, pack_int4

    if n_weights % 2 or n_weights % group_size:
        raise ValueError(f"n_weights={n_weights} must be even and a multiple of group_size={group_size}.")
    generator = torch.Generator().manual_seed(seed)
    row = torch.round(torch.randn(1, n_weights, generator=generator) * 50) / 100   # two decimals, ~N(0, 0.5)
    quantized = minmax_quantize(row, 4, "group", group_size, fp16_scales=True)
    return {
        "row": row[0].tolist(),
        "group_size": group_size,
        "minimum": quantized.minimum.flatten().tolist(),
        "scale": quantized.scale.flatten().tolist(),
        "codes": quantized.q[0].tolist(),
        "packed": pack_int4(quantized.q)[0].tolist(),
        "dequantized": quantized.dequantize()[0].tolist(),
        "max_error": quantized.error,
        "nbytes": quantized.nbytes(),
    }


def int4_group_packing(n_weights: int = 16, group_size: int = 8, seed: int = 0, *, show: bool = True):
    """One row quantized group-wise to int4 on a min/max grid: floats (gid ``weight-g``), each group's
    maximum, minimum and scale (gid ``group-g``), the codes (gid ``code-g``), the packed bytes (gid ``byte``)
    and the dequantized row (gid ``dequantized``). Every number comes from :func:`int4_group_data`."""
    data = int4_group_data(n_weights, group_size, seed)
    groups = n_weights // group_size
    left = 2.2
    width = left + n_weights * CELL + 0.3
    figure, ax = canvas(width, 6.4, title=f"Int4, group-wise: each group of {group_size} gets its own minimum and "
                                          "scale; two codes share a byte")
    labels = [(5.35, "float32 row"), (4.15, "per group\n(float16)"), (3.05, "4-bit codes\nq = round((w − min)/scale)"),
              (1.75, "packed bytes\n(high | low nibble)"), (0.55, "dequantized\nq · scale + min")]
    for y, text in labels:
        ax.text(left - 0.15, y, text, ha="right", va="center", fontsize=9, color=INK)
    for g in range(groups):
        part = slice(g * group_size, (g + 1) * group_size)
        x = left + g * group_size * CELL
        tint = colour(g)
        token_strip(ax, [f"{v:.2f}" for v in data["row"][part]], x, 5.05, cell=CELL, fills="white", gid=f"weight-{g}",
                    fontsize=8)
        low, step = data["minimum"][g], data["scale"][g]
        top = max(data["row"][part])
        box(ax, x + 0.05, 3.7, group_size * CELL - 0.1, 0.9,
            f"group {g}: max {top:.2f}, min {low:.4f}\nscale = (max − min) / 15 = {step:.5f}", fill=PAPER, edge=tint,
            fontsize=8.5, gid=f"group-{g}")
        ax.plot([x + 0.03, x + group_size * CELL - 0.03], [5.0, 5.0], color=tint, lw=3)
        token_strip(ax, [str(c) for c in data["codes"][part]], x, 2.75, cell=CELL, fills=tint, gid=f"code-{g}",
                    text_colour="white", fontsize=9)
        token_strip(ax, [f"{v:.2f}" for v in data["dequantized"][part]], x, 0.25, cell=CELL, fills="white",
                    gid="dequantized", fontsize=8, text_colour=MUTED)
    for j, byte in enumerate(data["packed"]):
        x = left + 2 * j * CELL
        box(ax, x, 1.45, 2 * CELL, 0.6, f"{byte >> 4:04b} {byte & 15:04b}", fill="#FFF3B0", rounded=False,
            fontsize=8, gid="byte")
        arrow(ax, (x + CELL / 2, 2.75), (x + 0.35 * CELL, 2.05), colour=MUTED, lw=0.8)       # low nibble
        arrow(ax, (x + 1.5 * CELL, 2.75), (x + 1.65 * CELL, 2.05), colour=MUTED, lw=0.8)     # high nibble
    ax.text(left, 1.12, f"{len(data['packed'])} bytes of codes + {groups} × (scale + min) × 2 bytes = "
            f"{data['nbytes']:g} bytes for {n_weights} weights ({8 * data['nbytes'] / n_weights:g} bits each; "
            f"groups of 32 cost 5)", fontsize=8.5, color=INK, va="center")
    ax.text(left, -0.12, f"largest error |w − ŵ| = {data['max_error']:.4f} (about half a step at most)", fontsize=8.5,
            color=INK, va="center")
    ax.set_ylim(-0.35, 6.0)
    return finish(figure, show)


def bytes_per_weight_data(in_features: int = 576, out_features: int = 1536, group_size: int = 32) -> dict[str, float]:
    """Stored bytes per weight of one ``(out_features, in_features)`` layer: fp32 and bf16 from
    ``slm_course.deploy.hardware.BYTES``; int8 and int4 as ``weight_bytes`` of an ``Int8Linear`` and an
    ``Int4Linear`` (groups of ``group_size``) built from such a layer, divided by its weight count (so the
    scales, and int4's minima, are counted). The default shape is a SmolLM2 feed-forward layer."""
    import torch
    from torch import nn

    from slm_course.deploy.hardware import BYTES
    from slm_course.quantize import Int4Linear, Int8Linear, weight_bytes

    with torch.random.fork_rng(devices=[]):  # the layer's random init must not move the caller's seed
        linear = nn.Linear(in_features, out_features, bias=False)
    n = in_features * out_features
    return {
        "fp32": BYTES["fp32"],
        "bf16": BYTES["bf16"],
        "int8": weight_bytes(Int8Linear.from_linear(linear, use_kernel=False)) / n,
        f"int4 (g{group_size})": weight_bytes(Int4Linear.from_linear(linear, group_size, use_kernel=False)) / n,
    }


def weight_only_linear(in_features: int = 576, out_features: int = 1536, group_size: int = 32, *, show: bool = True):
    """A weight-only quantized linear layer at inference (left: gids ``stored``, ``activations``,
    ``dequantize``, ``kernel``, ``matmul``, ``output``) beside the bytes each format stores per weight
    (right: one bar per format, gid ``bar-<format>``, heights from :func:`bytes_per_weight_data`)."""
    from slm_course.quantize.layers import KERNEL_MAX_ROWS

    sizes = bytes_per_weight_data(in_features, out_features, group_size)
    figure, ax = canvas(12, 4.6, title="Weight-only quantization: integers stored, float activations, "
                                       "float output", xlim=(0, 8), ylim=(0, 4.6))
    ax.set_position((0.01, 0.01, 0.64, 0.88))
    box(ax, 0.1, 3.0, 3.2, 1.2, "stored: int8 codes (out × in)\n+ one fp32 scale per row\nor int4 codes, 2 per byte\n"
        f"+ fp16 scale & min per {group_size}", fill=colour(0), text_colour="white", gid="stored", fontsize=9)
    box(ax, 0.1, 0.4, 3.2, 1.0, "activations x\nfloat32 (…, in)", fill=PAPER, gid="activations", fontsize=10)
    box(ax, 3.9, 3.0, 2.0, 1.2, "dequantize\nŵ = q · scale (+ min)\nfloat32", fill=PAPER, gid="dequantize", fontsize=9)
    box(ax, 3.9, 1.65, 2.0, 1.1, f"or, for ≤ {KERNEL_MAX_ROWS} rows: the CPU\nweight-only kernel\n(dequantizes inside\nthe matmul)",
        fill="#FFF3B0", gid="kernel", fontsize=9)
    box(ax, 6.3, 1.65, 1.6, 1.1, "matmul\nx ŵᵀ", fill=colour(1), text_colour="white", gid="matmul", fontsize=10)
    box(ax, 6.3, 0.3, 1.6, 0.9, "y float32\n(…, out)", fill=colour(2), text_colour="white", gid="output", fontsize=10)
    arrow(ax, (3.3, 3.6), (3.9, 3.6))
    arrow(ax, (3.3, 3.3), (3.9, 2.3))
    arrow(ax, (5.9, 3.5), (6.6, 2.75))
    arrow(ax, (5.9, 2.2), (6.3, 2.2))
    arrow(ax, (3.3, 0.9), (6.45, 1.65), curve=0.15)
    arrow(ax, (7.1, 1.65), (7.1, 1.2))
    ax.text(0.1, 2.55, "only the weights are small:\nreading them from memory is\nwhat limits CPU decoding",
            fontsize=9, color=INK, va="center")

    bars = figure.add_axes((0.71, 0.14, 0.27, 0.7))
    names = list(sizes)
    for i, name in enumerate(names):
        patch = bars.bar(i, sizes[name], color=colour(i), width=0.7)[0]
        patch.set_gid(f"bar-{name}")
        bars.text(i, sizes[name] + 0.06, f"{sizes[name]:.3g}", ha="center", va="bottom", fontsize=9, color=INK,
                  gid=f"value-{name}")
    bars.set_xticks(range(len(names)), names, fontsize=9)
    bars.set_ylim(0, 4.6)
    bars.set_ylabel("bytes per weight (scales included)", fontsize=9)
    bars.set_title(f"one {out_features} × {in_features} layer", fontsize=10)
    for side in ("top", "right"):
        bars.spines[side].set_visible(False)
    return finish(figure, show)


FORMATS = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}


def float_format_data(value: float = 0.1) -> dict[str, dict]:
    """Per format (``fp32``, ``bf16``, ``fp16``): ``bits`` (the stored bit string of ``value``, sign first),
    ``exponent_bits`` and ``mantissa_bits``, the ``stored`` value those bits mean, and the range from
    ``torch.finfo``: ``largest``, ``smallest_normal`` and ``smallest_subnormal`` (smallest normal × eps,
    the last step before 0)."""
    import torch

    data = {}
    for name, dtype_name in FORMATS.items():
        dtype = getattr(torch, dtype_name)
        info = torch.finfo(dtype)
        mantissa = round(-math.log2(info.eps))
        stored = torch.tensor(value, dtype=torch.float64).to(dtype)
        as_int = stored.view(torch.int32 if info.bits == 32 else torch.int16).item() & ((1 << info.bits) - 1)
        data[name] = {"bits": format(as_int, f"0{info.bits}b"), "exponent_bits": info.bits - 1 - mantissa,
                      "mantissa_bits": mantissa, "stored": stored.item(), "largest": info.max,
                      "smallest_normal": info.smallest_normal, "smallest_subnormal": info.smallest_normal * info.eps}
    return data


def float_formats(value: float = 0.1, *, show: bool = True):
    """One row per format: the bits that store ``value`` (gids ``sign-<f>``, ``exponent-<f>``, ``mantissa-<f>``,
    one cell per bit), the value they mean, and the format's range (gid ``range-<f>``), all from
    :func:`float_format_data`."""
    data = float_format_data(value)
    bit = 0.2
    left = 1.5
    figure, ax = canvas(12.6, 3.9, title=f"Three float formats: sign · exponent · mantissa, storing {value:g}")
    for row, (name, d) in enumerate(data.items()):
        y = 2.7 - row * 1.15
        n_exp, n_man = d["exponent_bits"], d["mantissa_bits"]
        ax.text(left - 0.15, y + bit / 2, f"{name}\n{len(d['bits'])} bits", ha="right", va="center", fontsize=10,
                color=INK)
        parts = [("sign", 1, colour(3)), ("exponent", n_exp, colour(0)), ("mantissa", n_man, colour(2))]
        start = 0
        for part, count, tint in parts:
            token_strip(ax, list(d["bits"][start:start + count]), left + start * bit, y, cell=bit, fills=tint,
                        gid=f"{part}-{name}", text_colour="white", fontsize=7)
            label = part if part == "sign" else f"{part}: {count} bits"
            ax.text(left + (start + count / 2) * bit, y - 0.08, label, ha="center", va="top", fontsize=8,
                    color=tint)
            start += count
        ax.text(left + 32 * bit + 0.3, y + bit / 2,
                f"stores {d['stored']:.10g}\nlargest {d['largest']:.3g}\nsmallest normal {d['smallest_normal']:.2g}, "
                f"subnormal {d['smallest_subnormal']:.2g}",
                ha="left", va="center", fontsize=9, color=INK, gid=f"range-{name}")
    ax.text(left, -0.1, "Below fp16's smallest normal number a gradient loses digits, below its smallest subnormal it "
            "becomes 0 (underflow).\nfp16 training multiplies the loss by a scale, which lifts every gradient, and "
            "divides it out in fp32; bf16 has fp32's exponent and needs no scale.", fontsize=9, color=MUTED, va="center")
    ax.set_ylim(-0.45, 3.3)
    return finish(figure, show)


MEMORY_PARTS = ("weights", "kv_cache", "activations")


def memory_breakdown_data(config_name: str = "llama3-8b", context: int = 8192,
                          precisions: tuple[str, ...] = ("fp32", "bf16", "int8", "int4")) -> dict[str, dict[str, float]]:
    """GiB of ``weights``, ``kv_cache``, ``activations`` and ``total`` per precision: ``deployment_memory`` of
    the preset ``config_name`` at batch 1 and ``context`` tokens, with its default cache and activation dtypes."""
    from slm_course.deploy.hardware import deployment_memory
    from slm_course.model import SLMConfig

    config = SLMConfig.from_name(config_name)
    return {p: {k: v / 2**30 for k, v in deployment_memory(config, p, context=context).items()} for p in precisions}


def memory_breakdown(config_name: str = "llama3-8b", context: int = 8192,
                     precisions: tuple[str, ...] = ("fp32", "bf16", "int8", "int4"),
                     devices: tuple[str, ...] = ("phone (8 GiB, ~3 usable)", "laptop GPU, 8 GiB", "laptop, 16 GiB RAM",
                                                 "RTX 4090, 24 GiB"), *, show: bool = True):
    """Stacked horizontal bars, one per precision (gids ``weights-<p>``, ``kv_cache-<p>``, ``activations-<p>``,
    widths in GiB from :func:`memory_breakdown_data`), and a dashed line per device at the memory it leaves
    for a model (gid ``device-<name>``, from ``slm_course.deploy.hardware.DEVICES_GIB``)."""
    from matplotlib.figure import Figure

    from slm_course.deploy.hardware import DEVICES_GIB

    data = memory_breakdown_data(config_name, context, precisions)
    figure = Figure(figsize=(10, 3.8), dpi=100)
    ax = figure.add_axes((0.08, 0.14, 0.9, 0.72))
    names = {"weights": "weights", "kv_cache": "KV cache", "activations": "activations"}
    for row, precision in enumerate(precisions):
        start = 0.0
        for i, part in enumerate(MEMORY_PARTS):
            width = data[precision][part]
            patch = ax.barh(row, width, left=start, color=colour(i), height=0.6,
                            label=names[part] if row == 0 else None)[0]
            patch.set_gid(f"{part}-{precision}")
            start += width
        ax.text(start + 0.3, row, f"{data[precision]['total']:.1f} GiB", va="center", fontsize=9, color=INK)
    for k, device in enumerate(devices):
        gib = DEVICES_GIB[device]
        line = ax.axvline(gib, color=MUTED, ls="--", lw=1)
        line.set_gid(f"device-{device}")
        ax.text(gib + 0.2, -0.62 - 0.32 * (k % 2), device, ha="left", va="bottom",
                fontsize=8, color=MUTED)
    ax.set_yticks(range(len(precisions)), precisions)
    ax.set_ylim(len(precisions) - 0.5, -1.1)  # first precision on top, room for the device names above it
    ax.set_xlabel("GiB at batch 1")
    ax.set_xlim(0, max(d["total"] for d in data.values()) * 1.12)
    ax.legend(loc="center right", fontsize=9, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    figure.suptitle(f"What {config_name} needs at a {context:,}-token context: weights, KV cache, activations",
                    fontsize=13, x=0.01, ha="left", y=0.98)
    return finish(figure, show)
