"""The part-3 campaign's runs, one row each, and the CPU-hours it has spent (issue "Accuracy, part 3").

Reads what run.sh's runs left in results/300w-cpu-v4/RUN/ (keep.sh, ship.sh copy them there):
summary.json for the budget and the final validation NME (the 101 faces held out of train, which chose every
stage), eval-gt*/metrics.json for the LFPW test NME (reported, never used to choose). A run that was cut off and
resumed counts every invocation (summary.json's seconds, which include seconds_before_resume). Runs whose weights were lost
with a machine and that were run again are counted too, from the summary that the repository kept of them.

    python3 results/300w-cpu-v4/table.py            # prints the table and writes results/300w-cpu-v4/table.md
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent

# run -> (model it belongs to, what it is); the order is the table's
RUNS: dict[str, tuple[str, str]] = {
    "tough-r34-s1": ("Tough-Teacher", "ResNet-34, bf16-mixed, 80 epochs from scratch"),
    "tough-r34-s2": ("Tough-Teacher", "ResNet-34, 40 more epochs from tough-r34-s1 (lr 1e-3)"),
    "tough-r34-s3": ("Tough-Teacher", "ResNet-34, 40 more epochs from tough-r34-s2 (not shipped)"),
    "tough-r34-s3-px160": ("Tough-Teacher", "tough-r34-s3 again at 160 px: 26 epochs from tough-r34-s2, the same work"),
    "tough-r34-s4-px160": ("Tough-Teacher", "26 more epochs at 160 px from tough-r34-s3-px160"),
    "tolerant-r34-s1": ("Tolerant-Teacher", "ResNet-34, bf16-mixed, 80 epochs from scratch on soft-landmarks"),
    "tolerant-r34-s2": ("Tolerant-Teacher", "ResNet-34, 40 more epochs from tolerant-r34-s1 (lr 1e-3)"),
    "tolerant-r34-s2-px160": ("Tolerant-Teacher", "tolerant-r34-s2 again at 160 px: 26 epochs from tolerant-r34-s1"),
    "tolerant-r34-s3-px160": ("Tolerant-Teacher", "26 more epochs at 160 px from tolerant-r34-s2-px160"),
    "lite-occ-s3": ("lite student", "KD, 40 epochs with occlusion from the 2-stage lite"),
    "lite-noocc-s3": ("lite student", "the same 40 KD epochs without occlusion (control)"),
    "lite-occ-s3-r34t": ("lite student", "lite-occ-s3 again, taught by the ResNet-34 Tough-Teacher"),
    "lite-occ-s3-t160": ("lite student", "lite-occ-s3 again, taught by the 160 px ResNet-34 Tough-Teacher"),
    "lite-l1-s2": ("lite, plain L1", "L1 control: 120 epochs from the 160-epoch L1 lite (lr 1e-3)"),
    "lite-l1-s3": ("lite, plain L1", "L1 control: 40 more epochs with occlusion"),
    "full-occ-s2": ("full student", "KD, 80 epochs with occlusion from the 1-stage full student"),
    "full-occ-s3": ("full student", "KD, 80 more epochs with occlusion"),
    "full-occ-s4": ("full student", "KD, 80 more epochs with occlusion"),
    "full-occ-s5": ("full student", "KD, 80 more epochs with occlusion"),
    "full-occ-s6": ("full student", "KD, 80 more epochs with occlusion"),
    "full-occ-s6-r34t": ("full student", "full-occ-s6 again, taught by both ResNet-34 teachers"),
    "full-occ-s6-t160": ("full student", "full-occ-s6-r34t again, with the 160 px Tough-Teacher"),
    "full-l1-s1": ("full, plain L1", "L1 control: 80 epochs from scratch (lr 2e-3), as the full's stage 1"),
    "full-l1-s2": ("full, plain L1", "L1 control: 80 more epochs with occlusion (lr 1e-3)"),
    "full-l1-s3": ("full, plain L1", "L1 control: 80 more epochs with occlusion"),
    "full-l1-s4": ("full, plain L1", "L1 control: 80 more epochs with occlusion"),
    "full-l1-s5": ("full, plain L1", "L1 control: 80 more epochs with occlusion"),
    "px128-seed0": ("input size", "L1 lite from scratch, 128 px, 64 epochs, seed 0"),
    "px160-seed0": ("input size", "L1 lite from scratch, 160 px, 41 epochs (equal time), seed 0"),
    "px128-seed1": ("input size", "the same at 128 px, seed 1"),
    "px160-seed1": ("input size", "the same at 160 px, seed 1"),
    "scratch-l1-seed0": ("KD vs L1 from scratch", "px128-seed0 again: L1 lite from scratch, 64 epochs, seed 0"),
    "scratch-kd160-seed0": ("KD vs L1 from scratch", "the same with KD from both 160 px ResNet-34 teachers"),
    "scratch-l1-seed1": ("KD vs L1 from scratch", "px128-seed1 again: the same, seed 1"),
    "scratch-kd160-seed1": ("KD vs L1 from scratch", "the same with KD from both 160 px teachers, seed 1"),
    "prec-r18-fp32": ("precision", "Tough ResNet-18, 12 epochs, fp32"),
    "prec-r18-bf16": ("precision", "the same in bf16-mixed"),
    "prec-r18-fp32-rerun": ("precision", "the fp32 run again (determinism)"),
    "prec-r18-bf16-equal-time": ("precision", "bf16-mixed given fp32's time: 19 epochs"),
}
# summaries record their hardware since 66775ea; the runs before it all had bf16 instructions (AMX-BF16 on the
# first machine, then an AMD EPYC with AVX512-BF16), which made their ResNet teachers 1.5-2.4x faster in bf16
EARLY_HARDWARE = "a CPU with bf16 instructions (not recorded)"
# runs on the machine of the sessions from 2026-12-07 13:00 that started from code older than 66775ea (the snapshot
# run.sh imports), so their summaries do not say
AVX2_MACHINE = "AMD EPYC, 1 core, bf16: none (AVX2 only)"
HARDWARE: dict[str, str] = {run: AVX2_MACHINE for run in ("full-occ-s6", "tolerant-r34-s2", "tough-r34-s3-px160",
                                                          "tough-r34-s4-px160", "full-occ-s6-r34t", "full-l1-s1",
                                                          "full-l1-s2", "full-l1-s3", "full-l1-s4", "full-l1-s5")}
# runs cut off when a session ended and lost with its machine before they finished, so they left no summary: the
# wall-clock hours the session's closing note gives (start to the session's end), counted, never scored
LOST_PARTIAL_RUNS: dict[str, tuple[float, str, str]] = {
    "full-occ-s6": (0.60, "12:26 to about 13:02 on 2026-12-07; epoch 40 of 80 at 12:47", EARLY_HARDWARE),
    "tolerant-r34-s2": (0.65, "12:23 to about 13:02 on 2026-12-07; epoch 22 of 40 at 12:47", EARLY_HARDWARE),
    "tolerant-r34-s2-px160": (1.08, "20:45 to about 21:50 on 2026-12-07; epoch 8 of 26 at 21:37", AVX2_MACHINE),
    "full-occ-s6-t160": (0.65, "21:11 to about 21:50 on 2026-12-07; epoch 19 of 80 at 21:37", AVX2_MACHINE),
}
# runs whose first weights were lost with their machine: the commit that kept the first run's summary
LOST_FIRST_RUNS: dict[str, str] = {"tough-r34-s1": "f66e582", "lite-occ-s3": "005e34d"}


def run_hours(summary: dict) -> float:
    return summary["seconds"] / 3600  # every invocation's training time: run.py adds seconds_before_resume in


def lfpw_nme(run_dir: Path) -> float | None:
    for name in ("eval-gt", "eval-gt-fp32"):
        metrics = run_dir / name / "metrics.json"
        if metrics.is_file():
            return json.loads(metrics.read_text())["subsets"]["lfpw/testset"]["nme"]
    return None


def lost_summary(run: str, commit: str) -> dict:
    text = subprocess.run(["git", "show", f"{commit}:results/300w-cpu-v4/{run}/summary.json"], cwd=HERE,
                          capture_output=True, text=True, check=True).stdout
    return json.loads(text)


def rows() -> tuple[list[str], float]:
    lines, total = [], 0.0
    for run, (model, what) in RUNS.items():
        if run in LOST_FIRST_RUNS:
            first = lost_summary(run, LOST_FIRST_RUNS[run])
            total += run_hours(first)
            lines.append(f"| {run} (first run, weights lost) | {model} | {what} | {first['epochs_completed']} | "
                         f"{run_hours(first):.2f} | {first['last_val_nme']:.3f} | — | {EARLY_HARDWARE} |")
        if run in LOST_PARTIAL_RUNS:
            hours, when, hardware = LOST_PARTIAL_RUNS[run]
            total += hours
            lines.append(f"| {run} (cut off, lost: {when}) | {model} | {what} | — | {hours:.2f} | — | — | "
                         f"{hardware} |")
        summary_file = HERE / run / "summary.json"
        if not summary_file.is_file():
            continue
        summary = json.loads(summary_file.read_text())
        total += run_hours(summary)
        test = lfpw_nme(HERE / run)
        lines.append(f"| {run} | {model} | {what} | {summary['epochs_completed']} | {run_hours(summary):.2f} | "
                     f"{summary['last_val_nme']:.3f} | {'—' if test is None else f'{test:.2f}'} | "
                     f"{summary.get('hardware', HARDWARE.get(run, EARLY_HARDWARE))} |")
    return lines, total


def main() -> None:
    lines, total = rows()
    table = "\n".join([
        "| run | model | what | epochs | CPU-h | val NME (%) | LFPW test NME (%) | hardware |",
        "|---|---|---|---|---|---|---|---|",
        *lines,
        "",
        f"Part-3 CPU-hours so far: **{total:.2f}** (every run above, each invocation of a resumed run counted; "
        "one core's wall clock each, on the hardware named: a CPU without bf16 instructions trains the ResNet "
        "teachers in fp32, several times slower: 217 s an epoch for tolerant-r34-s2 against 47 for its stage 1).",
    ])
    (HERE / "table.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
