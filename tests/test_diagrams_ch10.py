"""Chapter 10's new diagrams draw the package's own numbers: the float formats' bits and ranges, and the memory
calculator's breakdown."""
from __future__ import annotations

import matplotlib
import pytest
import torch

matplotlib.use("Agg")

from slm_course.diagrams import ch10  # noqa: E402
from slm_course.diagrams.drawing import count_gids, texts  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def drawn_bits(figure, name: str) -> str:
    """The 0/1 digits drawn in one format's row, sign then exponent then mantissa."""
    return "".join(t.get_text() for part in ("sign", "exponent", "mantissa") for ax in figure.axes
                   for t in ax.texts if any(p.get_gid() == f"{part}-{name}" and p.contains_point(
                       ax.transData.transform(t.get_position())) for p in ax.patches))


@pytest.mark.parametrize("value", [0.1, -3.25, 1e-6])
def test_float_formats_draws_the_stored_bits_and_their_value(value):
    figure = ch10.float_formats(value, show=False)
    for name, dtype in DTYPES.items():
        info = torch.finfo(dtype)
        bits = drawn_bits(figure, name)
        assert len(bits) == info.bits
        assert count_gids(figure, f"sign-{name}") == 1
        assert count_gids(figure, f"mantissa-{name}") == round(-torch.log2(torch.tensor(info.eps)).item())
        as_int = int(bits, 2)  # the drawn bits, read back as the format, are the stored value
        signed = as_int - (1 << info.bits) if as_int >= 1 << (info.bits - 1) else as_int
        back = torch.tensor(signed, dtype=torch.int32 if info.bits == 32 else torch.int16).view(dtype).item()
        assert back == torch.tensor(value, dtype=torch.float64).to(dtype).item()
        [label] = [t.get_text() for ax in figure.axes for t in ax.texts if t.get_gid() == f"range-{name}"]
        assert f"largest {info.max:.3g}" in label and f"smallest normal {info.smallest_normal:.2g}" in label


def test_float_format_ranges_are_where_values_really_underflow():
    for name, d in ch10.float_format_data().items():
        dtype = DTYPES[name]
        smallest = d["smallest_subnormal"]
        assert torch.tensor(smallest, dtype=torch.float64).to(dtype).item() == smallest > 0  # representable
        assert torch.tensor(0.49 * smallest, dtype=torch.float64).to(dtype).item() == 0.0      # underflows to 0
        assert torch.tensor(d["largest"], dtype=torch.float64).to(dtype).item() == d["largest"]
        assert d["exponent_bits"] + d["mantissa_bits"] + 1 == len(d["bits"])
    data = ch10.float_format_data()
    assert data["fp16"]["smallest_normal"] == 2.0**-14 and data["fp16"]["smallest_subnormal"] == 2.0**-24
    assert data["bf16"]["exponent_bits"] == data["fp32"]["exponent_bits"] == 8 and data["fp16"]["exponent_bits"] == 5


def test_memory_breakdown_bars_are_the_calculators_numbers():
    from slm_course.deploy import DEVICES_GIB, deployment_memory
    from slm_course.model import SLMConfig

    precisions = ("fp32", "bf16", "int8", "int4")
    figure = ch10.memory_breakdown("smollm2-135m", context=2048, precisions=precisions,
                                   devices=("phone (8 GiB, ~3 usable)",), show=False)
    config = SLMConfig.from_name("smollm2-135m")
    [ax] = figure.axes
    for row, precision in enumerate(precisions):
        expected = deployment_memory(config, precision, context=2048)
        start = 0.0
        for part in ("weights", "kv_cache", "activations"):
            [bar] = [p for p in ax.patches if p.get_gid() == f"{part}-{precision}"]
            assert bar.get_width() == pytest.approx(expected[part] / 2**30)
            assert bar.get_x() == pytest.approx(start) and bar.get_y() + bar.get_height() / 2 == pytest.approx(row)
            start += bar.get_width()
        assert f"{expected['total'] / 2**30:.1f} GiB" in texts(figure)
    [line] = [line for line in ax.lines if line.get_gid() == "device-phone (8 GiB, ~3 usable)"]
    assert line.get_xdata()[0] == DEVICES_GIB["phone (8 GiB, ~3 usable)"]
    assert "What smollm2-135m needs at a 2,048-token context" in texts(figure)[0]


def test_memory_assumptions_are_the_stated_ones():
    """The chapter states them: KV cache 16-bit beside int8/int4 weights, the weights' precision beside float ones;
    activations float32 beside int8/int4 weights."""
    from slm_course.deploy import activation_bytes, deployment_memory
    from slm_course.model import SLMConfig, kv_cache_bytes

    config = SLMConfig.from_name("llama3-8b")
    for precision in ("int8", "int4"):
        m = deployment_memory(config, precision, context=1024)
        assert m["kv_cache"] == kv_cache_bytes(config, 1024, precision="bf16")
        assert m["activations"] == activation_bytes(config, context=1024, precision="fp32")
    assert deployment_memory(config, "fp32", context=1024)["kv_cache"] == kv_cache_bytes(config, 1024, precision="fp32")
    assert deployment_memory(config, "int8", context=1024, kv_precision="fp32")["kv_cache"] == \
        kv_cache_bytes(config, 1024, precision="fp32")


@pytest.mark.parametrize("draw", [lambda: ch10.float_formats(show=False), lambda: ch10.memory_breakdown(show=False)],
                         ids=["float_formats", "memory_breakdown"])
def test_titled_and_deterministic(draw):
    import io

    def png(figure) -> bytes:
        buffer = io.BytesIO()
        figure.savefig(buffer, format="png", metadata={"Software": None})
        return buffer.getvalue()

    figure = draw()
    assert len(figure.get_suptitle()) > 10
    assert png(figure) == png(draw())  # drawn twice, the same pixels
