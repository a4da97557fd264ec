"""Face crops: a square window around a face box or the landmark extent, resized to the network input.

A crop is an affine map (scale + translation, or a full similarity after augmentation) from image
pixel centres to crop pixel centres, kept with its exact inverse so predictions map back to the image.
A crop may turn with the face: `angle` is the face's roll (the angle of its eye line in the image, radians,
y down), and the crop rotates by -angle about its centre so that the network sees the face upright.
Pixel-centre convention: pixel i covers [i - 0.5, i + 0.5], so an image W wide spans [-0.5, W - 0.5].

Crop protocols (evaluation.EVAL_PROTOCOLS, named in every evaluation result):
- ``gt``: the ground-truth landmark extent plus a margin (the paper's test protocol, optimistic).
- ``box``: the dataset's own face box (COFW, WFLW), through the same box-to-crop calibration a detector uses.
- ``detector``: a face detector's box mapped to the crop the model was trained on (see detection.py).
"""
from __future__ import annotations

import math
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

    def square(self, box: np.ndarray, angle: float = 0.0) -> tuple[float, float, float]:
        """Centre and side of the crop for `box`. `angle`: the face's roll; the shift (dx, dy) is taken in the
        face's own frame (a detector's box around a rolled face keeps its size, measured on RetinaFace)."""
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        side = float(np.sqrt(max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)))
        c, s = math.cos(angle), math.sin(angle)
        shift_x, shift_y = (c * self.dx - s * self.dy) * side, (s * self.dx + c * self.dy) * side
        return (x0 + x1) / 2 + shift_x, (y0 + y1) / 2 + shift_y, self.scale * side

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
    def from_square(cx: float, cy: float, side: float, size: int, angle: float = 0.0) -> "CropTransform":
        """The square of `side` image pixels centred on (cx, cy), turned by `angle` (the face's roll), sampled
        at size x size: crop = size / side * R(-angle) (p - centre) + (size - 1) / 2."""
        if not np.isfinite([cx, cy, side, angle]).all() or side <= 0:
            raise DataError(f"invalid crop window centre=({cx}, {cy}) side={side}")
        s = size / side
        c, si = math.cos(angle) * s, math.sin(angle) * s
        shift = (size - 1) / 2
        return CropTransform(np.array([[c, si, shift - c * cx - si * cy], [-si, c, shift + si * cx - c * cy]]), size)

    @property
    def scale(self) -> float:
        """Crop pixels per image pixel."""
        return float(math.hypot(self.matrix[0, 0], self.matrix[1, 0]))

    @property
    def angle(self) -> float:
        """The roll the crop turns away (radians; 0 for an upright crop)."""
        return float(math.atan2(self.matrix[0, 1], self.matrix[0, 0]))

    @property
    def square(self) -> tuple[float, float, float]:
        """The image square the crop samples: its centre (x, y) and side, in image pixels (before its turn)."""
        centre = self.to_image(np.full((1, 2), (self.size - 1) / 2))[0]
        return float(centre[0]), float(centre[1]), float(self.size / self.scale)

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

    def warp(self, image: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Cut the crop out of an RGB image; outside the image is filled by edge replication.

        Shrinking crops are area-filtered; only the part of the image the crop reads (its window plus
        the filter's reach) is resampled, so the cost does not grow with the photo. `out`: an optional
        (size, size, C) array of the image's dtype to write the crop into.
        """
        if self.scale >= 1.0:  # bilinear only reads the pixels it needs, whatever the image size
            return cv2.warpAffine(image, self.matrix, (self.size, self.size), dst=out, flags=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_REPLICATE)
        # warpAffine has no area filter: shrink with resize first, but only the region the crop reads. The
        # region starts on a bin edge of shrinking the whole image, and shrinks by the same factor, so that
        # its bins are the whole image's: the crop does not depend on how much photo lies around the face.
        factor = self.scale
        height, width = image.shape[:2]
        scale_x, scale_y = max(1, round(width * factor)) / width, max(1, round(height * factor)) / height
        (x0, y0), (x1, y1) = self._source_region(width, height, reach=2.0 / factor + 2.0)
        x0, y0 = _on_area_grid(x0, scale_x), _on_area_grid(y0, scale_y)
        # fx, fy rather than an output size: the bins keep the whole image's width exactly
        small = cv2.resize(image[y0:y1, x0:x1], None, fx=scale_x, fy=scale_y, interpolation=cv2.INTER_AREA)
        # shrunk pixel j's centre is image x = x0 + (j + 0.5) / scale_x - 0.5
        pre = np.array([[1 / scale_x, 0, x0 + 0.5 / scale_x - 0.5], [0, 1 / scale_y, y0 + 0.5 / scale_y - 0.5],
                        [0, 0, 1]])
        m = np.vstack([self.matrix, [0, 0, 1]]) @ pre
        return cv2.warpAffine(small, m[:2], (self.size, self.size), dst=out, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)

    def _source_region(self, width: int, height: int, reach: float) -> tuple[tuple[int, int], tuple[int, int]]:
        """The integer pixel rectangle [x0, x1) x [y0, y1) of a width x height image that the crop's pixels
        come from, grown by `reach` image pixels each way and clipped to the image (never empty)."""
        edge = self.size - 0.5
        corners = self.to_image(np.array([[-0.5, -0.5], [edge, -0.5], [-0.5, edge], [edge, edge]]))
        lo = np.floor(corners.min(axis=0) - reach)
        hi = np.ceil(corners.max(axis=0) + reach) + 1
        limit = np.array([width, height])
        lo = np.clip(lo, 0, limit - 1).astype(int)
        hi = np.clip(hi, lo + 1, limit).astype(int)
        return (int(lo[0]), int(lo[1])), (int(hi[0]), int(hi[1]))

    def scaled(self, factor: float, size: int) -> "CropTransform":
        """The same window grown about its centre by `factor`, sampled at `size` pixels."""
        cx, cy, side = self.square
        return CropTransform.from_square(cx, cy, side * factor, size, self.angle)


AREA_GRID_TOLERANCE = 0.02  # shrunk pixels a region's start may lie off a bin edge (the crop moves by at most that)


def _on_area_grid(start: int, scale: float) -> int:
    """The last pixel at or before `start` within AREA_GRID_TOLERANCE of a bin edge of the area filter that
    shrinks the image by `scale` (pixel 0 always is one; typically one lies within 1 / AREA_GRID_TOLERANCE
    shrunk pixels): a region that starts there has the whole image's bins."""
    near = start - int(np.ceil(2 / (AREA_GRID_TOLERANCE * scale)))  # where one almost always is
    for stop in (max(near, -1), -1):
        starts = np.arange(start, stop, -1)
        close = np.flatnonzero(np.abs(starts * scale - np.round(starts * scale)) <= AREA_GRID_TOLERANCE)
        if close.size:
            return int(starts[close[0]])
    return 0


def landmark_box(landmarks: np.ndarray) -> np.ndarray:
    pts = np.asarray(landmarks, dtype=np.float64)
    return np.array([pts[:, 0].min(), pts[:, 1].min(), pts[:, 0].max(), pts[:, 1].max()])


def square_from_landmarks(landmarks: np.ndarray, margin: float = DEFAULT_MARGIN,
                          angle: float = 0.0) -> tuple[float, float, float]:
    """Centre and side of the square around the landmark extent, grown by `margin` of its side each way;
    with `angle`, the extent is taken in the frame turned by the face's roll (the face upright)."""
    pts = np.asarray(landmarks, dtype=np.float64)
    if angle == 0.0:
        x0, y0, x1, y1 = landmark_box(pts)
        return (x0 + x1) / 2, (y0 + y1) / 2, max(x1 - x0, y1 - y0) * (1 + 2 * margin)
    c, s = math.cos(angle), math.sin(angle)
    upright = pts @ np.array([[c, -s], [s, c]])  # each point turned by -angle
    x0, y0, x1, y1 = landmark_box(upright)
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    return c * mx - s * my, s * mx + c * my, max(x1 - x0, y1 - y0) * (1 + 2 * margin)


def gt_crop(landmarks: np.ndarray, size: int, margin: float = DEFAULT_MARGIN, angle: float = 0.0) -> CropTransform:
    """The paper's test protocol: a crop from the ground-truth landmarks (square, with a margin), turned by
    the face's roll `angle` where one is given."""
    return CropTransform.from_square(*square_from_landmarks(landmarks, margin, angle), size, angle)


def box_crop(box: np.ndarray, size: int, calibration: BoxCalibration, angle: float = 0.0) -> CropTransform:
    """A crop from a face box (a detector's or a dataset's) through a box-to-crop calibration, turned by
    the face's roll `angle` (e.g. from the detector's eye keypoints) where one is given."""
    return CropTransform.from_square(*calibration.square(box, angle), size, angle)


def roll_angle(left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The roll (radians, y down) of faces whose eye on the image's left is at `left` and the other at
    `right`, as (..., 2) arrays: 0 for an upright face, +pi/2 for one lying with its top to the right."""
    d = np.asarray(right, dtype=np.float64) - np.asarray(left, dtype=np.float64)
    return np.arctan2(d[..., 1], d[..., 0])


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
