"""Face crops: a square window around a face box or the landmark extent, resized to the network input.

A crop is an affine map (scale + translation, or a full similarity after augmentation) from image
pixel centres to crop pixel centres, kept with its exact inverse so predictions map back to the image.
Pixel-centre convention: pixel i covers [i - 0.5, i + 0.5], so an image W wide spans [-0.5, W - 0.5].

Crop protocols (evaluation.EVAL_PROTOCOLS, named in every evaluation result):
- ``gt``: the ground-truth landmark extent plus a margin (the paper's test protocol, optimistic).
- ``box``: the dataset's own face box (COFW, WFLW), through the same box-to-crop calibration a detector uses.
- ``detector``: a face detector's box mapped to the crop the model was trained on (see detection.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from kdlandmarks.errors import DataError

DEFAULT_MARGIN = 0.1


@dataclass(frozen=True)
class BoxCalibration:
    """Maps a face box to the ground-truth-protocol crop: centre shift and side, in units of the box side.

    crop centre = box centre + (dx, dy) * side_box, crop side = scale * side_box, side_box = sqrt(w*h).
    The identity calibration (0, 0, 1) crops the box itself.
    """

    dx: float = 0.0
    dy: float = 0.0
    scale: float = 1.0

    def square(self, box: np.ndarray) -> tuple[float, float, float]:
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        side = float(np.sqrt(max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)))
        return (x0 + x1) / 2 + self.dx * side, (y0 + y1) / 2 + self.dy * side, self.scale * side

    @staticmethod
    def fit(boxes: np.ndarray, landmarks: np.ndarray, margin: float = DEFAULT_MARGIN) -> "BoxCalibration":
        """The calibration that maps each box to its face's gt crop, as medians over many faces."""
        dxs, dys, scales = [], [], []
        for box, pts in zip(np.asarray(boxes), np.asarray(landmarks)):
            bx, by, bside = BoxCalibration().square(box)
            gx, gy, gside = square_from_landmarks(pts, margin)
            dxs.append((gx - bx) / bside)
            dys.append((gy - by) / bside)
            scales.append(gside / bside)
        if not scales:
            raise DataError("cannot calibrate a box mapping from zero faces")
        return BoxCalibration(float(np.median(dxs)), float(np.median(dys)), float(np.median(scales)))


@dataclass(frozen=True)
class CropTransform:
    """An affine map from image pixel centres to the pixel centres of a size x size crop."""

    matrix: np.ndarray  # (2, 3) float64
    size: int

    @staticmethod
    def from_square(cx: float, cy: float, side: float, size: int) -> "CropTransform":
        if not np.isfinite([cx, cy, side]).all() or side <= 0:
            raise DataError(f"invalid crop window centre=({cx}, {cy}) side={side}")
        s = size / side
        x0, y0 = cx - side / 2, cy - side / 2
        return CropTransform(np.array([[s, 0.0, -x0 * s - 0.5], [0.0, s, -y0 * s - 0.5]]), size)

    @property
    def inverse(self) -> np.ndarray:
        return cv2.invertAffineTransform(self.matrix)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        return pts @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_image(self, points: np.ndarray) -> np.ndarray:
        inv = self.inverse
        pts = np.asarray(points, dtype=np.float64)
        return pts @ inv[:, :2].T + inv[:, 2]

    def warp(self, image: np.ndarray) -> np.ndarray:
        """Cut the crop out of an RGB image; outside the image is filled by edge replication."""
        interp = cv2.INTER_AREA if self.matrix[0, 0] < 1.0 else cv2.INTER_LINEAR
        if interp == cv2.INTER_AREA:
            # warpAffine has no area filter: pre-shrink with resize, then warp the rest.
            factor = self.matrix[0, 0]
            h, w = image.shape[:2]
            # at least one pixel: a window far larger than the image would otherwise shrink it to nothing
            small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))),
                               interpolation=cv2.INTER_AREA)
            sx = small.shape[1] / image.shape[1]
            sy = small.shape[0] / image.shape[0]
            # small pixel u' relates to image pixel x by x = (u' + 0.5) / sx - 0.5
            pre = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
            m = np.vstack([self.matrix, [0, 0, 1]]) @ pre
            return cv2.warpAffine(small, m[:2], (self.size, self.size), flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        return cv2.warpAffine(image, self.matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def scaled(self, factor: float, size: int) -> "CropTransform":
        """The same window grown about its centre by `factor`, sampled at `size` pixels."""
        inv = self.inverse
        centre = inv @ np.array([(self.size - 1) / 2, (self.size - 1) / 2, 1.0])
        side = self.size / self.matrix[0, 0] * factor
        return CropTransform.from_square(centre[0], centre[1], side, size)


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def square_from_landmarks(landmarks: np.ndarray, margin: float = DEFAULT_MARGIN) -> tuple[float, float, float]:
    """Centre and side of the square around the landmark extent, grown by `margin` of its side each way."""
    x0, y0, x1, y1 = landmark_box(landmarks)
    side = max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    return (x0 + x1) / 2, (y0 + y1) / 2, side


def gt_crop(landmarks: np.ndarray, size: int, margin: float = DEFAULT_MARGIN) -> CropTransform:
    """The paper's test protocol: a crop from the ground-truth landmarks (square, with a margin)."""
    return CropTransform.from_square(*square_from_landmarks(landmarks, margin), size)


def box_crop(box: np.ndarray, size: int, calibration: BoxCalibration) -> CropTransform:
    """A crop from a face box (a detector's or a dataset's) through a box-to-crop calibration."""
    return CropTransform.from_square(*calibration.square(box), size)


# A prepared store keeps each face with extra context (store crops of side store_size); the network's
# input is the centred square of side `window` store pixels scaled to input_size. These two functions are
# that map and its inverse on points (pixel centres); augment.BatchAugmenter.output_to_source builds the
# same map as a matrix (when no augmentation is drawn) to warp the pixels.

def window_to_input(points: np.ndarray, store_size: int, input_size: int, window: float) -> np.ndarray:
    """Store-crop pixels -> network-input pixels."""
    k = input_size / window
    return (np.asarray(points, dtype=np.float64) - (store_size - 1) / 2) * k + (input_size - 1) / 2


def input_to_window(points: np.ndarray, store_size: int, input_size: int, window: float) -> np.ndarray:
    """Network-input pixels -> store-crop pixels (the inverse of window_to_input)."""
    k = window / input_size
    return (np.asarray(points, dtype=np.float64) - (input_size - 1) / 2) * k + (store_size - 1) / 2
