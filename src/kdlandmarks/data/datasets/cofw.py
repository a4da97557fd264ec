"""COFW (29 points) from its original MATLAB files, in the v7.3 (HDF5) or the older v5 format.

Layout of COFW_{train,test}_color.mat (suffix Tr for train, T for test), in MATLAB orientation:
  Is*      M x 1 cell of uint8 images, H x W (grayscale) or H x W x 3 (RGB);
  phis*    M x 87: 29 x, then 29 y, then 29 occlusion flags (1 = occluded), 1-based pixels;
  bboxes*  M x 4: x, y, w, h face boxes, 1-based.
HDF5 stores MATLAB's column-major arrays with their axes reversed, so every array read with h5py is
transposed back before use; the cell array holds object references to the images.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.data.schemes import COFW
from kdlandmarks.data.datasets.record import FaceRecord, check_landmarks

FILES = {"train": "COFW_train_color.mat", "test": "COFW_test_color.mat"}
KEYS = {"train": ("IsTr", "phisTr", "bboxesTr"), "test": ("IsT", "phisT", "bboxesT")}
N = COFW.num_points


def cofw_file(root: str | Path, split: str) -> Path:
    """The .mat file of a split: root itself when it is a file, else root/COFW_<split>_color.mat."""
    if split not in FILES:
        raise ConfigError(f"COFW split {split!r} unknown: use 'train' or 'test'")
    root = Path(root)
    if root.is_file():
        return root
    if not root.is_dir():
        raise DataError(f"{root}: COFW folder or .mat file not found")
    path = root / FILES[split]
    if not path.is_file():
        raise DataError(f"{path}: COFW {split} file not found")
    return path


def _load_hdf5(path: Path, keys: tuple[str, str, str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    import h5py

    with h5py.File(path, "r") as f:
        missing = [k for k in keys if k not in f]
        if missing:
            raise DataError(f"{path}: no {', '.join(missing)} in this COFW file (has {', '.join(sorted(f.keys()))})")
        images_key, phis_key, boxes_key = keys
        refs = np.asarray(f[images_key][()]).reshape(-1)
        try:
            # .T undoes HDF5's reversed axes: (W, H) -> (H, W), (3, W, H) -> (H, W, 3).
            images = [np.asarray(f[ref][()]).T for ref in refs]
        except (TypeError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: {images_key} is not a cell array of images ({exc})") from None
        phis = np.asarray(f[phis_key][()], dtype=np.float64).T
        boxes = np.asarray(f[boxes_key][()], dtype=np.float64).T
    return images, phis, boxes


def _load_v5(path: Path, keys: tuple[str, str, str]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    from kdlandmarks.extras import require_train

    # the default install reads the v7.3 (HDF5) files with h5py; SciPy comes with the train extra
    require_train(f"reading {path.name} (a MATLAB v5 .mat file)", ("scipy",))
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat: dict[str, Any] = scipy.io.loadmat(str(path))
    except (MatReadError, ValueError, TypeError, OSError, EOFError, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    missing = [k for k in keys if k not in mat]
    if missing:
        present = sorted(k for k in mat if not k.startswith("__"))
        raise DataError(f"{path}: no {', '.join(missing)} in this COFW file (has {', '.join(present)})")
    images_key, phis_key, boxes_key = keys
    cells = np.asarray(mat[images_key])
    images = [np.asarray(im) for im in cells.reshape(-1)] if cells.dtype == object else [cells]
    return images, np.asarray(mat[phis_key], dtype=np.float64), np.asarray(mat[boxes_key], dtype=np.float64)


def _as_rgb(image: np.ndarray, source: str) -> np.ndarray:
    if image.dtype != np.uint8:
        image = np.clip(np.rint(image.astype(np.float64)), 0, 255).astype(np.uint8)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        image = np.repeat(image[:, :, None], 3, axis=2)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = image[:, :, :3]
    if image.ndim != 3 or image.shape[2] != 3 or min(image.shape[:2]) < 1:
        raise DataError(f"{source}: image has unsupported shape {image.shape}")
    return np.ascontiguousarray(image)


def _orient(array: np.ndarray, width: int, count: int, name: str, path: Path) -> np.ndarray:
    """(count, width) rows per face; accepts the transposed matrix too (both orientations occur in the wild)."""
    if array.ndim == 2 and array.shape == (count, width):
        return array
    if array.ndim == 2 and array.shape == (width, count):
        return array.T
    raise DataError(f"{path}: {name} has shape {array.shape}, expected {count} x {width}")


def read_cofw(root: str | Path, split: str = "test", errors: list[str] | None = None) -> list[FaceRecord]:
    """Records of COFW train (1345 faces) or test (507): pixels in record.image, 0-based landmarks and box.

    root is a folder holding COFW_train_color.mat / COFW_test_color.mat, or one .mat file.
    With `errors` given, a bad face is described there and skipped instead of raising.
    """
    import h5py

    path = cofw_file(root, split)
    keys = KEYS[split]
    try:
        is_hdf5 = h5py.is_hdf5(str(path))
    except OSError:
        is_hdf5 = False
    if is_hdf5:
        try:
            images, phis, boxes = _load_hdf5(path, keys)
        except OSError as exc:
            raise DataError(f"{path}: unreadable HDF5 COFW file ({exc})") from None
    else:
        images, phis, boxes = _load_v5(path, keys)

    count = len(images)
    if phis.ndim == 2 and 3 * N in phis.shape:
        phis = _orient(phis, 3 * N, count, keys[1], path)
    else:
        # Some re-saved copies drop the occlusion flags.
        phis = _orient(phis, 2 * N, count, keys[1], path)
    boxes = _orient(boxes, 4, count, keys[2], path)

    records = []
    for i, (image, phi, bbox) in enumerate(zip(images, phis, boxes)):
        source = f"{path} face {i + 1}"
        try:
            rgb = _as_rgb(image, source)
            h, w = rgb.shape[:2]
            # MATLAB pixel centres are 1-based.
            landmarks = check_landmarks(np.stack([phi[:N], phi[N:2 * N]], axis=1) - 1.0, N, source, (w, h))
            if not np.isfinite(bbox).all() or bbox[2] <= 0 or bbox[3] <= 0:
                raise DataError(f"{source}: invalid face box {bbox.tolist()}")
            x0, y0 = bbox[0] - 1.0, bbox[1] - 1.0
            box = np.array([x0, y0, x0 + bbox[2], y0 + bbox[3]], dtype=np.float64)
            occlusion = phi[2 * N:3 * N] > 0.5 if len(phi) == 3 * N else np.zeros(N, dtype=bool)
        except DataError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
            continue
        records.append(FaceRecord(name=f"cofw/{split}/{i + 1:04d}", landmarks=landmarks, image=rgb,
                                  box=box, occlusion=occlusion, subset=split, source=source))
    return records
