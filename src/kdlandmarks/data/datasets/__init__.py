"""Dataset readers: each turns an original dataset layout into a list of FaceRecord.

`load_dataset(name, root, split)` is the single entry point; `DATASETS` names what each reader
supports. Readers take an optional `errors` list: when given, bad items are described there and
skipped (the CLI's --skip-bad); otherwise the first bad item raises DataError.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.data.schemes import COFW, W300, WFLW, LandmarkScheme, get_scheme
from kdlandmarks.data.datasets.record import FaceRecord, check_landmarks, read_image

__all__ = ["FaceRecord", "read_image", "check_landmarks", "load_dataset", "dataset_scheme", "sample_root",
           "full_300w_root", "DATASETS"]

DATASETS = ("300w", "cofw", "wflw", "folder")


def sample_root() -> Path:
    """The bundled 300-W sample (24 train faces, 12 LFPW test faces) in the 300-W layout, for demos and tests."""
    root = Path(__file__).resolve().parents[1] / "300w-sample"
    if not root.is_dir():
        raise DataError(f"{root}: bundled 300-W sample missing (broken installation?)")
    return root


def full_300w_root() -> Path | None:
    """Where a full 300-W copy lies, if anywhere: the folder $KDLANDMARKS_300W names, when it holds the
    300-W layout; else None."""
    import os

    env = os.environ.get("KDLANDMARKS_300W")
    if env and (Path(env) / "lfpw" / "testset").is_dir():
        return Path(env)
    return None


def dataset_scheme(name: str, scheme: str | Path | None = None) -> LandmarkScheme:
    if name == "300w":
        return W300
    if name == "cofw":
        return COFW
    if name == "wflw":
        return WFLW
    if name == "folder":
        if scheme is None:
            raise ConfigError("dataset 'folder' needs a scheme: a built-in name (300w, cofw, wflw) or a scheme file")
        return get_scheme(scheme)
    raise ConfigError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def _reader(name: str) -> Callable[..., list[FaceRecord]]:
    if name == "300w":
        from kdlandmarks.data.datasets.w300 import read_300w
        return read_300w
    if name == "cofw":
        from kdlandmarks.data.datasets.cofw import read_cofw
        return read_cofw
    if name == "wflw":
        from kdlandmarks.data.datasets.wflw import read_wflw
        return read_wflw
    if name == "folder":
        from kdlandmarks.data.datasets.folder import read_folder
        return read_folder
    raise ConfigError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}")


def load_dataset(name: str, root: str | Path, split: str, scheme: str | Path | None = None,
                 errors: list[str] | None = None) -> list[FaceRecord]:
    """Read one split of a dataset in its original format; DataError if nothing usable is found."""
    reader = _reader(name)
    if name == "folder":
        records = reader(root, split, scheme=dataset_scheme(name, scheme), errors=errors)
    else:
        records = reader(root, split, errors=errors)
    if not records:
        raise DataError(f"{name} {split!r} under {root}: no faces found")
    return records

