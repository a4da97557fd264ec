"""A user's own data: a folder of images, each beside a `.pts` file of the scheme's point count.

Layout: <root>/<split>/<name>.{jpg,jpeg,png,bmp} (any case) next to <name>.pts (iBUG format, 1-based
coordinates, any number of points). split is a sub-folder path relative to root, or "." for root
itself; sub-folders are not searched. Images without a .pts file are ignored.

The scheme (how many points, which pairs swap under a horizontal flip, which points normalise the
error) is a built-in name (300w, cofw, wflw) or a YAML/JSON scheme file read by
`kdlandmarks.data.schemes.load_scheme_file`::

    name: my5                  # optional, defaults to the file name
    num_points: 5              # required
    flip_pairs: [[0, 1], [3, 4]]   # 0-based index pairs swapped by a horizontal flip; others stay
    inter_ocular: [0, 1]       # required: the two points whose distance normalises the error
    pupils: [[0], [1]]         # optional: two point groups whose centroids are the pupils
    groups: {eyes: [0, 1], nose: [2], mouth: [3, 4]}   # optional named groups, for plots

Indices are 0-based and must lie in 0..num_points-1; a point may appear in one flip pair only.
"""
from __future__ import annotations

from pathlib import Path

from kdlandmarks.errors import DataError
from kdlandmarks.data.schemes import LandmarkScheme, get_scheme
from kdlandmarks.data.datasets.record import FaceRecord
from kdlandmarks.data.datasets.w300 import read_annotated_folder


def read_folder(root: str | Path, split: str, scheme: LandmarkScheme | str | Path,
                errors: list[str] | None = None) -> list[FaceRecord]:
    """Records of root/split (or root itself for "."), checked against the scheme's point count.

    With `errors` given, a bad annotation is described there and skipped instead of raising.
    """
    if not isinstance(scheme, LandmarkScheme):
        scheme = get_scheme(scheme)
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: data folder not found")
    folder = root / split
    if not folder.is_dir():
        raise DataError(f"{folder}: split folder {split!r} not found under {root}")
    return read_annotated_folder(folder, Path(split).as_posix(), scheme.num_points, errors)
