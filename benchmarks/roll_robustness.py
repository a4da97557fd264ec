"""Roll robustness of the default pipeline: NME against in-plane head rotation, on whole photos.

Each photo is rotated about its face's centre by the roll angle on a canvas grown so that nothing is cut
(cv2.warpAffine, bilinear, black border), its ground-truth landmarks with it; `LandmarkDetector().detect`
then runs on the whole rotated photo, face detector included, as a user calls it. A face counts as found
when one detected face's box matches the rotated ground truth (inference.detection.face_matches);
NME (inter-ocular, %) is over the faces found, and misses are counted apart.

Usage: python3 benchmarks/roll_robustness.py [--root ../shared/data/300w] [--split lfpw/testset]
       [--rolls 0,20,40,60,90] [--model kd-student-300w-lite] [--limit N] [--out results/roll]
Pick settings on validation faces (--split of the train faces, e.g. --split helen/trainset --limit 100), report
on LFPW test.
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from kdlandmarks.data.datasets import load_dataset, read_image
from kdlandmarks.data.schemes import W300
from kdlandmarks.evaluation.metrics import per_image_nme
from kdlandmarks.fileio import atomic_write_json
from kdlandmarks.inference.detection import face_matches
from kdlandmarks.inference.detector import LandmarkDetector


def rotated(image: np.ndarray, landmarks: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The photo rotated by `degrees` (counter-clockwise on screen) about the face centre, on a canvas grown
    to hold all of it, and the landmarks moved with it (pixel-centre coordinates)."""
    h, w = image.shape[:2]
    centre = (landmarks.min(0) + landmarks.max(0)) / 2
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0)
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64) @ m.T
    lo, hi = np.floor(corners.min(0)), np.ceil(corners.max(0))
    m[:, 2] -= lo
    size = (int(hi[0] - lo[0]) + 1, int(hi[1] - lo[1]) + 1)
    out = cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, landmarks @ m[:, :2].T + m[:, 2]


def best_face(faces: list, truth: np.ndarray):
    """The detected face that is the annotated one (its box matches), nearest first; None if none."""
    found = [f for f in faces if face_matches(f.box, truth)]
    if not found:
        return None
    centre = truth.mean(0)
    return min(found, key=lambda f: float(np.linalg.norm(f.landmarks.mean(0) - centre)))


def score_roll(detector: LandmarkDetector, records: list, degrees: float) -> dict[str, float]:
    preds, truths, misses = [], [], 0
    for r in records:
        image, truth = rotated(read_image(r.image_path), r.landmarks, degrees)
        face = best_face(detector.detect(image), truth)
        if face is None:
            misses += 1
            continue
        preds.append(face.landmarks)
        truths.append(truth)
    nme = float(per_image_nme(np.stack(preds), np.stack(truths), W300).mean() * 100) if preds else math.nan
    return {"roll": degrees, "faces": len(records), "found": len(preds), "misses": misses, "nme": round(nme, 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--split", default="lfpw/testset")
    ap.add_argument("--rolls", default="0,20,40,60,90", help="comma-separated roll angles in degrees")
    ap.add_argument("--model", default=None, help="model name or file (default: the default shipped student)")
    ap.add_argument("--limit", type=int, help="only the first N faces")
    ap.add_argument("--validation", metavar="STORE", help="instead of --split: the validation faces that training on "
                    "this store holds out (val_fraction 0.05, seed 0), to choose settings on")
    ap.add_argument("--search-rotations", action="store_true", help="LandmarkDetector.search_rotations on")
    ap.add_argument("--roll-passes", type=int, help="LandmarkDetector.roll_passes")
    ap.add_argument("--roll-threshold", type=float, help="LandmarkDetector.roll_threshold in degrees (-1: never turn)")
    ap.add_argument("--out", help="folder for roll.json")
    args = ap.parse_args()
    if args.validation:
        from kdlandmarks.data.store import FaceStore
        from kdlandmarks.training.data import validation_records

        records, args.split = validation_records(FaceStore(args.validation), args.root, 0.05, 0), "validation"
    else:
        records = load_dataset("300w", args.root, args.split)
    records = records[: args.limit]
    detector = LandmarkDetector(args.model)
    detector.search_rotations = args.search_rotations
    if args.roll_passes is not None:
        detector.roll_passes = args.roll_passes
    if args.roll_threshold is not None:
        detector.roll_threshold = None if args.roll_threshold < 0 else math.radians(args.roll_threshold)
    rows = [score_roll(detector, records, float(a)) for a in args.rolls.split(",")]
    print(f"model {args.model or 'default'}, {args.split}, {len(records)} faces, whole photos, default detector, "
          f"roll threshold {detector.roll_threshold}, refining passes {detector.roll_passes}, "
          f"search rotations {detector.search_rotations}")
    print("| roll | NME (faces found) | misses |")
    print("|---|---|---|")
    for row in rows:
        print(f"| {row['roll']:g} deg | {row['nme']:.2f} | {row['misses']} of {row['faces']} |")
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out) / "roll.json", {"split": args.split, "model": args.model, "rows": rows})


if __name__ == "__main__":
    main()
