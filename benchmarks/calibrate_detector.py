"""Fit each face detector's box-to-crop calibration on 300-W training faces and print dx, dy, scale.

The printed values are what inference.calibration.DEFAULT_CALIBRATIONS holds (fitted at the default crop margin).
Detectors: retinaface, haar, dlib, mediapipe, mediapipe-full (each where installed: dlib and mediapipe
are optional and skipped with the reason when missing), and ``landmarks``, the box convention of a tight
box around the annotated landmarks (fitted from the annotations alone, no detector).
Usage: python3 benchmarks/calibrate_detector.py [--root ../shared/data/300w] [--split train]
       [--detector retinaface --detector landmarks ...] [--every 1] [--margin 0.1]
MediaPipe's BlazeFace is bundled only by mediapipe <= 0.10.21 (numpy < 2), so run it from a separate
virtual environment: python3 -m venv /tmp/mp && /tmp/mp/bin/pip install --no-deps 'mediapipe==0.10.21' &&
/tmp/mp/bin/pip install absl-py attrs flatbuffers 'numpy<2' 'protobuf>=4.25.3,<5' 'opencv-python-headless<4.11'
'matplotlib<3.10' tqdm && PYTHONPATH=src /tmp/mp/bin/python benchmarks/calibrate_detector.py --detector mediapipe
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kdlandmarks.data.crop import DEFAULT_MARGIN, BoxCalibration, landmark_box
from kdlandmarks.data.datasets.w300 import read_300w
from kdlandmarks.inference.calibration import calibration_errors, detector_pairs
from kdlandmarks.inference.detection import DETECTORS, create_detector, detector_status

LANDMARKS = "landmarks"  # not a detector: the tight box around the annotated landmarks
VERSIONED = {"haar": "cv2", "dlib": "dlib", "mediapipe": "mediapipe", "mediapipe-full": "mediapipe"}


def landmark_pairs(records: list) -> tuple[np.ndarray, np.ndarray, dict]:
    """The `landmarks` convention: each face's tight landmark box, paired with its landmarks."""
    landmarks = np.stack([r.landmarks for r in records])
    boxes = np.stack([landmark_box(p) for p in landmarks])
    return boxes, landmarks, {"faces": len(records), "matched": len(records)}


def version_of(name: str) -> str:
    module = VERSIONED.get(name)
    if module is None:
        return ""
    try:
        return f", {module} {__import__(module).__version__}"
    except (ImportError, AttributeError):
        return ""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--split", default="train")
    ap.add_argument("--detector", action="append",
                    help=f"detector name or {LANDMARKS} (repeatable); default: every registered one, skipping "
                         "those not installed, and landmarks")
    ap.add_argument("--every", type=int, default=1, help="use every k-th face (faster)")
    ap.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    args = ap.parse_args()
    records = read_300w(args.root, args.split)[::args.every]
    status = detector_status()
    for name in args.detector or [*DETECTORS, LANDMARKS]:
        if status.get(name) is not None:
            print(f"{name}: skipped, not installed ({status[name]})")
            continue
        t0 = time.perf_counter()
        if name == LANDMARKS:
            boxes, landmarks, stats = landmark_pairs(records)
        else:
            boxes, landmarks, stats = detector_pairs(create_detector(name), records, progress=True)
        if not len(boxes):
            print(f"{name}: found none of the {stats['faces']} faces")
            continue
        cal = BoxCalibration.fit(boxes, landmarks, args.margin)
        centre, ratio = calibration_errors(cal, boxes, landmarks, args.margin)
        print(f"{name}: {stats['matched']}/{stats['faces']} faces matched on 300-W {args.split} "
              f"({time.perf_counter() - t0:.0f} s{version_of(name)}), margin {args.margin}")
        print(f"  dx={cal.dx:.4f} dy={cal.dy:.4f} scale={cal.scale:.4f}")
        print(f"  calibrated crop vs gt crop: centre error / side median {np.median(centre):.4f} "
              f"p90 {np.percentile(centre, 90):.4f}; side ratio p10-p90 "
              f"{np.percentile(ratio, 10):.3f}-{np.percentile(ratio, 90):.3f}")
        print(f'  DEFAULT_CALIBRATIONS["{name}"] = BoxCalibration(dx={cal.dx:.4f}, dy={cal.dy:.4f}, scale={cal.scale:.4f})')


if __name__ == "__main__":
    main()
