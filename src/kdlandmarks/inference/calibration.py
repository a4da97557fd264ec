"""Box-to-crop calibrations: how a face detector's box (or a given box of a named convention) becomes the
crop a model was trained on.

- The shipped calibrations (`DEFAULT_CALIBRATIONS`, one per detector and box convention) and the one
  resolver every caller uses (`resolve_calibration`: the model file's own, else the shipped default at
  the model's margin, else the identity).
- Measuring a calibration on annotated faces (`calibrate_detector`, `calibration_errors`): which detection
  is the annotated face and how far calibrated crops land from the ground-truth crops. Tooling for
  benchmarks/calibrate_detector.py, benchmarks/detection_rate.py and the tests.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np

from kdlandmarks.data.crop import DEFAULT_MARGIN, BoxCalibration
from kdlandmarks.inference.detection import as_detector, create_detector, match_detection
from kdlandmarks.errors import ConfigError, DataError, ModelError


# Fitted by benchmarks/calibrate_detector.py on the 300-W training split (afw, helen/trainset,
# lfpw/trainset) at margin DEFAULT_MARGIN; `default_calibration` rescales them for other margins.
# Each detector's boxes are paired with the faces they match (face_matches); the counts are those faces.
# The names are also the box conventions ("box sources") that given boxes may be declared in.
DEFAULT_CALIBRATIONS: dict[str, BoxCalibration] = {
    "retinaface": BoxCalibration(dx=0.0019, dy=0.1501, scale=1.0901),  # 2012/2012 faces
    "haar": BoxCalibration(dx=0.0059, dy=0.1490, scale=1.0411),  # 1825/2012 faces (OpenCV 4.14)
    # dlib.get_frontal_face_detector(), upsample 1: 1916/2012 faces (dlib-bin 20.0.1). Its boxes are
    # tight (brows to chin), so the crop is larger than the box and a little lower.
    "dlib": BoxCalibration(dx=0.0026, dy=0.0901, scale=1.1845),
    # MediaPipe BlazeFace short range (mp.solutions.face_detection model_selection=0, the model of the
    # Tasks API's blaze_face_short_range.tflite; min score 0.5): 2012/2012 faces (mediapipe 0.10.21).
    "mediapipe": BoxCalibration(dx=-0.0024, dy=0.0575, scale=1.1514),
    # MediaPipe BlazeFace full range (model_selection=1), whose boxes are ~6 % larger: 1860/2012 faces.
    "mediapipe-full": BoxCalibration(dx=0.0031, dy=0.0975, scale=1.0829),
    # A tight box around the 68 landmarks (no detector): 2012/2012 faces. Exact up to the face's aspect
    # ratio: centre kept, side = (1 + 2 * margin) * max(w, h) vs sqrt(w * h) of the box (p10-p90 of the
    # crop side against the gt crop's: 0.957-1.021).
    "landmarks": BoxCalibration(dx=0.0, dy=0.0, scale=1.2311),
}
CALIBRATION_MARGIN = DEFAULT_MARGIN


def default_calibration(name: str, margin: float = DEFAULT_MARGIN) -> BoxCalibration | None:
    """The shipped calibration of a detector for a model trained at crop `margin`, or None if unknown."""
    cal = DEFAULT_CALIBRATIONS.get(name)
    if cal is None:
        return None
    # Only the crop side depends on the margin: side = extent * (1 + 2 * margin).
    factor = (1 + 2 * margin) / (1 + 2 * CALIBRATION_MARGIN)
    return BoxCalibration(cal.dx, cal.dy, cal.scale * factor)


def resolve_calibration(name: str | None, info: Any) -> BoxCalibration:
    """The box-to-crop calibration for boxes of the convention `name` under the model `info` (a ModelInfo):
    the model file's own (info.box_calibrations), else the shipped default rescaled to the model's crop
    margin, else the identity (a detector nobody calibrated: its boxes are cropped as they are)."""
    if name is None:
        return BoxCalibration()
    own = (info.box_calibrations or {}).get(name)
    if own is not None:
        try:
            return BoxCalibration(**own)
        except TypeError:
            raise ModelError(f"malformed box calibration for {name!r}: {own}") from None
    return default_calibration(name, info.crop_margin) or BoxCalibration()


def box_source_names(extra: Iterable[str] = ()) -> list[str]:
    """The named box conventions: the shipped calibrations' names, then `extra` (e.g. a model file's own)."""
    names = list(DEFAULT_CALIBRATIONS)
    return names + [n for n in extra if n not in names]


def check_box_source(name: Any, extra: Iterable[str] = ()) -> str:
    """`name` if it is a known box convention (`box_source_names(extra)`), else a one-line ConfigError."""
    known = box_source_names(extra)
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"unknown box source {name!r}: choose one of {', '.join(known)}")
    return name


# --------------------------------------------------------------------------------------------------
# Measuring a calibration on annotated faces (benchmarks and tests; inference never runs this)
# --------------------------------------------------------------------------------------------------

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
    from kdlandmarks.data.crop import square_from_landmarks

    centre, ratio = [], []
    for box, pts in zip(np.asarray(boxes), np.asarray(landmarks)):
        cx, cy, side = calibration.square(box)
        gx, gy, gside = square_from_landmarks(pts, margin)
        centre.append(math.hypot(cx - gx, cy - gy) / gside)
        ratio.append(side / gside)
    return np.asarray(centre), np.asarray(ratio)
