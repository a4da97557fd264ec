"""Detection rate of the face detectors on annotated faces (default: 300-W LFPW test set, 224 faces).

A face counts as detected when one of the boxes matches it (detection.face_matches): IoU with the
landmark extent box > 0.5, or >= 75% of the landmarks inside a box at most twice the extent's side.
Also printed: top-1 (the highest-scoring box is the annotated face), extra boxes per image (other
faces or false positives), time per image, and how close the calibrated crop (DEFAULT_CALIBRATIONS)
comes to the ground-truth crop (centre error as a fraction of the crop side; side ratio).
Usage: python3 benchmarks/detection_rate.py [--root ../shared/data/300w] [--split lfpw/testset]
       [--detector NAME ...]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kdlandmarks.data.crop import DEFAULT_MARGIN
from kdlandmarks.data.datasets.w300 import read_300w
from kdlandmarks.inference.calibration import calibration_errors, detector_pairs
from kdlandmarks.inference.detection import available_detectors, create_detector, detector_status
from kdlandmarks.inference.calibration import default_calibration


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="../shared/data/300w")
    ap.add_argument("--split", default="lfpw/testset")
    ap.add_argument("--detector", action="append", help="detector name (repeatable); default: all installed")
    args = ap.parse_args()
    records = read_300w(args.root, args.split)
    for name, reason in detector_status().items():
        if reason is not None:
            print(f"{name}: not installed ({reason})")
    for name in args.detector or available_detectors():
        detector = create_detector(name)
        t0 = time.perf_counter()
        boxes, landmarks, s = detector_pairs(detector, records)
        per_image = (time.perf_counter() - t0) / max(1, s["faces"]) * 1000
        n = s["faces"] - s["unreadable"]
        print(f"{name}: detected {s['matched']}/{n} = {100 * s['matched'] / max(n, 1):.1f}%  "
              f"top-1 {100 * s['top1'] / max(n, 1):.1f}%  extra boxes/image {(s['detections'] - s['matched']) / max(n, 1):.2f}  "
              f"{per_image:.0f} ms/image (incl. reading)")
        cal = default_calibration(name, DEFAULT_MARGIN)
        if cal is not None and len(boxes):
            centre, ratio = calibration_errors(cal, boxes, landmarks, DEFAULT_MARGIN)
            print(f"  calibrated crop vs gt crop: centre error/side median {np.median(centre):.3f} "
                  f"p90 {np.percentile(centre, 90):.3f}; side ratio median {np.median(ratio):.3f} "
                  f"p10-p90 {np.percentile(ratio, 10):.3f}-{np.percentile(ratio, 90):.3f}")


if __name__ == "__main__":
    main()
