"""What every face detector shares: the `Detection` result, the `FaceDetector` protocol, box maths
(IoU, NMS, matching a box to annotated landmarks), box checks, and wrapping a plain callable."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, Sequence, runtime_checkable

import numpy as np

from kdlandmarks.data.crop import landmark_box
from kdlandmarks.errors import ConfigError, DataError


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) in image pixels, a confidence and, where the detector gives
    them, five keypoints (eyes, nose tip, mouth corners) as a (5, 2) array."""

    box: np.ndarray
    score: float = 1.0
    keypoints: np.ndarray | None = field(default=None, compare=False)


@runtime_checkable
class FaceDetector(Protocol):
    name: str

    def detect(self, image_rgb: np.ndarray) -> list[Detection]: ...



def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (K, 4) boxes."""
    b = np.asarray(box, dtype=np.float64)
    bs = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(b[2], bs[:, 2]) - np.maximum(b[0], bs[:, 0]), 0, None)
    ih = np.clip(np.minimum(b[3], bs[:, 3]) - np.maximum(b[1], bs[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # noqa: E731
    union = area(b) + area(bs) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest]) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def face_matches(box: np.ndarray, landmarks: np.ndarray, iou_threshold: float = 0.5,
                 inside_fraction: float = 0.75, max_side_ratio: float = 2.0) -> bool:
    """Whether a detection box is the annotated face: the detection-rate criterion.

    A box matches when its IoU with the landmark extent box exceeds `iou_threshold`, or when it holds
    at least `inside_fraction` of the landmarks and is not more than `max_side_ratio` times the
    extent's larger side (so a box around the whole picture does not count). The second clause admits
    detectors whose boxes are much taller than the 68-point extent (forehead included) or profiles.
    """
    box = np.asarray(box, dtype=np.float64)
    pts = np.asarray(landmarks, dtype=np.float64)
    ref = landmark_box(pts)
    if box_iou(box, ref)[0] > iou_threshold:
        return True
    inside = ((pts[:, 0] >= box[0]) & (pts[:, 0] <= box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] <= box[3])).mean()
    side = math.sqrt(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
    ref_side = max(ref[2] - ref[0], ref[3] - ref[1], 1e-6)
    return bool(inside >= inside_fraction and side <= max_side_ratio * ref_side)


def match_detection(detections: Sequence[Detection], landmarks: np.ndarray) -> int | None:
    """Index of the detection that is the annotated face (best IoU among those that match), or None."""
    best, best_iou = None, -1.0
    ref = landmark_box(landmarks)
    for i, det in enumerate(detections):
        if face_matches(det.box, landmarks):
            iou = float(box_iou(ref, det.box)[0])
            if iou > best_iou:
                best, best_iou = i, iou
    return best


MAX_BOX_TO_IMAGE = 10.0  # a given box's side may be at most this many times the image's long side


def check_boxes(boxes: Any, what: str = "boxes",
                image_size: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) or (K, 5) boxes (x0, y0, x1, y1[, score]) -> float64 (K, 4) boxes and (K,) scores.

    With `image_size` (width, height), a box that lies wholly outside the image, or whose side is more
    than MAX_BOX_TO_IMAGE times the image's long side, is refused by its index: it holds no face of it."""
    shape_error = f"{what}: expected (K, 4) boxes x0, y0, x1, y1 (or (K, 5) with scores)"
    try:
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.ndim == 1 and arr.size in (4, 5):
            arr = arr[None]
        elif arr.size == 0:
            arr = np.zeros((0, 4))
    except ValueError:
        # Rows of 4 and 5 values mixed: a missing score is 1.0.
        try:
            rows = [np.asarray(r, dtype=np.float64).ravel() for r in boxes]
        except (TypeError, ValueError):
            raise DataError(f"{shape_error}, got non-numeric values") from None
        if any(r.size not in (4, 5) for r in rows):
            raise DataError(f"{shape_error}, got rows of {sorted({r.size for r in rows})} values") from None
        arr = np.array([np.append(r, 1.0) if r.size == 4 else r for r in rows])
    except TypeError:
        raise DataError(f"{shape_error}, got {type(boxes).__name__}") from None
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise DataError(f"{shape_error}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{what}: boxes contain NaN or infinite values")
    if ((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])).any():
        raise DataError(f"{what}: every box needs x1 > x0 and y1 > y0")
    if image_size is not None:
        _check_boxes_in_image(arr[:, :4], what, *image_size)
    scores = arr[:, 4].copy() if arr.shape[1] == 5 else np.ones(len(arr))
    return arr[:, :4].copy(), scores


def _check_boxes_in_image(boxes: np.ndarray, what: str, width: int, height: int) -> None:
    # pixel centres run from 0 to width - 1: a box must reach into [-0.5, width - 0.5] x [-0.5, height - 0.5]
    outside = (boxes[:, 2] < -0.5) | (boxes[:, 0] > width - 0.5) | (boxes[:, 3] < -0.5) | (boxes[:, 1] > height - 0.5)
    huge = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) > MAX_BOX_TO_IMAGE * max(width, height)
    for i in np.flatnonzero(outside | huge):
        box = ",".join(f"{v:g}" for v in boxes[i])
        why = (f"lies wholly outside the {width}x{height} image" if outside[i] else
               f"is more than {MAX_BOX_TO_IMAGE:g} times the size of the {width}x{height} image")
        raise DataError(f"{what}: box {i} ({box}) {why}")



def _to_detections(result: Any, what: str) -> list[Detection]:
    if result is None:
        return []
    if isinstance(result, np.ndarray):
        result = list(result) if result.size else []
    out = []
    for item in result:
        if isinstance(item, Detection):
            out.append(item)
            continue
        if isinstance(item, dict):
            box, score = item.get("box"), item.get("score", 1.0)
        else:
            vals = np.asarray(item, dtype=np.float64).ravel()
            box, score = vals[:4], (vals[4] if vals.size == 5 else 1.0)
            if vals.size not in (4, 5):
                raise DataError(f"{what}: a detection must be 4 box values (or 5 with a score), got {vals.size}")
        boxes, _ = check_boxes([list(np.asarray(box, dtype=np.float64).ravel())], what)
        out.append(Detection(boxes[0], float(score)))
    return out


class CallableDetector:
    """Wraps any callable image_rgb -> boxes ((K, 4)/(K, 5) array, Detections, or dicts with 'box')."""

    def __init__(self, fn: Callable[[np.ndarray], Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return _to_detections(self.fn(image_rgb), f"face detector {self.name!r}")

    __call__ = detect


def as_detector(obj: Any, name: str | None = None) -> FaceDetector:
    """A FaceDetector from a detector object or any callable returning boxes."""
    if hasattr(obj, "detect") and callable(obj.detect) and isinstance(getattr(obj, "name", None), str) \
            and name in (None, obj.name):
        return obj
    fn = obj.detect if hasattr(obj, "detect") and callable(obj.detect) else obj
    if not callable(fn):
        raise ConfigError(f"face detector must be a name or a callable, got {type(obj).__name__}")
    return CallableDetector(fn, name or getattr(obj, "name", None))


