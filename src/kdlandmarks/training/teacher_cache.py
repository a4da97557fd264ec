"""Teacher cache: a frozen teacher's outputs on every stored sample, computed once and kept in the store.

The teachers do not change while the student learns, and with offline-augmented copies the
student's inputs are fixed too, so each teacher's prediction per sample is a constant. Caching them
makes KD training cost about what plain L2 training costs. With fresh augmentation every step there
are two ways on: run the teachers online (exact, about 4x the cost), or `teacher_cache: warp`, which
keeps the outputs cached on each sample's plain crop and moves them with the step's warp and flip
swap like the labels (training/module.py), assuming the teacher's prediction follows the warp.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..augment import AugmentConfig, BatchAugmenter
from ..errors import DataError
from ..fileio import atomic_path
from ..models import load_model
from ..store import FaceStore


def cache_key(teacher_path: Path, input_size: int) -> str:
    h = hashlib.sha256()
    with open(teacher_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(str(input_size).encode())
    return h.hexdigest()[:16]


@torch.no_grad()
def teacher_outputs(teacher_path: str | Path, store: FaceStore, input_size: int, batch_size: int = 128,
                    device: str = "cpu", progress: bool = True) -> np.ndarray:
    """(M, 2N) float32 teacher predictions (normalised space) for every sample of the store, cached on disk."""
    teacher_path = Path(teacher_path)
    cache_dir = store.path / "teacher_cache"
    target = cache_dir / f"{cache_key(teacher_path, input_size)}.npy"
    if target.is_file():
        return np.load(target)
    failed = target.with_name(f".{target.stem}.failed")
    if int(os.environ.get("LOCAL_RANK", "0")) != 0:  # under DDP, rank 0 computes; the others wait
        started = time.time() - 60  # a marker older than this run's start is a stale one from an earlier run
        while not target.is_file():
            if failed.is_file() and failed.stat().st_mtime >= started:
                raise DataError(f"{store.path}: the teacher cache for {teacher_path} failed on rank 0: "
                                f"{failed.read_text().strip()}")
            time.sleep(2)
        return np.load(target)
    failed.unlink(missing_ok=True)
    try:
        return _compute(teacher_path, store, input_size, batch_size, device, progress, target)
    except BaseException as exc:
        # tell the waiting ranks, so they stop instead of polling forever
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(f"{type(exc).__name__}: {exc}")
        raise


def _compute(teacher_path: Path, store: FaceStore, input_size: int, batch_size: int, device: str,
             progress: bool, target: Path) -> np.ndarray:
    from tqdm import tqdm

    model, info = load_model(teacher_path, map_location=device)
    model.to(device).eval()
    warp = BatchAugmenter(AugmentConfig.disabled(), None, input_size, store.store_size, store.window)
    out = np.zeros((len(store), 2 * info.num_points), np.float32)
    for start in tqdm(range(0, len(store), batch_size), desc=f"teacher cache {teacher_path.name}",
                      disable=not progress, unit="batch"):
        stop = min(start + batch_size, len(store))
        images = torch.from_numpy(np.array(store.images[start:stop])).to(device)
        x, _, _ = warp(images, torch.zeros(stop - start, info.num_points, 2, device=device))
        with torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            out[start:stop] = model(x).float().cpu().numpy()
    with atomic_path(target) as tmp:
        np.save(tmp, out)
    return out
