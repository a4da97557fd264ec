"""Image checks and the one bounded resize: every reader, detector and crop takes images through these."""
from __future__ import annotations

from typing import Any

import numpy as np

from kdlandmarks.errors import DataError

MIN_IMAGE_SIDE = 8  # pixels: smaller images (1x1 PNGs, icons) hold no face a detector or the network can use


def too_small(width: int, height: int) -> str | None:
    """Why an image of this size is refused (it is smaller than MIN_IMAGE_SIDE a side), or None."""
    if min(width, height) < MIN_IMAGE_SIDE:
        return (f"image is {width}x{height} pixels, too small: at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
                "is needed to hold a face")
    return None


def check_image(image: Any, what: str = "image") -> np.ndarray:
    """An RGB uint8 (H, W, 3) image, from (H, W) or (H, W, 1) grey or (H, W, 4) RGBA; DataError otherwise."""
    if not isinstance(image, np.ndarray):
        raise DataError(f"{what}: expected a numpy RGB image array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DataError(f"{what}: expected dtype uint8 (0-255 RGB), got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DataError(f"{what}: expected an (H, W, 3) RGB image, got shape {image.shape}")
    small = too_small(image.shape[1], image.shape[0])
    if small:
        raise DataError(f"{what}: {small}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)




def shrink(image: np.ndarray, max_side: int | None) -> tuple[np.ndarray, float]:
    """The image with its long side at most `max_side` (INTER_AREA), and the factor applied (1.0: untouched)."""
    import cv2

    h, w = image.shape[:2]
    if not max_side or max(h, w) <= max_side:
        return image, 1.0
    scale = max_side / max(h, w)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA), scale
