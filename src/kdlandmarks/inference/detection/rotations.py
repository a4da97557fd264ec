"""Faces rolled past a detector's range: search quarter-turned copies of the image when the upright one
holds none.

Face detectors are trained on roughly upright faces (RetinaFace finds faces to about 60 degrees of roll). A
quarter turn (np.rot90) is exact and costs no interpolation, so a face rolled 90 or 180 degrees is found on
one of the turned copies, and its box and keypoints map back exactly. The keypoints keep their meaning (left
eye, right eye, nose, mouth corners of the face), so the crop that follows can turn the face upright.
"""
from __future__ import annotations

import numpy as np

from kdlandmarks.inference.detection.base import Detection, FaceDetector

QUARTER_TURNS = (1, 3, 2)  # counter-clockwise quarter turns tried in order: 90, 270 (-90), 180 degrees


def turned_back(points: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """(..., 2) pixel centres in np.rot90(image, turns) -> the same points in the `width` x `height` image."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[..., 0], p[..., 1]
    turns %= 4
    if turns == 1:  # rot90 once: rotated (x, y) came from original (width - 1 - y, x)
        return np.stack([width - 1 - y, x], axis=-1)
    if turns == 2:
        return np.stack([width - 1 - x, height - 1 - y], axis=-1)
    if turns == 3:
        return np.stack([y, height - 1 - x], axis=-1)
    return p.copy()


def turned_box_back(box: np.ndarray, turns: int, width: int, height: int) -> np.ndarray:
    """A box (x0, y0, x1, y1) in np.rot90(image, turns) -> the same box in the `width` x `height` image."""
    corners = np.array([[box[0], box[1]], [box[2], box[3]]], dtype=np.float64)
    back = turned_back(corners, turns, width, height)
    return np.concatenate([back.min(axis=0), back.max(axis=0)])


def turned_detection_back(detection: Detection, turns: int, width: int, height: int) -> Detection:
    """A detection made on np.rot90(image, turns) -> the same face in the `width` x `height` image."""
    keypoints = detection.keypoints
    return Detection(turned_box_back(detection.box, turns, width, height), detection.score,
                     None if keypoints is None else turned_back(keypoints, turns, width, height))


class RotationSearch:
    """A detector that also tries quarter-turned copies of an image in which `detector` finds no face.

    Images with a face found upright cost nothing extra; any other image costs three more detector runs."""

    def __init__(self, detector: FaceDetector, turns: tuple[int, ...] = QUARTER_TURNS) -> None:
        self.detector = detector
        self.name = detector.name  # its boxes are the wrapped detector's: the same calibration applies
        self.turns = tuple(turns)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        found = self.detector.detect(image_rgb)
        if found:
            return found
        height, width = image_rgb.shape[:2]
        best_turns, best = 0, []
        for turns in self.turns:
            found = self.detector.detect(np.ascontiguousarray(np.rot90(image_rgb, turns)))
            # every turn is tried: a detector may find a face upside down too, with its keypoints misread as
            # upright; the turn that stands it up scores higher
            if found and (not best or max(d.score for d in found) > max(d.score for d in best)):
                best_turns, best = turns, found
        return [turned_detection_back(d, best_turns, width, height) for d in best]

    __call__ = detect
