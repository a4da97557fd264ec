"""Roll robustness of the default pipeline: NME against in-plane head rotation, on whole photos.

Each photo is rotated about its face's centre by the roll angle on a canvas grown so that nothing is cut
(cv2.warpAffine, bilinear, black border), its ground-truth landmarks with it; `LandmarkDetector().detect`
then runs on the whole rotated photo, face detector included, as a user calls it. A face counts as found
when one detected face's box matches the rotated ground truth (inference.detection.face_matches);
NME (inter-ocular, %) is over the faces found, and misses are counted apart.

Each row also counts the work per photo: face-detector runs on whole photos and on the small patches a
rolled face is found again on (LandmarkDetector.upright_patch), and face crops through the landmark network.
`--residual` also measures the roll the network sees in each found face's final crop (the true eye line's
roll less the crop's turn; detect() in its two public halves, crop_faces and faces_from_crops, which give
the same landmarks), as percentiles of its size.

Usage: python3 benchmarks/roll_robustness.py [--root ../shared/data/300w] [--split lfpw/testset]
       [--rolls 0,20,40,60,90] [--model kd-student-300w-lite] [--limit N] [--residual] [--out results/roll]
       [--upright-patch unsure=0.99 | --no-upright-patch] [--roll-threshold DEG] [--search-rotations]
Pick settings on validation faces (--validation ~/kdl-runs/stores/300w-train-128x1), report on LFPW test.
docs/rolled-faces.md has the figures.
"""
from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from kdlandmarks.data.crop import roll_angle
from kdlandmarks.data.datasets import load_dataset, read_image
from kdlandmarks.data.schemes import W300
from kdlandmarks.evaluation.metrics import per_image_nme
from kdlandmarks.fileio import atomic_write_json
from kdlandmarks.inference.detection import create_detector, face_matches
from kdlandmarks.inference.detection.rotations import DEFAULT_UPRIGHT_PATCH, UprightPatch
from kdlandmarks.inference.detector import LandmarkDetector
from kdlandmarks.inference.runtime import OnnxRegressor


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


def best_face(faces: list, truth: np.ndarray) -> int | None:
    """The index of the detected face that is the annotated one (its box matches), nearest first; None if none."""
    found = [i for i, f in enumerate(faces) if face_matches(f.box, truth)]
    if not found:
        return None
    centre = truth.mean(0)
    return min(found, key=lambda i: float(np.linalg.norm(faces[i].landmarks.mean(0) - centre)))


@dataclass
class CountedDetector:
    """A face detector that counts its runs, on whole photos and on patches (squares of `patch` pixels,
    LandmarkDetector.upright_patch) apart."""

    inner: object
    patch: int = DEFAULT_UPRIGHT_PATCH.size
    counts: dict = field(default_factory=lambda: {"photo_detections": 0, "patch_detections": 0})

    @property
    def name(self) -> str:
        return self.inner.name  # the wrapped detector's boxes: its calibration applies

    def detect(self, image: np.ndarray) -> list:
        patch = image.shape[0] == image.shape[1] == self.patch
        self.counts["patch_detections" if patch else "photo_detections"] += 1
        return self.inner.detect(image)


@dataclass
class CountedNetwork:
    """A landmark network ((B, 3, S, S) -> (B, 2N)) that counts the face crops it runs on."""

    inner: object
    counts: dict = field(default_factory=lambda: {"network_crops": 0})

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        self.counts["network_crops"] += len(batch)
        return self.inner(batch)


def score_roll(detector: LandmarkDetector, records: list, degrees: float, counters: list,
               residual: bool = False) -> dict:
    """One row of the table: NME over the faces found, misses, per-face NME, work per photo (`counters`: the
    detector's counted face detector and network) and (with `residual`) the roll left in the found faces'
    final crops."""
    for c in counters:
        c.counts = dict.fromkeys(c.counts, 0)
    preds, truths, per_face, left = [], [], {}, []
    for r in records:
        image, truth = rotated(read_image(r.image_path), r.landmarks, degrees)
        if residual:
            item = detector.crop_faces(image)
            faces = detector.faces_from_crops([item])[0]
        else:
            faces = detector.detect(image)
        k = best_face(faces, truth)
        per_face[r.name] = None
        if k is None:
            continue
        preds.append(faces[k].landmarks)
        truths.append(truth)
        per_face[r.name] = round(float(per_image_nme(faces[k].landmarks[None], truth[None], W300)[0] * 100), 3)
        if residual:
            true_roll = float(roll_angle(truth[36], truth[45]))
            left.append(math.degrees(abs(math.remainder(true_roll - item.transforms[k].angle, math.tau))))
    nme = float(per_image_nme(np.stack(preds), np.stack(truths), W300).mean() * 100) if preds else math.nan
    row = {"roll": degrees, "faces": len(records), "found": len(preds), "misses": len(records) - len(preds),
           "nme": round(nme, 2), "per_face": per_face}
    for c in counters:
        row.update({k: round(v / max(len(records), 1), 3) for k, v in c.counts.items()})
    if residual and left:
        row["residual_deg"] = {f"p{q}": round(float(np.percentile(left, q)), 1) for q in (50, 90, 95, 99, 100)}
    return row


def upright_patch(text: str) -> UprightPatch:
    """DEFAULT_UPRIGHT_PATCH with the fields "name=value,..." changed (angles in degrees)."""
    fields = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        if not hasattr(DEFAULT_UPRIGHT_PATCH, key.strip()):
            raise SystemExit(f"--upright-patch: no field {key.strip()!r} in UprightPatch")
        kind = type(getattr(DEFAULT_UPRIGHT_PATCH, key.strip()))
        fields[key.strip()] = math.radians(float(value)) if key.strip() in ("rolled", "upright") else kind(value)
    return replace(DEFAULT_UPRIGHT_PATCH, **fields)


def build_detector(args: argparse.Namespace) -> tuple[LandmarkDetector, list]:
    """The default pipeline with the options asked for, and the counters of its face detector and (on
    onnxruntime) its network: the same .onnx file, counted."""
    patch = upright_patch(args.upright_patch) if args.upright_patch else DEFAULT_UPRIGHT_PATCH
    counters: list = [CountedDetector(create_detector("auto"), patch.size)]
    detector = LandmarkDetector(args.model, detector=counters[0])
    if detector.backend == "onnx" and detector.model_path is not None:
        counters.append(CountedNetwork(OnnxRegressor(detector.model_path)))
        detector.set_network(counters[1])
    detector.search_rotations = args.search_rotations
    if args.roll_passes is not None:
        detector.roll_passes = args.roll_passes
    if args.roll_threshold is not None:
        detector.roll_threshold = None if args.roll_threshold < 0 else math.radians(args.roll_threshold)
    if args.no_upright_patch:
        detector.upright_patch = None
    else:
        detector.upright_patch = patch
    return detector, counters


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
    ap.add_argument("--no-upright-patch", action="store_true", help="LandmarkDetector.upright_patch = None: rolled "
                    "faces keep the keypoints the detector found them with")
    ap.add_argument("--upright-patch", metavar="FIELD=VALUE,...", help="LandmarkDetector.upright_patch with these "
                    "UprightPatch fields changed (rolled and upright in degrees), e.g. squat=1.0,unsure=0.99")
    ap.add_argument("--residual", action="store_true", help="also the roll left in each found face's final crop")
    ap.add_argument("--out", help="folder for roll.json")
    args = ap.parse_args()
    if args.validation:
        from kdlandmarks.data.store import FaceStore
        from kdlandmarks.training.data import validation_records

        records, args.split = validation_records(FaceStore(args.validation), args.root, 0.05, 0), "validation"
    else:
        records = load_dataset("300w", args.root, args.split)
    records = records[: args.limit]
    detector, counters = build_detector(args)
    rows = [score_roll(detector, records, float(a), counters, args.residual) for a in args.rolls.split(",")]
    print(f"model {args.model or 'default'}, {args.split}, {len(records)} faces, whole photos, default detector, "
          f"roll threshold {detector.roll_threshold}, refining passes {detector.roll_passes}, "
          f"upright patch {detector.upright_patch}, search rotations {detector.search_rotations}")
    print("| roll | NME (faces found) | misses | detector runs per photo: photo + patch | network crops per photo |"
          + (" residual roll p50 / p90 / p99 / max |" if args.residual else ""))
    print("|---|---|---|---|---|" + ("---|" if args.residual else ""))
    for row in rows:
        res = row.get("residual_deg", {})
        print(f"| {row['roll']:g} deg | {row['nme']:.2f} | {row['misses']} of {row['faces']} | "
              f"{row.get('photo_detections', 0):.2f} + {row.get('patch_detections', 0):.2f} | "
              f"{row.get('network_crops', math.nan):.2f} |"
              + (f" {res.get('p50')} / {res.get('p90')} / {res.get('p99')} / {res.get('p100')} |" if res else ""))
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        atomic_write_json(Path(args.out) / "roll.json", {"split": args.split, "model": args.model, "rows": rows})


if __name__ == "__main__":
    main()
