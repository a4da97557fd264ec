"""300-W in its original layout: <subset>/<split>/<name>.{jpg,png} beside <name>.pts (68 points).

The "image beside its .pts" folder reading here also serves the `folder` dataset (datasets/folder.py).
"""
from __future__ import annotations

from pathlib import Path

from kdlandmarks.errors import DataError
from kdlandmarks.data.schemes import W300
from kdlandmarks.data.datasets.pts import read_pts
from kdlandmarks.data.datasets.record import FaceRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

# Named splits of the 300-W benchmark (docs/method.md#schemes).
SPLITS: dict[str, tuple[str, ...]] = {
    "train": ("afw", "helen/trainset", "lfpw/trainset"),
    "common": ("helen/testset", "lfpw/testset"),
    "challenging": ("ibug",),
    "full": ("helen/testset", "lfpw/testset", "ibug"),
}
# The test subsets reported separately, and the folders each is made of.
TEST_SUBSETS: dict[str, tuple[str, ...]] = {k: SPLITS[k] for k in ("common", "challenging", "full")}


def split_folders(root: Path, split: str) -> list[Path]:
    """The folders of a named split or a sub-folder path; DataError naming the missing ones."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: 300-W root folder not found")
    parts = SPLITS.get(split, (split,))
    folders = [root / p for p in parts]
    missing = [p for p, f in zip(parts, folders) if not f.is_dir()]
    if missing:
        raise DataError(f"300-W split {split!r}: folder(s) missing under {root}: {', '.join(missing)}")
    return folders


def annotation_pairs(folder: Path, errors: list[str] | None = None) -> list[tuple[Path, Path]]:
    """(image, .pts) pairs of a folder, sorted by name.

    The image is <name> with one of IMAGE_SUFFIXES in any case (.jpg, .JPG; the first suffix listed
    wins when there are several). A .pts without its image raises DataError, or with `errors` given
    is described there and skipped. A folder without any .pts raises DataError.
    """
    folder = Path(folder)
    annotations = sorted(folder.glob("*.pts"))
    if not annotations:
        raise DataError(f"{folder}: no .pts annotations in this folder")
    images: dict[str, tuple[int, str, Path]] = {}
    for path in folder.iterdir():
        ext = path.suffix.lower()
        if ext in IMAGE_SUFFIXES and path.is_file():
            key = (IMAGE_SUFFIXES.index(ext), path.name, path)
            images[path.stem] = min(images.get(path.stem, key), key)
    pairs = []
    for pts in annotations:
        if pts.stem not in images:
            exc = DataError(f"{pts}: no image beside this annotation ({', '.join(IMAGE_SUFFIXES)})")
            if errors is None:
                raise exc
            errors.append(str(exc))
            continue
        pairs.append((images[pts.stem][2], pts))
    return pairs


def read_annotated_folder(folder: Path, subset: str, num_points: int | None,
                          errors: list[str] | None = None) -> list[FaceRecord]:
    """Records of one folder of images beside .pts files, named <subset>/<name> (<name> for subset ".").

    With `errors` given, a bad or unpaired annotation is described there and skipped instead of raising.
    """
    records = []
    for image, pts in annotation_pairs(folder, errors):
        try:
            landmarks = read_pts(pts, num_points)
        except DataError as exc:
            if errors is None:
                raise
            errors.append(str(exc))
            continue
        name = image.stem if subset == "." else f"{subset}/{image.stem}"
        records.append(FaceRecord(name=name, landmarks=landmarks, image_path=image, subset=subset, source=str(pts)))
    return records


def read_300w(root: str | Path, split: str = "train", errors: list[str] | None = None,
              num_points: int = W300.num_points) -> list[FaceRecord]:
    """Records of a 300-W split: train, common, challenging, full, or a sub-folder such as lfpw/testset.

    With `errors` given, a bad annotation is described there and skipped instead of raising.
    """
    root = Path(root)
    records = []
    for folder in split_folders(root, split):
        records += read_annotated_folder(folder, folder.relative_to(root).as_posix(), num_points, errors)
    return records
