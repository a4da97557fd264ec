"""Collect the recipe study's arms into a table and a val-NME-versus-minutes plot.

Reads every RUNS/<arm>/ written by run.sh (summary.json and the CSV logs) and writes
results/recipe-study/table.md, table.json and curves.png. Validation NME is on the faces carved
from train (never LFPW test); minutes are training time of the run (validation excluded).
"""
from __future__ import annotations

import argparse
import csv
import json
import os
from pathlib import Path

from kdlandmarks.training.run import logged_invocations, logged_training_seconds

ARMS = {  # arm -> (question, what changes from the base arm "fresh")
    "paper": ("baseline", "old 300w-cpu: 6 fixed copies, Adam, Keras decay, L2, lr 1e-3, batch 70"),
    "fresh": ("base", "fresh augmentation each step (rot ±25°), AdamW 2e-3 wd 1e-4, one-cycle, L1, batch 32"),
    "sched-keras": ("schedule", "Keras decay (lr 1e-3) instead of one-cycle"),
    "sched-cosine": ("schedule", "cosine with 5 % warm-up instead of one-cycle"),
    "opt-adam": ("optimiser", "Adam without weight decay instead of AdamW"),
    "fixed-copies": ("augmentation", "6 fixed copies per face instead of fresh augmentation"),
    "rot-small": ("augmentation", "rotation ±10° instead of ±25°"),
    "cutout": ("augmentation", "+ cut-out (p 0.3, 10–40 % of the side)"),
    "no-photometric": ("augmentation", "no gamma/contrast/noise/blur/grey"),
    "box-jitter": ("box jitter", "scale ±20 %, shift ±10 % instead of ±10 % / ±5 %"),
    "loss-l2": ("loss", "L2 instead of L1"),
    "loss-wing": ("loss", "wing instead of L1"),
    "loss-smooth-l1": ("loss", "smooth-L1 instead of L1"),
    "size-160": ("input size", "160 px instead of 128 (same samples, more compute)"),
}


def read_curve(run: Path) -> list[tuple[float, int, float]]:
    """(training minutes, optimisation steps, val NME) per validation, across resumed invocations: each
    invocation logs its own training seconds from zero, so it starts where the previous one's ended."""
    curve: list[tuple[float, int, float]] = []
    seconds_before = 0.0
    for log in logged_invocations(run):
        with open(log) as fh:
            rows = list(csv.DictReader(fh))
        seconds_by_epoch = {int(r["epoch"]): float(r["train_seconds"]) for r in rows if r.get("train_seconds")}
        for r in rows:
            if r.get("val_nme"):
                epoch = int(r["epoch"])
                known = [e for e in seconds_by_epoch if e <= epoch]
                seconds = seconds_by_epoch[max(known)] if known else 0.0
                curve.append(((seconds_before + seconds) / 60, int(r["step"]), float(r["val_nme"])))
        seconds_before += logged_training_seconds(log)
    return curve


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", default=os.path.expanduser("~/kdl-runs/study"))
    ap.add_argument("--out", default="results/recipe-study")
    args = ap.parse_args()
    runs, out = Path(args.runs), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    curves = {}
    for arm, (question, change) in ARMS.items():
        summary_file = runs / arm / "summary.json"
        if not summary_file.is_file():
            continue
        s = json.loads(summary_file.read_text())
        curve = read_curve(runs / arm)
        curves[arm] = curve
        batch = 70 if arm == "paper" else 32
        rows.append({"arm": arm, "question": question, "change": change, "steps": s["steps"],
                     "samples": s["steps"] * batch, "minutes": round(s["seconds"] / 60, 1),
                     "samples_per_second": s["samples_per_second"],
                     "val_nme": s["last_val_nme"], "best_val_nme": s["best_val_nme"]})
    (out / "table.json").write_text(json.dumps(rows, indent=1) + "\n")
    lines = ["| arm | question | change from `fresh` | samples | min | val NME (%) |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['arm']} | {r['question']} | {r['change']} | {r['samples']} | {r['minutes']} | "
                     f"{r['val_nme']:.2f} |")
    (out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for arm, curve in curves.items():
        if not curve:
            continue
        batch = 70 if arm == "paper" else 32
        style = {"marker": ".", "label": arm, "linewidth": 2.5 if arm in ("fresh", "paper") else 1.2}
        axes[0].plot([c[1] * batch / 1000 for c in curve], [c[2] for c in curve], **style)
        axes[1].plot([c[0] for c in curve], [c[2] for c in curve], **style)
    axes[0].set_xlabel("training samples (thousands): the equal budget")
    axes[1].set_xlabel("training minutes (one core each; other jobs shared the machine)")
    axes[0].set_ylabel("validation NME (%)")
    axes[0].set_ylim(8, 25)
    for ax in axes:
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, ncol=2)
    fig.suptitle("Recipe study: MobileNetV2-0.5 from scratch at 128 px, equal samples per arm")
    fig.tight_layout()
    fig.savefig(out / "curves.png", dpi=110)


if __name__ == "__main__":
    main()
