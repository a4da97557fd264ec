"""CED figure and CSV: files appear atomically, CSV columns are monotone and equal ced_curve."""
import csv

import numpy as np

from kdlandmarks.evaluation.metrics import ced_curve
from kdlandmarks.evaluation.plots import plot_ced, write_ced_csv


def curves():
    rng = np.random.default_rng(0)
    return {"teacher": np.abs(rng.normal(0.04, 0.01, 50)), "student": np.abs(rng.normal(0.05, 0.02, 40))}


def test_plot_ced_writes_png(tmp_path):
    path = plot_ced(curves(), tmp_path / "out" / "ced.png", threshold=0.1, title="toy")
    assert path.is_file() and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["ced.png"]  # no temp files left


def test_ced_csv_matches_curve(tmp_path):
    c = curves()
    path = write_ced_csv(c, tmp_path / "ced.csv", threshold=0.1, num=21)
    with path.open() as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["threshold", "teacher", "student"]
    table = np.array(rows[1:], dtype=float)
    assert table.shape == (21, 3)
    for j, label in enumerate(["teacher", "student"], start=1):
        t, frac = ced_curve(c[label], 0.1, 21)
        np.testing.assert_allclose(table[:, 0], t, atol=1e-6)
        np.testing.assert_allclose(table[:, j], frac, atol=1e-6)
        assert np.all(np.diff(table[:, j]) >= 0)
    assert table[-1, 1] > table[0, 1]


def test_ced_legend_and_title_cover_nothing_and_fit_the_picture():
    from kdlandmarks.evaluation.plots import ced_figure

    many = {f"model {i} with a long descriptive label": errors
            for i, errors in enumerate(list(curves().values()) * 3)}
    fig = ced_figure(many, threshold=0.1, title="a long title that names the data, crop and normaliser " * 2)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    legend_box = legend.get_window_extent(renderer)
    axes_box = fig.axes[0].get_tightbbox(renderer)  # the plot area with its tick and axis labels
    assert len(legend.get_texts()) == len(many)
    assert legend_box.y1 <= axes_box.y0  # entirely below the axes and their labels
    assert 0 <= legend_box.x0 and legend_box.x1 <= fig.bbox.width  # and inside the picture
    title_box = fig.axes[0].title.get_window_extent(renderer)
    assert 0 <= title_box.x0 and title_box.x1 <= fig.bbox.width and title_box.y1 <= fig.bbox.height
