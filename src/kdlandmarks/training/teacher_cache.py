"""Teacher cache: a frozen teacher's outputs on every stored sample, computed once and kept in the store.

The teachers do not change while the student learns, and with offline-augmented copies the
student's inputs are fixed too, so each teacher's prediction per sample is a constant. Caching them
makes KD training cost about what plain L2 training costs. With fresh augmentation every step there
are two ways on: run the teachers online (exact, about 4x the cost), or `teacher_cache: warp`, which
keeps the outputs cached on each sample's plain crop and moves them with the step's warp and flip
swap like the labels (training/module.py), assuming the teacher's prediction follows the warp.
`teacher_flip_test` gives the student each teacher's flip-test average (plain and mirrored view) instead
of its single-view output: a more accurate teacher for one more forward pass per sample.
A teacher whose input size differs from the student's sees each stored crop's window at its own size.
"""
from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import numpy as np
import torch

from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter
from kdlandmarks.data.codec import LandmarkCodec
from kdlandmarks.errors import DataError
from kdlandmarks.fileio import atomic_path
from kdlandmarks.data.flip import merge_flip_views
from kdlandmarks.models.backbones import load_model, teacher_autocast
from kdlandmarks.data.schemes import LandmarkScheme
from kdlandmarks.data.store import FaceStore


def cache_key(teacher_path: Path, input_size: int, flip_test: bool = False) -> str:
    h = hashlib.sha256()
    with open(teacher_path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(str(input_size).encode())
    if flip_test:  # keeps the keys of caches written before the flip test existed
        h.update(b"flip-test")
    return h.hexdigest()[:16]


def flip_tested(model: torch.nn.Module, x: torch.Tensor, codec: LandmarkCodec, scheme: LandmarkScheme) -> torch.Tensor:
    """(B, 2N) outputs of `model` on (B, 3, S, S) inputs, averaged with its prediction on each mirrored input
    mirrored back and relabelled (the flip test, as at inference), in one forward pass of 2B images."""
    b = x.shape[0]
    points = codec.decode(model(torch.cat([x, x.flip(-1)])).float())
    return codec.encode(merge_flip_views(points[:b], points[b:], scheme, codec.input_size))


@torch.no_grad()
def teacher_outputs(teacher_path: str | Path, store: FaceStore, input_size: int, batch_size: int = 128,
                    device: str = "cpu", progress: bool = True, flip_test: bool = False) -> np.ndarray:
    """(M, 2N) float32 teacher predictions (normalised space) for every sample of the store, cached on disk;
    input_size: the teacher's (each sample's plain window resampled to it); flip_test: each the average of the
    plain and the mirrored view (costs two forward passes per sample)."""
    teacher_path = Path(teacher_path)
    cache_dir = store.path / "teacher_cache"
    target = cache_dir / f"{cache_key(teacher_path, input_size, flip_test)}.npy"
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
        return _compute(teacher_path, store, input_size, batch_size, device, progress, target, flip_test)
    except BaseException as exc:
        # tell the waiting ranks, so they stop instead of polling forever
        failed.parent.mkdir(parents=True, exist_ok=True)
        failed.write_text(f"{type(exc).__name__}: {exc}")
        raise


def _compute(teacher_path: Path, store: FaceStore, input_size: int, batch_size: int, device: str,
             progress: bool, target: Path, flip_test: bool) -> np.ndarray:
    from tqdm import tqdm

    model, info = load_model(teacher_path, map_location=device)
    if info.input_size != input_size:
        raise DataError(f"{teacher_path}: the teacher takes {info.input_size} px input, not {input_size}")
    model.to(device).eval()
    codec = LandmarkCodec(info.input_size, info.space)
    warp = BatchAugmenter(AugmentConfig.disabled(), None, input_size, store.store_size, store.window)
    out = np.zeros((len(store), 2 * info.num_points), np.float32)
    for start in tqdm(range(0, len(store), batch_size), desc=f"teacher cache {teacher_path.name}",
                      disable=None if progress else True, unit="batch"):  # None: off a terminal
        stop = min(start + batch_size, len(store))
        images = torch.from_numpy(np.array(store.images[start:stop])).to(device)
        x, _, _ = warp(images, torch.zeros(stop - start, info.num_points, 2, device=device))
        with teacher_autocast(info.arch, device):
            y = flip_tested(model, x, codec, store.scheme) if flip_test else model(x)
            out[start:stop] = y.float().cpu().numpy()
    with atomic_path(target) as tmp:
        np.save(tmp, out)
    return out
