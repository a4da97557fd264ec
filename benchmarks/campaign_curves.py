"""Validation NME of the staged CPU campaign against training samples and CPU-hours, one line per model.

Reads the folders kept under results/300w-cpu-v3/ (each with logs/metrics.csv and summary.json): the teachers'
stage folders NAME-sK (run.sh), whose stages it chains (stage k starts where stage k-1 ended), and the students'
one-stage folders student-RUN (students.sh); and it draws the new recipe's plain-L1 MobileNetV2-0.5
(results/300w-cpu-v2/, the campaign's L1 lite row) beside them:
    python3 benchmarks/campaign_curves.py   # -> results/300w-cpu-v3/curves.png
--part3 draws the models as they stand after the part-3 campaign (results/300w-cpu-v4/), each model's stages
chained across the campaigns that trained them (PART3_MODELS):
    python3 benchmarks/campaign_curves.py --part3   # -> results/300w-cpu-v4/curves.png
CPU-hours are each machine's own: the part-2 stages ran on a machine about three times slower than part 3's, so
the samples axis is the one to compare across campaigns.
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


# part 3: model -> its stage folders in training order, across campaigns (a stage not kept yet is left out)
PART3_MODELS: dict[str, list[str]] = {
    "Tough-Teacher ResNet-18 (part 2)": ["300w-cpu-v3/tough-r18-s1", "300w-cpu-v3/tough-r18-s2", "300w-cpu-v3/tough-r18-s3"],
    "Tough-Teacher ResNet-34, bf16": ["300w-cpu-v4/tough-r34-s1", "300w-cpu-v4/tough-r34-s2", "300w-cpu-v4/tough-r34-s3"],
    "Tough-Teacher ResNet-34, 160 px from stage 3": ["300w-cpu-v4/tough-r34-s1", "300w-cpu-v4/tough-r34-s2",
                                                     "300w-cpu-v4/tough-r34-s3-px160", "300w-cpu-v4/tough-r34-s4-px160"],
    "Tolerant-Teacher ResNet-18 (part 2)": ["300w-cpu-v3/tolerant-r18-s1", "300w-cpu-v3/tolerant-r18-s2"],
    "Tolerant-Teacher ResNet-34, bf16": ["300w-cpu-v4/tolerant-r34-s1", "300w-cpu-v4/tolerant-r34-s2"],
    "Tolerant-Teacher ResNet-34, 160 px from stage 2": ["300w-cpu-v4/tolerant-r34-s1", "300w-cpu-v4/tolerant-r34-s2-px160",
                                                        "300w-cpu-v4/tolerant-r34-s3-px160"],
    "KD lite (MobileNetV2-0.5)": ["300w-cpu-v3/student-kd-lite", "300w-cpu-v3/student-kd-lite-s2", "300w-cpu-v4/lite-occ-s3"],
    "plain-L1 lite, the same stages": ["300w-cpu-v2", "300w-cpu-v4/lite-l1-s2", "300w-cpu-v4/lite-l1-s3"],
    "KD full (MobileNetV2-1.0)": ["300w-cpu-v3/student-kd-full", "300w-cpu-v4/full-occ-s2", "300w-cpu-v4/full-occ-s3",
                                  "300w-cpu-v4/full-occ-s4", "300w-cpu-v4/full-occ-s5", "300w-cpu-v4/full-occ-s6"],
    "plain-L1 full, the same stages": ["300w-cpu-v4/full-l1-s1", "300w-cpu-v4/full-l1-s2", "300w-cpu-v4/full-l1-s3",
                                       "300w-cpu-v4/full-l1-s4", "300w-cpu-v4/full-l1-s5"],
}


def part3_models(results: Path) -> dict[str, list[Path]]:
    """PART3_MODELS' folders under `results`, each model up to its last kept stage."""
    models = {}
    for name, folders in PART3_MODELS.items():
        kept = []
        for folder in folders:
            if not (results / folder / "summary.json").is_file():
                break
            kept.append(results / folder)
        if kept:
            models[name] = kept
    return models


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
    parser.add_argument("--out", type=Path, default=None, help="default: the campaign's curves.png")
    parser.add_argument("--part3", action="store_true", help="the models after the part-3 campaign (PART3_MODELS)")
    args = parser.parse_args()
    campaign = Path("results/300w-cpu-v4") if args.part3 else args.campaign
    out = args.out or campaign / "curves.png"
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if args.part3:
        lines = {name: chained(stages) for name, stages in part3_models(Path("results")).items()}
    else:
        lines = {name: chained(stages) for name, stages in stage_runs(campaign).items()}
    if not args.part3 and (args.reference / "summary.json").is_file():
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
        ax.set_ylim(3, 8 if args.part3 else 12)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("300-W teachers and students, staged on the 2-core CPU (validation faces carved from train)"
                 + (" after part 3" if args.part3 else ""))
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    for name, points in lines.items():
        if points:
            print(f"{name}: {points[-1][0]} samples, {points[-1][1]:.2f} CPU-h, last val NME {points[-1][2]:.2f}")


if __name__ == "__main__":
    main()
