"""Side-by-side comparison of several evaluations: a Markdown table, CED curves on one axes, CSV.

Reads the metrics.json files that `kdlandmarks evaluate` writes, so every figure in a comparison
comes from a run that can be repeated with the command recorded beside it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .errors import DataError
from .fileio import atomic_write_text
from .plots import matplotlib_missing, plot_ced, write_ced_csv


def load_evaluation(path: str | Path) -> dict:
    """A metrics.json (or the folder holding one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "metrics.json"
    if not path.is_file():
        raise DataError(f"{path}: no metrics.json (run `kdlandmarks evaluate` first)")
    try:
        result = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a JSON text file") from None
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc.msg})") from None
    if not (isinstance(result, dict) and isinstance(result.get("subsets"), dict) and result["subsets"]
            and isinstance(result.get("per_image"), list)):
        raise DataError(f"{path}: not a metrics.json written by `kdlandmarks evaluate` (no subsets or per_image)")
    return result


def compare(evaluations: dict[str, str | Path], out_dir: str | Path, subset: str | None = None,
            title: str = "CED", paper: dict[str, str] | None = None) -> str:
    """Write table.md, ced.png (where matplotlib is installed) and ced.csv for {label: metrics.json or
    folder}; return the table.

    The CED curves cover every face each evaluation scored; the table shows one reported subset.
    subset: which reported subset to compare (default: the first one of each evaluation).
    paper: optional {label: text} shown in a "paper" column (the published figure to compare with).
    """
    if not evaluations:
        raise DataError("nothing to compare: give at least one evaluation")
    rows, curves, thresholds = [], {}, set()
    for label, src in evaluations.items():
        result = load_evaluation(src)
        name = subset or next(iter(result["subsets"]))
        if name not in result["subsets"]:
            raise DataError(f"{src}: no subset {name!r}; it has {sorted(result['subsets'])}")
        s = result["subsets"][name]
        curves[label] = np.array([r["nme"] for r in result["per_image"]])
        thresholds.add(float(s["threshold"]))
        rows.append((label, name, s))
    if len(thresholds) != 1:
        raise DataError(f"evaluations use different thresholds {sorted(thresholds)}; compare like with like")
    threshold = thresholds.pop()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if matplotlib_missing() is None:  # without matplotlib (the default install): table and CSV only
        plot_ced(curves, out / "ced.png", threshold=threshold, title=title)
    write_ced_csv(curves, out / "ced.csv", threshold=threshold)
    pct = f"{threshold:g}"
    head = f"| model | subset | faces | NME (%) | FR@{pct} (%) | AUC@{pct} | AUC (paper code) |"
    sep = "|---|---|---|---|---|---|---|"
    if paper:
        head += " paper |"
        sep += "---|"
    lines = [head, sep]
    for label, name, s in rows:
        line = (f"| {label} | {name} | {s['count']} | {s['nme']:.2f} | {s['failure_rate']:.2f} | "
                f"{s['auc']:.4f} | {s['auc_paper_code']:.4f} |")
        if paper:
            line += f" {paper.get(label, '')} |"
        lines.append(line)
    table = "\n".join(lines) + "\n"
    atomic_write_text(out / "table.md", table)
    return table
