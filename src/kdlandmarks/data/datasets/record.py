"""The one record every dataset reader returns, plus image loading and annotation checks.

Image files are read with a bound on memory: an image over `MAX_IMAGE_PIXELS` (50 megapixels) is refused
from its header before any pixel is decoded (PNG, JPEG, BMP, GIF, WebP, TIFF; other formats after
decoding), as is one under `MIN_IMAGE_SIDE` pixels a side. `read_image(path, max_pixels=...)` and
`kdlandmarks predict --max-megapixels` raise the limit.

Annotations are checked against their image once it is read (`FaceRecord.load_checked_image`, used by
both `prepare` and `evaluate`): more than half of the points outside the image, or any point farther
outside than `FAR_OUTSIDE` of the image's size, is impossible ground truth.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from kdlandmarks.data.images import too_small
from kdlandmarks.errors import DataError

MAX_IMAGE_PIXELS = 50_000_000  # 50 megapixels: 150 MB decoded (RGB uint8); raise with max_pixels
FAR_OUTSIDE = 0.25  # a landmark may lie at most this fraction of the image's width (height) beyond its edge


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
    source: str = ""  # where the annotation comes from (a .pts file, a list line), for error messages

    def load_image(self, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
        if self.image is not None:
            return self.image
        if self.image_path is None:
            raise DataError(f"{self.name}: record has neither pixels nor an image path")
        return read_image(self.image_path, max_pixels)

    def load_checked_image(self, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
        """The image, once the landmarks are checked against its size (check_landmarks); DataError naming
        the annotation when they are impossible for it. `prepare` and `evaluate` both read faces this way."""
        image = self.load_image(max_pixels)
        h, w = image.shape[:2]
        check_landmarks(self.landmarks, None, self.source or self.name, (w, h))
        return image


def _jpeg_size(data: bytes | memoryview) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            return None
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # start of frame
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None


def _tiff_size(data: bytes | memoryview) -> tuple[int, int] | None:
    end = "<" if data[:2] == b"II" else ">"
    try:
        (offset,) = struct.unpack(end + "I", data[4:8])
        (count,) = struct.unpack(end + "H", data[offset:offset + 2])
        size: dict[int, int] = {}
        for k in range(count):
            tag, kind, _, value = struct.unpack(end + "HHI4s", data[offset + 2 + 12 * k:offset + 14 + 12 * k])
            if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
                size[tag] = struct.unpack(end + ("H" if kind == 3 else "I"), value[:2 if kind == 3 else 4])[0]
        return (size[256], size[257]) if len(size) == 2 else None
    except (struct.error, KeyError):
        return None


def image_size_from_header(data: bytes | memoryview) -> tuple[int, int] | None:
    """(width, height) from an image file's bytes without decoding it; None for unknown formats."""
    try:
        if data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data[:2] == b"\xff\xd8":
            return _jpeg_size(data)
        if data[:2] == b"BM":
            w, h = struct.unpack("<ii", data[18:26])
            return abs(w), abs(h)
        if data[:6] in (b"GIF87a", b"GIF89a"):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            chunk = data[12:16]
            if chunk == b"VP8X":
                return 1 + int.from_bytes(data[24:27], "little"), 1 + int.from_bytes(data[27:30], "little")
            if chunk == b"VP8L":
                bits = int.from_bytes(data[21:25], "little")
                return 1 + (bits & 0x3FFF), 1 + ((bits >> 14) & 0x3FFF)
            if chunk == b"VP8 ":
                w, h = struct.unpack("<HH", data[26:30])
                return w & 0x3FFF, h & 0x3FFF
            return None
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            return _tiff_size(data)
    except struct.error:
        return None
    return None


def check_image_size(width: int, height: int, source: str | Path, max_pixels: int | None = MAX_IMAGE_PIXELS) -> None:
    """DataError when an image of this size is refused: under MIN_IMAGE_SIDE a side, or over max_pixels."""
    small = too_small(width, height)
    if small:
        raise DataError(f"{source}: {small}")
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(f"{source}: image is {width}x{height} ({width * height / 1e6:.1f} megapixels), over the "
                        f"limit of {max_pixels / 1e6:g} megapixels; raise it with {{max_pixels}}",
                        parameters=("max_pixels",))


def read_image(path: str | Path, max_pixels: int | None = MAX_IMAGE_PIXELS) -> np.ndarray:
    """Read an image file as RGB uint8 (H, W, 3); DataError if it is missing, cannot be decoded, is smaller
    than MIN_IMAGE_SIDE a side or has more than `max_pixels` pixels (None: no limit). The size is read from
    the file's header first, so an oversized image is refused before it is decoded."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: image not found")
    data = np.fromfile(str(path), dtype=np.uint8)
    size = image_size_from_header(memoryview(data))
    if size is not None and size[0] > 0 and size[1] > 0:
        check_image_size(size[0], size[1], path, max_pixels)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    del data
    if image is None:
        raise DataError(f"{path}: not a readable image (corrupt or unsupported format)")
    check_image_size(image.shape[1], image.shape[0], path, max_pixels)  # formats without a header we read
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB, dst=image)  # in place: no second full-size copy


def check_landmarks(landmarks: np.ndarray, num_points: int | None, source: str,
                    image_size: tuple[int, int] | None = None) -> np.ndarray:
    """Validate an (N, 2) landmark array; return it as float64.

    image_size is (width, height). Points a little outside the image are normal (occluded jaw lines),
    so a set is rejected only when more than half of its points lie outside the frame, or when any point
    lies farther outside than FAR_OUTSIDE of the image's width (x) or height (y): a typo such as
    (100000, -50000) that would shrink the face to a dot or score an NME of thousands of percent.
    """
    arr = np.asarray(landmarks, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DataError(f"{source}: landmarks must be an (N, 2) array, got shape {arr.shape}")
    if num_points is not None and arr.shape[0] != num_points:
        raise DataError(f"{source}: expected {num_points} points, found {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise DataError(f"{source}: landmarks contain NaN or infinite values")
    if len(arr) > 1 and (arr == arr[0]).all():  # no extent: no crop window, no face
        raise DataError(f"{source}: all {len(arr)} landmarks are the same point ({arr[0, 0]:g}, {arr[0, 1]:g})")
    if image_size is not None:
        w, h = image_size
        outside = (arr[:, 0] < -0.5) | (arr[:, 0] > w - 0.5) | (arr[:, 1] < -0.5) | (arr[:, 1] > h - 0.5)
        if outside.mean() > 0.5:
            raise DataError(f"{source}: {int(outside.sum())} of {len(arr)} landmarks lie outside the {w}x{h} image")
        beyond = np.maximum(np.maximum(-0.5 - arr, arr - (np.array([w, h]) - 0.5)), 0) / np.array([w, h])
        far = np.flatnonzero(beyond.max(axis=1) > FAR_OUTSIDE)
        if far.size:
            i = int(far[np.argmax(beyond[far].max(axis=1))])
            raise DataError(f"{source}: landmark {i} (0-based) at ({arr[i, 0]:.1f}, {arr[i, 1]:.1f}) lies far outside "
                            f"the {w}x{h} image ({len(far)} such point(s); at most {FAR_OUTSIDE:.0%} of the "
                            "image's size beyond its edge is accepted)")
    return arr
