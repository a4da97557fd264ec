"""Fit each face detector's box-to-crop calibration on 300-W training faces and print dx, dy, scale.

The printed values are what detection.DEFAULT_CALIBRATIONS holds (fitted at the default crop margin).
Usage: python3 benchmarks/calibrate_detector.py [--root /work/shared/data/300w] [--split train]
       [--detector retinaface --detector haar] [--every 1] [--margin 0.1]
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from kdlandmarks.crop import DEFAULT_MARGIN, BoxCalibration
from kdlandmarks.datasets.w300 import read_300w
from kdlandmarks.detection import available_detectors, calibration_errors, create_detector, detector_pairs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="/work/shared/data/300w")
    ap.add_argument("--split", default="train")
    ap.add_argument("--detector", action="append", help="detector name (repeatable); default: all installed")
    ap.add_argument("--every", type=int, default=1, help="use every k-th face (faster)")
    ap.add_argument("--margin", type=float, default=DEFAULT_MARGIN)
    args = ap.parse_args()
    records = read_300w(args.root, args.split)[::args.every]
    for name in args.detector or available_detectors():
        t0 = time.perf_counter()
        boxes, landmarks, stats = detector_pairs(create_detector(name), records, progress=True)
        cal = BoxCalibration.fit(boxes, landmarks, args.margin)
        centre, ratio = calibration_errors(cal, boxes, landmarks, args.margin)
        print(f"{name}: {stats['matched']}/{stats['faces']} faces matched on 300-W {args.split} "
              f"({time.perf_counter() - t0:.0f} s), margin {args.margin}")
        print(f"  dx={cal.dx:.4f} dy={cal.dy:.4f} scale={cal.scale:.4f}")
        print(f"  calibrated crop vs gt crop: centre error / side median {np.median(centre):.4f} "
              f"p90 {np.percentile(centre, 90):.4f}; side ratio p10-p90 "
              f"{np.percentile(ratio, 10):.3f}-{np.percentile(ratio, 90):.3f}")
        print(f'  DEFAULT_CALIBRATIONS["{name}"] = BoxCalibration(dx={cal.dx:.4f}, dy={cal.dy:.4f}, scale={cal.scale:.4f})')


if __name__ == "__main__":
    main()
