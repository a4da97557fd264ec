"""Collect benchmarks/kd_teacher_outputs/run.sh into results/kd-teacher-outputs/table.md and table.json.

One row per arm: how the teachers' outputs reach the KD student (online, fixed copies + cache, warped
cache), its steps and samples in the shared wall-clock budget, and its validation NME (faces carved from
train, never LFPW test).
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import yaml

ARMS = {
    "online": "fresh augmentation, teachers run every step",
    "fixed": "fixed augmented copies, outputs cached once (cache build counted)",
    "warp": "fresh augmentation, cached outputs moved with each step's warp",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path(os.path.expanduser("~/kdl-runs/kd-outputs")))
    parser.add_argument("--out", type=Path, default=Path("results/kd-teacher-outputs"))
    args = parser.parse_args()
    rows = []
    for arm, what in ARMS.items():
        summary_path, plan_path = args.runs / arm / "summary.json", args.runs / f"{arm}.plan.json"
        if not (summary_path.is_file() and plan_path.is_file()):
            continue
        s, p = json.loads(summary_path.read_text()), json.loads(plan_path.read_text())
        probe = json.loads((args.runs / f"probe-{arm}" / "summary.json").read_text())
        batch = yaml.safe_load((args.runs / arm / "config.yaml").read_text())["recipe"]["data"]["batch_size"]
        # what the probe's wall time holds beyond its own steps: start-up and, for the cached arms, the cache build
        setup = max(p["probe_wall_s"] - probe["seconds"], 0.0)
        rows.append({"arm": arm, "teacher outputs": what, "copies": p["copies"], "minutes": p["minutes"],
                     "setup s (counted)": round(setup), "steps": s["steps"], "samples": s["steps"] * batch,
                     "samples/s": s["samples_per_second"], "val NME (%)": s["last_val_nme"]})
    if not rows:
        raise SystemExit(f"no finished arm under {args.runs}")
    args.out.mkdir(parents=True, exist_ok=True)
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    (args.out / "table.json").write_text(json.dumps(rows, indent=1) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
