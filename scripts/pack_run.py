"""Pack a pipeline run folder for transfer: fp16 model files, summaries, configs, logs and evaluations.

Usage: python3 scripts/pack_run.py RUN_DIR OUT_DIR [--split-mb 15]
Writes OUT_DIR/results.tgz (students in fp16, JSON/CSV/YAML/logs) and the teachers in fp16 as
OUT_DIR/<teacher>.pt.partNN chunks (join with `cat`), each under --split-mb.
"""
from __future__ import annotations

import argparse
import sys
import tarfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from kdlandmarks.models.backbones import load_model, save_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("out")
    ap.add_argument("--split-mb", type=float, default=15)
    args = ap.parse_args()
    run, out = Path(args.run), Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    half = {}
    for name in ("tough", "tolerant", "baseline", "student"):
        src = run / name / "model.pt"
        if src.is_file():
            model, info = load_model(src)
            half[name] = run / name / "model-fp16.pt"
            save_model(half[name], model, info, half=True)
    with tarfile.open(out / "results.tgz", "w:gz") as tar:
        for pattern in ("*/summary.json", "*/config.yaml", "*/logs/metrics.csv", "eval-*/metrics.json",
                        "eval-*/ced.csv", "eval-*/ced.png", "*.log", "store/meta.json"):
            for f in sorted(run.glob(pattern)):
                tar.add(f, arcname=str(f.relative_to(run)))
        for name in ("baseline", "student"):
            if name in half:
                tar.add(half[name], arcname=f"{name}/model-fp16.pt")
    limit = int(args.split_mb * 1024 * 1024)
    for name in ("tough", "tolerant"):
        if name in half:
            data = half[name].read_bytes()
            for k in range(0, len(data), limit):
                (out / f"{name}.pt.part{k // limit:02d}").write_bytes(data[k:k + limit])
    for f in sorted(out.iterdir()):
        print(f"{f.name}: {f.stat().st_size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
