"""Side-by-side comparison of several evaluations: a Markdown table, CED curves on one axes, CSV, and
optionally each model paired face by face against a baseline (is a gap larger than the test set's noise?).

Reads the metrics.json files that `kdlandmarks evaluate` writes, so every figure in a comparison
comes from a run that can be repeated with the command recorded beside it.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from kdlandmarks.errors import DataError
from kdlandmarks.fileio import atomic_write_text
from kdlandmarks.evaluation.plots import matplotlib_missing, plot_ced, write_ced_csv


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


def paired_difference(model_nme: np.ndarray, baseline_nme: np.ndarray, resamples: int = 10000,
                      seed: int = 0) -> dict[str, float]:
    """Model minus baseline on the same faces (NME in %, negative: the model is better).

    Two models scored on one test set share its hard faces, so their per-face differences say far more
    than two means side by side: the mean difference with a 95 % percentile-bootstrap interval over faces,
    how many faces each model wins, and a two-sided sign-flip randomisation p-value (under "no difference"
    each face's difference is as likely to have either sign). Seeded, so a report is reproducible.
    """
    model, base = np.asarray(model_nme, dtype=np.float64), np.asarray(baseline_nme, dtype=np.float64)
    diff = 100.0 * (model - base)
    if diff.ndim != 1 or diff.size < 2:
        raise DataError("a paired comparison needs at least two faces scored by both models")
    rng = np.random.default_rng(seed)
    boot = diff[rng.integers(0, diff.size, (resamples, diff.size))].mean(axis=1)
    observed = abs(diff.mean())
    flipped = np.abs((diff * rng.choice((-1.0, 1.0), (resamples, diff.size))).mean(axis=1))
    low, high = np.percentile(boot, [2.5, 97.5])
    return {"faces": int(diff.size), "mean_difference": float(diff.mean()), "ci95_low": float(low),
            "ci95_high": float(high), "nme_ratio": float(model.mean() / base.mean()), "model_better": int((diff < 0).sum()), "baseline_better": int((diff > 0).sum()),
            # add-one: a randomisation p-value is never exactly 0 with finitely many resamples
            "p_value": float((1 + (flipped >= observed - 1e-12).sum()) / (1 + resamples)),
            "resamples": resamples, "seed": seed}


def _p_text(d: dict[str, float]) -> str:
    # at the floor no resample reached the observed gap: the test only says p is below its resolution
    floor = 1.0 / (1 + d["resamples"])
    return f"≤ {floor:.1g}" if d["p_value"] <= floor * (1 + 1e-9) else f"{d['p_value']:.2g}"


def _per_face(result: dict, source: str | Path) -> dict[str, float]:
    # every face the evaluation scored, as the CED curves: a reported subset can be a group of folders
    # (300-W common) or an attribute (WFLW pose), which the per-face records do not carry
    faces = {r.get("name"): r["nme"] for r in result["per_image"]}
    if None in faces or len(faces) != len(result["per_image"]):
        raise DataError(f"{source}: per-face scores without unique face names cannot be paired")
    return faces


def compare(evaluations: dict[str, str | Path], out_dir: str | Path, subset: str | None = None,
            title: str = "CED", paper: dict[str, str] | None = None, baseline: str | None = None) -> str:
    """Write table.md, ced.png (where matplotlib is installed) and ced.csv for {label: metrics.json or
    folder}; return the table.

    The CED curves cover every face each evaluation scored; the table shows one reported subset.
    subset: which reported subset to compare (default: the first one of each evaluation).
    paper: optional {label: text} shown in a "paper" column (the published figure to compare with).
    baseline: the label every other model is paired with face by face (paired_difference) in extra
    columns, over every face scored (as the CED curves); the evaluations must have scored the same faces.
    """
    if not evaluations:
        raise DataError("nothing to compare: give at least one evaluation")
    if baseline is not None and baseline not in evaluations:
        raise DataError(f"baseline {baseline!r} is not one of the labels: {', '.join(evaluations)}")
    rows, curves, thresholds, faces = [], {}, set(), {}
    for label, src in evaluations.items():
        result = load_evaluation(src)
        name = subset or next(iter(result["subsets"]))
        if name not in result["subsets"]:
            raise DataError(f"{src}: no subset {name!r}; it has {sorted(result['subsets'])}")
        s = result["subsets"][name]
        curves[label] = np.array([r["nme"] for r in result["per_image"]])
        thresholds.add(float(s["threshold"]))
        rows.append((label, name, s))
        if baseline is not None:
            faces[label] = _per_face(result, src)
    if len(thresholds) != 1:
        raise DataError(f"evaluations use different thresholds {sorted(thresholds)}; compare like with like")
    threshold = thresholds.pop()
    paired = _paired_with_baseline(faces, baseline) if baseline is not None else {}
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if matplotlib_missing() is None:  # without matplotlib (the default install): table and CSV only
        plot_ced(curves, out / "ced.png", threshold=threshold, title=title)
    write_ced_csv(curves, out / "ced.csv", threshold=threshold)
    table = _table(rows, threshold, paper, baseline, paired)
    atomic_write_text(out / "table.md", table)
    return table


def _paired_with_baseline(faces: dict[str, dict[str, float]], baseline: str) -> dict[str, dict[str, float]]:
    """paired_difference of every other label's per-face NME against the baseline's, over the same faces."""
    reference = faces[baseline]
    paired = {}
    for label, scored in faces.items():
        if label == baseline:
            continue
        if scored.keys() != reference.keys():
            raise DataError(f"{label!r} and the baseline {baseline!r} scored different faces "
                            f"({len(scored)} and {len(reference)}); pair like with like")
        keys = sorted(reference)
        paired[label] = paired_difference(np.array([scored[k] for k in keys]), np.array([reference[k] for k in keys]))
    return paired


def _table(rows: list[tuple[str, str, dict]], threshold: float, paper: dict[str, str] | None, baseline: str | None,
           paired: dict[str, dict[str, float]]) -> str:
    """table.md: one row per evaluation, the paper's column and the paired columns where asked for."""
    pct = f"{threshold:g}"
    head = f"| model | subset | faces | NME (%) | FR@{pct} (%) | AUC@{pct} | AUC (paper code) |"
    sep = "|---|---|---|---|---|---|---|"
    if paper:
        head += " paper |"
        sep += "---|"
    if baseline is not None:
        head += f" ΔNME vs {baseline} (95 % CI) | NME ratio | faces better / worse | p (paired) |"
        sep += "---|---|---|---|"
    lines = [head, sep]
    for label, name, s in rows:
        line = (f"| {label} | {name} | {s['count']} | {s['nme']:.2f} | {s['failure_rate']:.2f} | "
                f"{s['auc']:.4f} | {s['auc_paper_code']:.4f} |")
        if paper:
            line += f" {paper.get(label, '')} |"
        if baseline is not None:
            d = paired.get(label)
            line += (" baseline | 1 | — | — |" if d is None else
                     f" {d['mean_difference']:+.2f} [{d['ci95_low']:+.2f}, {d['ci95_high']:+.2f}] | "
                     f"{d['nme_ratio']:.3f} | {d['model_better']} / {d['baseline_better']} | {_p_text(d)} |")
        lines.append(line)
    table = "\n".join(lines) + "\n"
    if paired:
        d = next(iter(paired.values()))
        table += (f"\nΔNME: mean over all {d['faces']} faces scored of (model − {baseline}) NME, in NME points "
                  "(negative: the model is better); 95 % percentile bootstrap over faces; NME ratio: model's mean NME over "
                  f"{baseline}'s on those faces; p: two-sided sign-flip "
                  f"randomisation test ({d['resamples']:,} resamples, seed {d['seed']}).\n")
    return table
