"""OpenCV's Viola-Jones frontal-face Haar cascade, where OpenCV still ships it (4.x)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlandmarks.data.images import check_image
from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detection.base import Detection


HAAR_FILE = "haarcascade_frontalface_default.xml"


def _haar_file() -> Path | None:
    try:
        import cv2
    except ImportError:
        return None
    dirs = [getattr(getattr(cv2, "data", None), "haarcascades", None),
            "/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades"]
    for d in dirs:
        if d and (Path(d) / HAAR_FILE).is_file():
            return Path(d) / HAAR_FILE
    return None


def haar_unavailable() -> str | None:
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        return (f"needs cv2.CascadeClassifier, which OpenCV {cv2.__version__} lacks: "
                "pip install 'opencv-python-headless<5' brings it")
    if _haar_file() is None:
        return f"needs {HAAR_FILE} (OpenCV 4.x wheels ship it in cv2.data; Debian: apt install opencv-data)"
    return None


class HaarDetector:
    """OpenCV's Viola-Jones frontal face cascade: always-installed fallback, frontal faces only, no score."""

    name = "haar"

    def __init__(self, cascade: str | Path | None = None, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: float = 0.05) -> None:
        import cv2

        reason = None if cascade is not None else haar_unavailable()
        if reason or not hasattr(cv2, "CascadeClassifier"):
            raise ConfigError(f"face detector 'haar' {reason or 'needs cv2.CascadeClassifier'}")
        path = Path(cascade) if cascade is not None else _haar_file()
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ConfigError(f"{path}: not a readable OpenCV cascade file")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        import cv2

        image = check_image(image_rgb)
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        side = max(12, int(self.min_size * min(grey.shape)))
        found = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(side, side))
        return [Detection(np.array([x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5], dtype=np.float64), 1.0)
                for x, y, w, h in np.asarray(found).reshape(-1, 4)]

    __call__ = detect


