"""Occlusion robustness on the faces we have (COFW stands for real occlusion and is not reachable here).

A solid mid-grey patch is painted over part of each 300-W face on the whole photo, placed by the face's own
ground-truth landmarks, and the model is given a tight box around those landmarks (box_source="landmarks"):
- none: the face as it is;
- one eye: the right eye's points (36-41) and its brow (17-21), grown 25 % a side;
- mouth: the outer lip (48-59), grown 30 % a side;
- lower half: as a face mask covers it, from the nose bridge (point 29) down past the chin, across the jaw
  (points 1-15) plus 5 % of the face width a side.
Rows: validation faces (the 300-W train faces that training holds out: the store's face-grouped split with
the recipe's val_fraction and seed) and LFPW test. NME is inter-ocular, percent. Models run on onnxruntime.

Usage: python3 benchmarks/occlusion.py [--root ../shared/data/300w] [--store ~/kdl-runs/stores/300w-train-128x1]
       [--model kd-student-300w-lite ...] [--out results/occlusion]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from kdlandmarks.data.crop import landmark_box
from kdlandmarks.data.datasets import FaceRecord, load_dataset, read_image
from kdlandmarks.data.schemes import W300
from kdlandmarks.evaluation.metrics import per_image_nme
from kdlandmarks.fileio import atomic_write_json
from kdlandmarks.inference.detector import LandmarkDetector

GREY = 128
CONDITIONS = ("none", "one eye", "mouth", "lower half")


def occluder_box(landmarks: np.ndarray, condition: str) -> np.ndarray | None:
    """(x0, y0, x1, y1) of the patch for `condition` on a 68-point face, or None for "none"."""
    g = W300.groups
    if condition == "none":
        return None
    if condition == "one eye":
        pts = landmarks[list(g["right_eye"]) + list(g["right_brow"])]
        grow = 0.25
    elif condition == "mouth":
        pts, grow = landmarks[list(g["outer_lip"])], 0.30
    elif condition == "lower half":
        jaw = landmarks[list(g["jaw"])[1:16]]
        width = jaw[:, 0].max() - jaw[:, 0].min()
        return np.array([jaw[:, 0].min() - 0.05 * width, landmarks[29, 1],
                         jaw[:, 0].max() + 0.05 * width, landmarks[list(g["jaw"]), 1].max() + 0.05 * width])
    else:
        raise ValueError(condition)
    lo, hi = pts.min(0), pts.max(0)
    pad = (hi - lo) * grow
    return np.concatenate([lo - pad, hi + pad])


def occluded(image: np.ndarray, box: np.ndarray | None) -> np.ndarray:
    if box is None:
        return image
    out = image.copy()
    h, w = out.shape[:2]
    x0, y0 = max(0, int(np.floor(box[0] + 0.5))), max(0, int(np.floor(box[1] + 0.5)))
    x1, y1 = min(w, int(np.ceil(box[2] + 0.5))), min(h, int(np.ceil(box[3] + 0.5)))
    out[y0:y1, x0:x1] = GREY
    return out


def score(detector: LandmarkDetector, records: list[FaceRecord]) -> dict[str, float]:
    gt = np.stack([r.landmarks for r in records])
    out = {}
    for condition in CONDITIONS:
        preds = []
        for r in records:
            image = occluded(read_image(r.image_path), occluder_box(r.landmarks, condition))
            faces = detector.detect(image, boxes=[landmark_box(r.landmarks)], box_source="landmarks")
            preds.append(faces[0].landmarks)
        out[condition] = round(float(per_image_nme(np.stack(preds), gt, W300).mean() * 100), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--store", default=str(Path.home() / "kdl-runs/stores/300w-train-128x1"),
                    help="the training store whose validation faces to use (omit the row if it is missing)")
    ap.add_argument("--val-fraction", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", action="append", help="model names or files (default: kd-student-300w-lite)")
    ap.add_argument("--out", help="folder for occlusion.json")
    args = ap.parse_args()
    splits = {"LFPW test": load_dataset("300w", args.root, "lfpw/testset")}
    if Path(args.store, "meta.json").is_file():
        from kdlandmarks.data.store import FaceStore
        from kdlandmarks.training.data import validation_records

        val = validation_records(FaceStore(args.store), args.root, args.val_fraction, args.seed)
        splits = {"validation": val, **splits}
    results = {}
    for model in args.model or ["kd-student-300w-lite"]:
        detector = LandmarkDetector(model)
        for split, records in splits.items():
            results[f"{model} | {split} ({len(records)} faces)"] = score(detector, records)
    print("| model, faces | " + " | ".join(CONDITIONS) + " |")
    print("|---|" + "---|" * len(CONDITIONS))
    for row, values in results.items():
        print(f"| {row} | " + " | ".join(f"{values[c]:.2f}" for c in CONDITIONS) + " |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out) / "occlusion.json", results)


if __name__ == "__main__":
    main()
