"""The staged CPU campaign's models, one row each: budget (stages, samples, CPU-hours), validation NME and LFPW test scores.

Reads what results/300w-cpu-v3/run.sh (teachers, NAME-sK stage folders, chained) and students.sh (student-RUN
folders) kept, plus the plain-L1 MobileNetV2-0.5 of results/300w-cpu-v2/ (that width's L1 row; students.sh says
why), and writes the table the README's results section quotes:
    python3 benchmarks/campaign_table.py   # -> results/300w-cpu-v3/models.md (and .json)
CPU-hours are each run's own training seconds on one core (summary.json, plus the logged time of any
invocation a resume continued), summed over a model's stages; the
validation NME is the final epoch's on the 101 faces held out of train; LFPW test scores are the kept fp16
weights' (eval-gt, and eval-fliptest for the flip-test column).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from campaign_curves import run_batch, run_seconds, stage_runs  # batch size, cost, each model's folders in order

# folder stem -> (row label, the paper's 300-W common NME for that row, "—" where it has none). The paper rows
# are KD-LOSS-SPEC.md §7: the authors' dev log; the two single-teacher rows (†) are most likely the paper's
# ablation, unconfirmed.
LABELS: dict[str, tuple[str, str]] = {
    "tough-r18": ("Tough-Teacher, ResNet-18, L1", "3.34 (B3)"),
    "tolerant-r18": ("Tolerant-Teacher, ResNet-18, L1 on soft-landmarks", "—"),
    "student-kd-full": ("**KD student, MobileNetV2-1.0** (`kd-student-300w`)", "3.56"),
    "student-kd-lite": ("KD lite, MobileNetV2-0.5, stage 1 (the baselines' budget)", "—"),
    "student-l2-full": ("plain L2, MobileNetV2-1.0", "3.93"),
    "student-l2-lite": ("plain L2, MobileNetV2-0.5", "—"),
    "student-l1-full": ("plain L1, MobileNetV2-1.0", "—"),
    "student-l1-lite": ("plain L1, MobileNetV2-0.5", "—"),
    "student-kd-tough-full": ("KD, Tough-Teacher only, MobileNetV2-1.0", "3.85 †"),
    "student-kd-tolerant-full": ("KD, Tolerant-Teacher only, MobileNetV2-1.0", "3.73 †"),
}


# students given further stages (students.sh RUN-sK): the same-budget row above keeps the first stage alone,
# and this row, right after it, the model with all its stages
STAGED: dict[str, tuple[str, str]] = {
    "student-kd-lite": ("**KD lite, MobileNetV2-0.5, 2 stages** (`kd-student-300w-lite`)", "—"),
}


def nme(eval_dir: Path) -> dict | None:
    path = eval_dir / "metrics.json"
    if not path.is_file():
        return None
    return json.loads(path.read_text())["subsets"]["lfpw/testset"]


def model_row(label: str, paper: str, runs: list[Path]) -> dict:
    """One model trained in len(runs) stages (the last one holds its scores)."""
    summaries = [json.loads((r / "summary.json").read_text()) for r in runs]
    batches = [run_batch(r) for r in runs]
    last = runs[-1]
    gt, flip = nme(last / "eval-gt"), nme(last / "eval-fliptest")
    return {
        "model": label,
        "stages": len(runs),
        "epochs": sum(s["epochs_completed"] for s in summaries),
        "samples (k)": round(sum(s["steps"] * b for s, b in zip(summaries, batches)) / 1000, 1),
        "CPU-h": f"{sum(run_seconds(r, s) for r, s in zip(runs, summaries)) / 3600:.2f}",
        "val NME": f"{summaries[-1]['last_val_nme']:.2f}",
        "LFPW NME": f"{gt['nme']:.2f}" if gt else None,
        "flip test": f"{flip['nme']:.2f}" if flip else None,
        "FR@0.1 (%)": f"{gt['failure_rate']:.2f}" if gt else None,  # metrics.json keeps it in percent
        "AUC@0.1": f"{gt['auc']:.4f}" if gt else None,
        "paper": paper,
        "folder": str(last),
    }


def collect(campaign: Path, reference: Path) -> list[dict]:
    groups = stage_runs(campaign)
    if "student-l1-lite" not in groups and (reference / "summary.json").is_file():
        groups["student-l1-lite"] = [reference]
    rows = []
    for stem, (label, paper) in LABELS.items():  # the README's order; a model not trained yet keeps its row
        runs = groups.pop(stem, None)
        if runs is None:
            rows.append({"model": f"{label}: not trained yet", "paper": paper})
            continue
        if stem in STAGED and len(runs) > 1:
            rows.append(model_row(label, paper, runs[:1]))
            label, paper = STAGED[stem]
        rows.append(model_row(label, paper, runs))
    rows += [model_row(stem, "—", runs) for stem, runs in sorted(groups.items())]  # folders it has no label for
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaign", type=Path, default=Path("results/300w-cpu-v3"))
    parser.add_argument("--reference", type=Path, default=Path("results/300w-cpu-v2"))
    parser.add_argument("--out", type=Path, default=Path("results/300w-cpu-v3/models.md"))
    args = parser.parse_args()
    rows = collect(args.campaign, args.reference)
    if not any("folder" in r for r in rows):
        raise SystemExit(f"no finished run under {args.campaign}")
    keys = [k for k in next(r for r in rows if "folder" in r) if k != "folder"]
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join("—" if r.get(k) is None else str(r[k]) for k in keys) + " |" for r in rows]
    text = "\n".join(lines) + "\n"
    args.out.write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    print(text, end="")


if __name__ == "__main__":
    main()
