"""WFLW (98 points) from its original annotation lists and image folder.

Layout::

    <root>/WFLW_annotations/list_98pt_rect_attr_train_test/list_98pt_rect_attr_{train,test}.txt
    <root>/WFLW_images/<event folder>/<name>.jpg

(the list files may also sit directly in root, and the images directly under root). Each line is
196 floats (x0 y0 ... x97 y97, already 0-based), the face rect x_min y_min x_max y_max, six 0/1
attribute flags (pose expression illumination make-up occlusion blur) and the image path relative
to WFLW_images.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.data.schemes import WFLW
from kdlandmarks.data.datasets.record import FaceRecord, check_landmarks

WFLW_ATTRIBUTES = ("pose", "expression", "illumination", "makeup", "occlusion", "blur")
SPLITS = ("train", "test", *WFLW_ATTRIBUTES)
LIST_DIR = Path("WFLW_annotations") / "list_98pt_rect_attr_train_test"
N = WFLW.num_points
FIELDS = 2 * N + 4 + len(WFLW_ATTRIBUTES) + 1


def annotation_file(root: str | Path, split: str) -> Path:
    """The annotation list of the train or test part (an attribute subset lives in the test list)."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: WFLW root folder not found")
    part = "train" if split == "train" else "test"
    name = f"list_98pt_rect_attr_{part}.txt"
    for path in (root / LIST_DIR / name, root / name):
        if path.is_file():
            return path
    raise DataError(f"WFLW {part} list {name} not found under {root} (looked in {LIST_DIR} and the root itself)")


def parse_line(line: str, source: str) -> tuple[np.ndarray, np.ndarray, dict[str, int], str]:
    """(landmarks (98, 2), box (4,), attribute flags, relative image path) of one list line."""
    parts = line.split()
    if len(parts) != FIELDS:
        raise DataError(f"{source}: expected {FIELDS} fields (196 coordinates, 4 box values, "
                        f"6 attributes, image path), found {len(parts)}")
    try:
        coords = np.array([float(v) for v in parts[:2 * N]], dtype=np.float64).reshape(N, 2)
        box = np.array([float(v) for v in parts[2 * N:2 * N + 4]], dtype=np.float64)
        flags = [int(v) for v in parts[2 * N + 4:FIELDS - 1]]
    except ValueError as exc:
        raise DataError(f"{source}: non-numeric value ({exc})") from None
    if any(f not in (0, 1) for f in flags):
        raise DataError(f"{source}: attribute flags must be 0 or 1, got {flags}")
    if not np.isfinite(box).all() or box[2] < box[0] or box[3] < box[1]:
        raise DataError(f"{source}: invalid face rect {box.tolist()}")
    landmarks = check_landmarks(coords, N, source)
    return landmarks, box, dict(zip(WFLW_ATTRIBUTES, flags)), parts[-1]


def read_wflw(root: str | Path, split: str = "test", errors: list[str] | None = None) -> list[FaceRecord]:
    """Records of WFLW train (7500), test (2500) or a test attribute subset (pose, expression, ...).

    record.name is the image path without suffix plus the 1-based list line number (one image can
    hold several faces); record.subset is the split asked for. With `errors` given, a bad line is
    described there and skipped instead of raising.
    """
    if split not in SPLITS:
        raise ConfigError(f"WFLW split {split!r} unknown: use one of {', '.join(SPLITS)}")
    root = Path(root)
    path = annotation_file(root, split)
    image_dir = root / "WFLW_images" if (root / "WFLW_images").is_dir() else root
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable annotation list ({exc})") from None

    records = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        source = f"{path}:{lineno}"
        try:
            landmarks, box, attributes, rel = parse_line(line, source)
            if split in WFLW_ATTRIBUTES and not attributes[split]:
                continue
            image = image_dir / rel
            if not image.is_file():
                raise DataError(f"{source}: image {image} not found")
        except DataError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
            continue
        records.append(FaceRecord(name=f"{Path(rel).with_suffix('').as_posix()}_{lineno}", landmarks=landmarks,
                                  image_path=image, box=box, attributes=attributes, subset=split, source=source))
    return records
