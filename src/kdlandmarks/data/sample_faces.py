"""Real annotated faces for checks that need some (ONNX parity, int8 calibration, benchmarks): the
bundled 300-W sample, a full 300-W copy when one is found (datasets.full_300w_root), or any folder of
300-W-style .jpg + .pts files."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlandmarks.errors import DataError


def full_lfpw_test() -> Path | None:
    """The full LFPW test set, where a 300-W copy is found (datasets.full_300w_root); else None."""
    from kdlandmarks.data.datasets import full_300w_root

    root = full_300w_root()
    return root / "lfpw" / "testset" if root is not None else None


def sample_folder() -> Path | None:
    """The bundled 300-W sample (datasets.sample_root), or None when it is not there."""
    from kdlandmarks.data.datasets import sample_root

    try:
        return sample_root()
    except DataError:  # a sample that is not there is just one source fewer
        return None


def face_folders(root: Path | None) -> list[Path]:
    """Folders under `root` holding .pts annotations, test sets first; [] for None or a missing folder."""
    if root is None:
        return []
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted({p.parent for p in root.rglob("*.pts")}, key=lambda p: ("testset" not in p.as_posix(), str(p)))


def face_crops(size: int, count: int = 8, margin: float | None = None,
               root: str | Path | None = None, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray | None, str]:
    """Up to `count` ground-truth-protocol crops (RGB uint8, size x size) of real annotated faces.

    Returns (crops, landmarks in crop pixels (M, N, 2) or None, source). Faces come from `root`
    (any folder of 300-W-style .jpg + .pts) or else the bundled sample / the shared 300-W LFPW
    test set; with none readable, `count` random images are returned (landmarks None).
    """
    from kdlandmarks.data.crop import DEFAULT_MARGIN, gt_crop
    from kdlandmarks.data.datasets.pts import read_pts
    from kdlandmarks.data.datasets.record import read_image
    from kdlandmarks.data.datasets.w300 import annotation_pairs

    margin = DEFAULT_MARGIN if margin is None else margin
    if root is not None:
        candidates = [Path(root)]
    else:
        sample = sample_folder()
        candidates = [c for c in (sample / "lfpw" / "testset" if sample else None,
                                  full_lfpw_test(), sample) if c is not None]
    crops: list[np.ndarray] = []
    points: list[np.ndarray] = []
    sources: list[str] = []
    seen: set[str] = set()  # the bundled sample repeats faces of the full test set
    for cand in candidates:
        if len(crops) >= count:
            break
        for folder in face_folders(cand):
            try:
                pairs = annotation_pairs(folder)
            except DataError:
                continue
            for image_path, pts_path in pairs:
                key = f"{folder.parent.name}/{folder.name}/{pts_path.stem}"
                if len(crops) >= count:
                    break
                if key in seen:
                    continue
                try:
                    landmarks = read_pts(pts_path)
                    transform = gt_crop(landmarks, size, margin)
                    crops.append(transform.warp(read_image(image_path)))
                    points.append(transform.to_crop(landmarks))
                    seen.add(key)
                except DataError:
                    continue
                if str(cand) not in sources:
                    sources.append(str(cand))
            if len(crops) >= count:
                break
    if root is not None and not crops:
        raise DataError(f"{root}: no readable annotated faces (.jpg + .pts) found")
    if not crops:
        rng = np.random.default_rng(seed)
        return [rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(count)], None, "random images"
    same = len({p.shape for p in points}) == 1
    return crops, (np.stack(points) if same else None), f"{len(crops)} real faces from {' + '.join(sources)}"
