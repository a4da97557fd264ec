"""The one record every dataset reader returns, plus image loading and annotation checks."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..errors import DataError


@dataclass
class FaceRecord:
    """One annotated face.

    landmarks: float64 (N, 2), 0-based pixel centres in the original image.
    box: optional (4,) x0, y0, x1, y1 face box in the same frame (a dataset's or a detector's).
    occlusion: optional (N,) bool, True where a point is occluded (COFW).
    attributes: optional flags (WFLW: pose, expression, illumination, make-up, occlusion, blur).
    image: RGB uint8 pixels when the dataset embeds them (COFW); otherwise read from image_path.
    """

    name: str
    landmarks: np.ndarray
    image_path: Path | None = None
    image: np.ndarray | None = None
    box: np.ndarray | None = None
    occlusion: np.ndarray | None = None
    attributes: dict[str, int] = field(default_factory=dict)
    subset: str = ""

    def load_image(self) -> np.ndarray:
        if self.image is not None:
            return self.image
        if self.image_path is None:
            raise DataError(f"{self.name}: record has neither pixels nor an image path")
        return read_image(self.image_path)


def read_image(path: str | Path) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); DataError if it is missing or cannot be decoded."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def check_landmarks(landmarks: np.ndarray, num_points: int | None, source: str,
                    image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Validate an (N, 2) landmark array; return it as float64.

    image_size is (width, height). Points a little outside the image are normal (occluded jaw lines),
    so only a set with more than half of its points outside the frame is rejected.
    """
    arr = np.asarray(landmarks, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"{source}: landmarks must be an (N, 2) array, got shape {arr.shape}")
    if num_points is not None and arr.shape[0] != num_points:
        raise DataError(f"{source}: expected {num_points} points, found {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise DataError(f"{source}: landmarks contain NaN or infinite values")
    if image_size is not None:
        w, h = image_size
        outside = (arr[:, 0] < -0.5) | (arr[:, 0] > w - 0.5) | (arr[:, 1] < -0.5) | (arr[:, 1] > h - 0.5)
        if outside.mean() > 0.5:
            raise DataError(f"{source}: {int(outside.sum())} of {len(arr)} landmarks lie outside the {w}x{h} image")
    return arr
