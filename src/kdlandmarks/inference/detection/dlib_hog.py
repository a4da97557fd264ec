"""dlib's HOG + linear-SVM frontal face detector (optional: `pip install dlib-bin`)."""
from __future__ import annotations

import importlib.util

import numpy as np

from kdlandmarks.data.images import check_image, shrink
from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detection.base import Detection


def dlib_unavailable() -> str | None:
    if importlib.util.find_spec("dlib") is None:
        return "needs dlib: pip install dlib-bin (prebuilt) or dlib"
    return None


class DlibDetector:
    """dlib's HOG + linear-SVM frontal face detector (dlib.get_frontal_face_detector: no model file).

    `upsample` 1 (dlib's examples) finds faces down to about 40 px (80 px at 0); images are shrunk to
    `max_size` (long side) first. Scores are the SVM margins (> `threshold`), not probabilities.
    """

    name = "dlib"

    def __init__(self, upsample: int = 1, threshold: float = 0.0, max_size: int | None = 1024) -> None:
        reason = dlib_unavailable()
        if reason:
            raise ConfigError(f"face detector 'dlib' {reason}")
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold, self.max_size = int(upsample), float(threshold), max_size

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        image, scale = shrink(check_image(image_rgb), self.max_size)
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample, self.threshold)
        out = []
        for r, score in zip(rects, scores):
            # dlib rectangles are inclusive pixel ranges: pixel edges left .. right + 1.
            edges = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float64)
            out.append(Detection(edges / scale - 0.5, float(score)))
        return out

    __call__ = detect


