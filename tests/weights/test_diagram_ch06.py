"""Chapter 6's Q4_1 block diagram: 20 byte cells, 32 weight cells, the formula."""
import matplotlib

matplotlib.use("Agg")

from matplotlib.patches import Rectangle

from slm_course.diagrams.ch06 import q4_1_block_layout


def test_block_layout_draws_bytes_and_weights():
    fig = q4_1_block_layout(list(range(20)))
    ax = fig.axes[0]
    assert sum(isinstance(p, Rectangle) for p in ax.patches) == 20 + 32
    texts = [t.get_text() for t in ax.texts]
    assert "13" in texts and "w31" in texts and any("d · q + m" in t for t in texts)
    assert "Q4_1" in ax.get_title()
    labels = [t.get_text() for t in q4_1_block_layout().axes[0].texts]
    assert "d" in labels and "q15" in labels
