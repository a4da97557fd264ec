"""The iBUG `.pts` annotation format (300-W and users' own data): header, 1-based coordinates."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlandmarks.errors import DataError
from kdlandmarks.fileio import atomic_write_text
from kdlandmarks.data.datasets.record import check_landmarks


def read_pts(path: str | Path, num_points: int | None = None) -> np.ndarray:
    """Read a .pts file into float64 (N, 2) 0-based pixel centres (the file is 1-based)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: annotation file not found")
    try:
        lines = [ln.strip() for ln in path.read_text(errors="strict").splitlines() if ln.strip()]
    except UnicodeDecodeError:
        raise DataError(f"{path}: not a text .pts file") from None
    try:
        start, end = lines.index("{"), lines.index("}")
    except ValueError:
        raise DataError(f"{path}: malformed .pts (missing '{{' or '}}')") from None
    declared = None
    for ln in lines[:start]:
        if ln.lower().startswith("n_points"):
            try:
                declared = int(ln.split(":", 1)[1])
            except (IndexError, ValueError):
                raise DataError(f"{path}: malformed n_points line {ln!r}") from None
    rows = []
    for ln in lines[start + 1:end]:
        parts = ln.split()
        if len(parts) != 2:
            raise DataError(f"{path}: malformed point line {ln!r}")
        try:
            rows.append((float(parts[0]), float(parts[1])))
        except ValueError:
            raise DataError(f"{path}: non-numeric coordinate in line {ln!r}") from None
    if declared is not None and declared != len(rows):
        raise DataError(f"{path}: header says {declared} points, file has {len(rows)}")
    arr = np.array(rows, dtype=np.float64).reshape(-1, 2) - 1.0
    return check_landmarks(arr, num_points, str(path))


def format_pts(landmarks: np.ndarray) -> str:
    pts = np.asarray(landmarks, dtype=np.float64) + 1.0
    body = "\n".join(f"{x:.6f} {y:.6f}" for x, y in pts)
    return f"version: 1\nn_points: {len(pts)}\n{{\n{body}\n}}\n"


def write_pts(path: str | Path, landmarks: np.ndarray) -> None:
    """Write 0-based landmarks as a 1-based .pts file, atomically (temp file, then rename)."""
    atomic_write_text(path, format_pts(landmarks))
