"""Validation NME of the staged CPU campaign against training samples and CPU-hours, one line per model.

Reads the folders kept under results/300w-cpu-v3/ (each with logs/metrics.csv and summary.json): the teachers'
stage folders NAME-sK (run.sh), whose stages it chains (stage k starts where stage k-1 ended), and the students'
one-stage folders student-RUN (students.sh); and it draws the new recipe's plain-L1 MobileNetV2-0.5
(results/300w-cpu-v2/, the campaign's L1 lite row) beside them:
    python3 benchmarks/campaign_curves.py   # -> results/300w-cpu-v3/curves.png
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import yaml

from kdlandmarks.training.run import earlier_training_seconds

sys.path.insert(0, str(Path(__file__).resolve().parent / "recipe_study"))
from table import read_curve  # noqa: E402  (the recipe study's reader of a run's CSV logs)


def run_batch(run: Path) -> int:
    """The batch size a kept run trained with (its resolved config.yaml), to turn steps into samples."""
    return yaml.safe_load((run / "config.yaml").read_text())["recipe"]["data"]["batch_size"]


def stage_runs(folder: Path) -> dict[str, list[Path]]:
    """model name -> its stage folders in order (NAME-sK; a folder without -sK is a one-stage model)."""
    models: dict[str, list[tuple[int, Path]]] = {}
    for run in folder.iterdir():
        if not (run / "summary.json").is_file():
            continue
        m = re.fullmatch(r"(.+)-s(\d+)", run.name)
        name, stage = (m.group(1), int(m.group(2))) if m else (run.name, 1)
        models.setdefault(name, []).append((stage, run))
    return {name: [p for _, p in sorted(stages)] for name, stages in sorted(models.items())}


def run_seconds(run: Path, summary: dict) -> float:
    """A kept run's training seconds over all its invocations. Summaries written before resumed runs added
    up their invocations (no seconds_before_resume) hold only the last one's; the earlier ones are in the
    run's logs (metrics.<k>.csv)."""
    if "seconds_before_resume" in summary:
        return summary["seconds"]
    return summary["seconds"] + earlier_training_seconds(run)


def chained(stages: list[Path]) -> list[tuple[float, float, float]]:
    """(samples, CPU-hours on one core, val NME) per validation across the stages of one model."""
    points, samples0, hours0 = [], 0, 0.0
    for run in stages:
        batch = run_batch(run)
        for minutes, step, nme in read_curve(run):
            points.append((samples0 + step * batch, hours0 + minutes / 60, nme))
        summary = json.loads((run / "summary.json").read_text())
        samples0 += summary["steps"] * batch
        hours0 += run_seconds(run, summary) / 3600
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=Path, default=Path("results/300w-cpu-v3"))
    parser.add_argument("--reference", type=Path, default=Path("results/300w-cpu-v2"))
    parser.add_argument("--out", type=Path, default=Path("results/300w-cpu-v3/curves.png"))
    args = parser.parse_args()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = {name: chained(stages) for name, stages in stage_runs(args.campaign).items()}
    if (args.reference / "summary.json").is_file():
        lines["MobileNetV2-0.5 L1 (300w-cpu-v2, reference)"] = chained([args.reference])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, points in lines.items():
        if points:
            samples, hours, nme = zip(*points)
            axes[0].plot([s / 1000 for s in samples], nme, label=name)
            axes[1].plot(hours, nme, label=name)
    for ax, xlabel in zip(axes, ("training samples (thousands)", "CPU-hours (one core)")):
        ax.set_xlabel(xlabel)
        ax.set_ylabel("validation NME (%)")
        ax.set_ylim(3, 12)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("300-W teachers and students, staged on the 2-core CPU (validation faces carved from train)")
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    for name, points in lines.items():
        if points:
            print(f"{name}: {points[-1][0]} samples, {points[-1][1]:.2f} CPU-h, last val NME {points[-1][2]:.2f}")


if __name__ == "__main__":
    main()
