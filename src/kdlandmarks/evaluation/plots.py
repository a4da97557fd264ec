"""CED (cumulative error distribution) figures and tables: several models or subsets on one axes."""
from __future__ import annotations

import csv
import io
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING, Mapping

import numpy as np

from kdlandmarks.fileio import atomic_path, atomic_write_text
from kdlandmarks.evaluation.metrics import ced_curve, summarize

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_POINTS = 101
TITLE_WIDTH = 70  # characters per title line at the figure's width


def matplotlib_missing() -> str | None:
    """Why CED pictures cannot be drawn here (matplotlib, part of the train extra, is not installed), or None."""
    from kdlandmarks.extras import TRAIN_INSTALL, missing

    if missing(["matplotlib"]):
        return f"matplotlib is not installed (pip install matplotlib, or {TRAIN_INSTALL})"
    return None


def ced_figure(curves: Mapping[str, np.ndarray], threshold: float = 0.10,
               title: str = "Cumulative error distribution", num: int = DEFAULT_POINTS) -> "Figure":
    """A matplotlib Figure (Agg canvas) with each label's CED over [0, threshold]; the legend gives its NME
    and AUC. Needs matplotlib: see plot_ced."""
    # The object-oriented API with the Agg canvas avoids pyplot's global state and any display backend.
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # The legend goes below the axes, where it can cover neither the curves nor the axis labels; the figure
    # grows by one legend line per curve so that the axes keep their size.
    fig = Figure(figsize=(7, 4.5 + 0.22 * len(curves)), dpi=120, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    # tab10 repeats its colours after ten curves; tab20 keeps up to twenty apart
    palette = matplotlib.colormaps["tab10" if len(curves) <= 10 else "tab20"].colors
    for i, (label, errors) in enumerate(curves.items()):
        t, frac = ced_curve(errors, threshold, num)
        s = summarize(errors, threshold)
        ax.plot(t, frac, linewidth=1.6, color=palette[i % len(palette)],
                label=f"{label}: NME {s['nme']:.2f}%, AUC {s['auc']:.3f} (code {s['auc_paper_code']:.3f})")
    ax.set_xlim(0, threshold)
    ax.set_ylim(0, 1.0)
    ax.set_xlabel("Normalized error (NME)")
    ax.set_ylabel("Fraction of images")
    ax.set_title(textwrap.fill(title, TITLE_WIDTH))  # a long title on one line runs off the picture
    ax.grid(True, alpha=0.3)
    fig.legend(loc="outside lower center", fontsize=8, frameon=False)
    return fig


def plot_ced(curves: Mapping[str, np.ndarray], path_png: str | Path, threshold: float = 0.10,
             title: str = "Cumulative error distribution", num: int = DEFAULT_POINTS) -> Path:
    """Draw each label's CED over [0, threshold] into one PNG (ced_figure), written atomically."""
    from kdlandmarks.errors import MissingExtraError

    why_not = matplotlib_missing()
    if why_not is not None:
        raise MissingExtraError(f"drawing {Path(path_png).name}: {why_not}")
    fig = ced_figure(curves, threshold, title, num)
    path = Path(path_png)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    return path


def write_ced_csv(curves: Mapping[str, np.ndarray], path_csv: str | Path, threshold: float = 0.10,
                  num: int = DEFAULT_POINTS) -> Path:
    """A CSV with a `threshold` column and one column of CED fractions per label."""
    labels = list(curves)
    columns = []
    t = np.linspace(0.0, threshold, num)
    for label in labels:
        _, frac = ced_curve(curves[label], threshold, num)
        columns.append(frac)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["threshold", *labels])
    for i, ti in enumerate(t):
        writer.writerow([f"{ti:.6g}", *(f"{c[i]:.6f}" for c in columns)])
    path = Path(path_csv)
    atomic_write_text(path, buf.getvalue())
    return path
