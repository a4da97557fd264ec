"""300-W in its original layout: <subset>/<split>/<name>.{jpg,png} beside <name>.pts (68 points)."""
from __future__ import annotations

from pathlib import Path

from ..errors import DataError
from ..schemes import W300
from .pts import read_pts
from .record import FaceRecord

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")

# Named splits of the 300-W benchmark (KD-LOSS-SPEC §2.1).
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


def annotation_pairs(folder: Path) -> list[tuple[Path, Path]]:
    """(image, .pts) pairs of a folder, sorted by name; DataError for an image without its .pts or none."""
    pairs = []
    for pts in sorted(folder.glob("*.pts")):
        image = next((pts.with_suffix(s) for s in IMAGE_SUFFIXES if pts.with_suffix(s).is_file()), None)
        if image is None:
            raise DataError(f"{pts}: no image beside this annotation")
        pairs.append((image, pts))
    if not pairs:
        raise DataError(f"{folder}: no .pts annotations in this folder")
    return pairs


def read_300w(root: str | Path, split: str = "train", errors: list[str] | None = None,
              num_points: int = W300.num_points) -> list[FaceRecord]:
    """Records of a 300-W split: train, common, challenging, full, or a sub-folder such as lfpw/testset.

    With `errors` given, a bad annotation is described there and skipped instead of raising.
    """
    root = Path(root)
    records = []
    for folder in split_folders(root, split):
        subset = folder.relative_to(root).as_posix()
        for image, pts in annotation_pairs(folder):
            try:
                landmarks = read_pts(pts, num_points)
            except DataError as exc:
                if errors is None:
                    raise
                errors.append(str(exc))
                continue
            records.append(FaceRecord(name=f"{subset}/{image.stem}", landmarks=landmarks,
                                      image_path=image, subset=subset))
    return records
