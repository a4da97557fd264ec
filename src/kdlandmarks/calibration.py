"""Box-to-crop calibration of a face detector, measured on annotated faces: which of its detections is the
annotated face, the calibration (crop.BoxCalibration.fit) that maps its boxes to the crops the models
were trained on, and how far calibrated crops land from the ground-truth crops. Tooling for
benchmarks/calibrate_detector.py, benchmarks/detection_rate.py and the tests; inference only reads the
resulting calibrations (detection.DEFAULT_CALIBRATIONS, ModelInfo.box_calibrations).
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from .crop import DEFAULT_MARGIN, BoxCalibration
from .detection import as_detector, create_detector, match_detection
from .errors import DataError


def detector_pairs(detector: Any, records: Iterable[Any], progress: bool = False
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Run a detector on annotated faces (FaceRecords) and pair each found face's box with its landmarks.

    Returns boxes (K, 4), landmarks (K, N, 2) and counts: faces, matched, unreadable, detections
    (all boxes returned), top1 (faces whose highest-scoring box is the annotated one).
    """
    det = create_detector(detector) if isinstance(detector, str) else as_detector(detector)
    records = list(records)
    boxes, landmarks = [], []
    stats = {"faces": len(records), "matched": 0, "unreadable": 0, "detections": 0, "top1": 0}
    items: Iterable[Any] = records
    if progress:
        from tqdm import tqdm

        items = tqdm(records, desc=f"detecting ({det.name})", unit="face")
    for rec in items:
        try:
            image = rec.load_image()
        except DataError:
            stats["unreadable"] += 1
            continue
        dets = det.detect(image)
        stats["detections"] += len(dets)
        idx = match_detection(dets, rec.landmarks)
        if idx is not None:
            boxes.append(dets[idx].box)
            landmarks.append(rec.landmarks)
            best = max(range(len(dets)), key=lambda i: (dets[i].score, _area(dets[i].box)))
            stats["top1"] += int(best == idx)
    stats["matched"] = len(boxes)
    if not boxes:
        return np.zeros((0, 4)), np.zeros((0, 0, 2)), stats
    return np.stack(boxes), np.stack(landmarks), stats


def _area(box: np.ndarray) -> float:
    return float((box[2] - box[0]) * (box[3] - box[1]))


def calibrate_detector(detector: Any, records: Iterable[Any], margin: float = DEFAULT_MARGIN,
                       report: dict[str, Any] | None = None, progress: bool = False) -> BoxCalibration:
    """The box-to-crop calibration of `detector` on annotated faces (FaceRecords).

    Each face's matching detection (see `face_matches`) pairs with its landmarks; BoxCalibration.fit
    takes medians over the pairs. `report`, when given, receives the counts of `detector_pairs`.
    """
    boxes, landmarks, stats = detector_pairs(detector, records, progress)
    if report is not None:
        report.update(stats)
    if not len(boxes):
        raise DataError(f"the face detector found none of the {stats['faces']} annotated faces")
    return BoxCalibration.fit(boxes, landmarks, margin)


def calibration_errors(calibration: BoxCalibration, boxes: np.ndarray, landmarks: np.ndarray,
                       margin: float = DEFAULT_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """How far calibrated box crops are from the gt crops: centre distance / gt side, and side / gt side."""
    from .crop import square_from_landmarks

    centre, ratio = [], []
    for box, pts in zip(np.asarray(boxes), np.asarray(landmarks)):
        cx, cy, side = calibration.square(box)
        gx, gy, gside = square_from_landmarks(pts, margin)
        centre.append(math.hypot(cx - gx, cy - gy) / gside)
        ratio.append(side / gside)
    return np.asarray(centre), np.asarray(ratio)
