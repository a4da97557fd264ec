"""The prepared-data store: faces decoded, cropped and saved once, memory-mapped for fast training.

Layout of a store folder (all arrays .npy, memory-mappable):
    meta.json            parameters, counts, and "complete": true once fully written
    images.npy           uint8 (M, S, S, 3)   crops with context, S = round(input_size * context)
    landmarks.npy        float32 (M, N, 2)    hard landmarks in store-crop pixel centres
    matrices.npy         float64 (M, 2, 3)    image -> store-crop affine (its inverse maps back; an augmented
                                              copy's includes its draw, a flipped copy's points are relabelled)
    face_index.npy       int32 (M,)           which original face each sample comes from
    records.json         per original face: name, image path, subset, image size, attributes
    soft_landmarks.npy   float32 (M, N, 2)    written by `kdlandmarks asm` (ASM soft-landmarks)
    asm.npz              the fitted Active Shape Model

With `copies` F > 1 each face is stored F times: copy 0 plain, copies 1..F-1 augmented offline
(the paper's augmentation factor), so that frozen teachers can be cached per stored sample.
A store is built in a hidden temporary folder and renamed into place when complete, so an
interrupted run never leaves something that looks finished; re-running with the same inputs and
parameters does nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from kdlandmarks.data.crop import DEFAULT_MARGIN, CropTransform, input_to_window, square_from_landmarks, window_to_input
from kdlandmarks.data.datasets import FaceRecord, check_landmarks, dataset_scheme, load_dataset
from kdlandmarks.errors import DataError
from kdlandmarks.fileio import atomic_path, atomic_write_json
from kdlandmarks.data.schemes import SCHEME_FILE_SUFFIXES, LandmarkScheme, get_scheme

STORE_VERSION = 1


@dataclass
class PrepareParams:
    dataset: str
    root: str
    split: str
    input_size: int = 128
    context: float = 1.25
    margin: float = DEFAULT_MARGIN
    copies: int = 1
    seed: int = 0
    scheme: str | None = None

    @property
    def store_size(self) -> int:
        return int(round(self.input_size * self.context))

    #: The settings a training recipe fixes (PrepareParams field -> Recipe attribute).
    RECIPE_FIELDS = {"input_size": "input_size", "context": "context", "margin": "margin", "copies": "copies"}

    @classmethod
    def build(cls, dataset: str, root: str, split: str = "train", recipe: Any = None, **given: Any) -> "PrepareParams":
        """PrepareParams from the values `given` (None: not given), falling back to the training `recipe`'s
        input_size/context/margin/copies when one is given (any object with those attributes, e.g. a training
        Recipe), then to the defaults above; range-checked (ConfigError)."""
        values = {k: v for k, v in given.items() if v is not None}
        if recipe is not None:
            for key, attr in cls.RECIPE_FIELDS.items():
                values.setdefault(key, getattr(recipe, attr))
        return cls(dataset=dataset, root=root, split=split, **values).check()

    def check(self) -> "PrepareParams":
        """self, or ConfigError when a size, context, margin or copy count is out of range."""
        from kdlandmarks.errors import ConfigError

        if not all(valid(getattr(self, name)) for name, (valid, _) in STORE_RULES.items()):
            raise ConfigError("need {input_size} >= 16, {context} >= 1, {copies} >= 1 and {margin} >= 0",
                              parameters=("input_size", "context", "copies", "margin"))
        return self


# The ranges a store's settings must lie in, each with its rule in words: PrepareParams.check and the
# training recipes' checks (training.config.check_recipe) share them.
STORE_RULES = {
    "input_size": (lambda v: v >= 16, "must be at least 16"),
    "context": (lambda v: v >= 1, "must be at least 1"),
    "margin": (lambda v: v >= 0, "must be >= 0"),
    "copies": (lambda v: v >= 1, "must be at least 1"),
}


class FaceStore:
    """Read access to a complete store; arrays are memory-mapped."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{self.path}: not a prepared store (no meta.json); run `kdlandmarks prepare`")
        self.meta = _read_meta(meta_path)
        if not self.meta.get("complete"):
            raise DataError(f"{self.path}: store is incomplete; run `kdlandmarks prepare` again")
        self.images = _load_array(self.path / "images.npy", mmap=True)
        self.landmarks = _load_array(self.path / "landmarks.npy")
        self.face_index = _load_array(self.path / "face_index.npy")
        soft = self.path / "soft_landmarks.npy"
        self.soft_landmarks = _load_array(soft) if soft.is_file() else None
        if not len(self.images) == len(self.landmarks) == len(self.face_index):
            raise DataError(f"{self.path}: store arrays disagree ({len(self.images)} images, {len(self.landmarks)} "
                            f"landmark sets); run `kdlandmarks prepare` again")

    def __len__(self) -> int:
        return len(self.landmarks)

    @property
    def num_points(self) -> int:
        return int(self.meta["num_points"])

    @property
    def input_size(self) -> int:
        return int(self.meta["params"]["input_size"])

    @property
    def store_size(self) -> int:
        return int(self.meta["store_size"])

    @property
    def margin(self) -> float:
        """Crop margin around the landmark extent the store's faces were cut with (PrepareParams.margin);
        a model trained on the store carries it as ModelInfo.crop_margin."""
        return float(self.meta["params"]["margin"])

    @property
    def copies(self) -> int:
        """Stored samples per face (1 plain + copies-1 augmented)."""
        return int(self.meta["params"]["copies"])

    @property
    def dataset(self) -> str:
        return str(self.meta["params"]["dataset"])

    @property
    def faces(self) -> int:
        """Number of distinct faces (samples / copies)."""
        return int(self.meta["faces"])

    @property
    def window(self) -> float:
        """Side, in store pixels, of the centred square that is the network's input crop."""
        return self.store_size / float(self.meta["params"]["context"])

    @property
    def scheme_name(self) -> str:
        return str(self.meta["scheme"])

    @property
    def scheme_ref(self) -> str:
        """What `get_scheme` reads this store's scheme from: a built-in name or the scheme file given to
        prepare (a custom scheme's own name is not enough to find it again)."""
        return str(self.meta["params"].get("scheme") or self.meta["scheme"])

    @property
    def scheme(self) -> LandmarkScheme:
        return get_scheme(self.scheme_ref)

    def matrices(self) -> np.ndarray:
        return _load_array(self.path / "matrices.npy")

    def records(self) -> list[dict]:
        return json.loads((self.path / "records.json").read_text())

    def input_frame(self, points: np.ndarray) -> np.ndarray:
        """Store-crop pixels -> network-input pixels (the centred window scaled to input_size)."""
        return window_to_input(points, self.store_size, self.input_size, self.window)

    def store_frame(self, points: np.ndarray) -> np.ndarray:
        """Network-input pixels -> store-crop pixels (the inverse of input_frame)."""
        return input_to_window(points, self.store_size, self.input_size, self.window)

    def write_soft_landmarks(self, soft: np.ndarray, asm_file: Path | None, info: dict) -> None:
        """Save soft-landmarks (store pixels) and record how they were made, each file atomically."""
        soft = np.asarray(soft, dtype=np.float32)
        if soft.shape != self.landmarks.shape:
            raise DataError(f"soft landmarks shape {soft.shape} != hard {self.landmarks.shape}")
        with atomic_path(self.path / "soft_landmarks.npy") as tmp:
            np.save(tmp, soft)
        if asm_file is not None and Path(asm_file).resolve() != (self.path / "asm.npz").resolve():
            with atomic_path(self.path / "asm.npz") as tmp:
                shutil.copyfile(asm_file, tmp)
        self.meta["soft"] = info
        atomic_write_json(self.path / "meta.json", self.meta)
        self.soft_landmarks = soft


def _load_array(path: Path, mmap: bool = False) -> np.ndarray:
    """One array of a store (memory-mapped with `mmap`); DataError when it is missing, cut short or not an
    array file: a store copied in part, or a disk that filled up."""
    try:
        return np.load(path, mmap_mode="r" if mmap else None)
    except (OSError, ValueError, EOFError) as exc:  # numpy: short file, bad header, object array refused
        reason = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: unreadable store array ({reason}); run `kdlandmarks prepare` again") from None


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError):  # JSONDecodeError is a ValueError
        raise DataError(f"{path}: corrupt store metadata; run `kdlandmarks prepare` again") from None
    if not isinstance(meta, dict):
        raise DataError(f"{path}: corrupt store metadata; run `kdlandmarks prepare` again")
    return meta


def _fingerprint(records: list[FaceRecord], params: PrepareParams, skip_bad: bool) -> str:
    # skip_bad is part of it: a store that skipped bad faces is not what a strict rerun asks for.
    settings = {k: v for k, v in asdict(params).items() if k != "root"}
    h = hashlib.sha256(json.dumps({**settings, "skip_bad": bool(skip_bad)}, sort_keys=True).encode())
    h.update(str(STORE_VERSION).encode())
    for r in records:
        h.update(r.name.encode())
        h.update(np.ascontiguousarray(r.landmarks, dtype=np.float64).tobytes())
        if r.image_path is not None:
            st = Path(r.image_path).stat()
            h.update(f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


def _crop_one(record: FaceRecord, params: PrepareParams, num_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    image = record.load_checked_image()  # the same check of the annotation against its image as evaluate's
    h, w = image.shape[:2]
    landmarks = check_landmarks(record.landmarks, num_points, record.source or record.name)
    cx, cy, side = square_from_landmarks(landmarks, params.margin)
    transform = CropTransform.from_square(cx, cy, side * params.context, params.store_size)
    return transform.warp(image), transform.to_crop(landmarks).astype(np.float32), transform.matrix, (w, h)


def prepare_store(params: PrepareParams, out: str | Path, workers: int = 2, skip_bad: bool = False,
                  progress: bool = True) -> dict:
    """Build (or confirm up to date) a store; returns a summary dict (faces, samples, seconds, skipped, status)."""
    start = time.perf_counter()
    out = Path(out)
    if params.scheme and Path(params.scheme).suffix.lower() in SCHEME_FILE_SUFFIXES:
        # Kept absolute: models trained on the store find their scheme through it (FaceStore.scheme_ref).
        params = replace(params, scheme=str(Path(params.scheme).expanduser().resolve()))
    scheme = dataset_scheme(params.dataset, params.scheme)
    errors: list[str] | None = [] if skip_bad else None
    records = load_dataset(params.dataset, params.root, params.split, scheme=params.scheme, errors=errors)
    if params.copies < 1:
        raise DataError(f"copies must be >= 1, got {params.copies}")
    fingerprint = _fingerprint(records, params, skip_bad)
    _remove_stale_builds(out)
    meta = _up_to_date_meta(out, fingerprint)
    if meta is not None:
        return {"status": "up to date", "faces": meta["faces"], "samples": meta["samples"],
                "seconds": time.perf_counter() - start, "skipped": meta.get("skipped", []), "path": str(out)}

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        kept, crops, lms, mats = _crop_all(records, params, scheme.num_points, workers, errors, progress)
        if not kept:
            raise DataError(f"{params.dataset} {params.split!r}: every face was bad; nothing to store")
        meta = _write_store(tmp, params, scheme, kept, crops, lms, mats,
                            {"skipped": errors or [], "fingerprint": fingerprint})
        _swap_in(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return {"status": "built", "faces": meta["faces"], "samples": meta["samples"],
            "seconds": time.perf_counter() - start, "skipped": errors or [], "path": str(out)}


def _up_to_date_meta(out: Path, fingerprint: str) -> dict | None:
    """The meta of the complete store at `out` built from the same inputs and settings, else None.
    DataError when `out` is something else than a store (the new store replaces `out` whole: never a
    user's file or folder; an empty folder is fine)."""
    existing = out / "meta.json"
    if out.exists() and not existing.is_file() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: exists and is not a prepared store; choose another {{out}}", parameters=("out",))
    if existing.is_file():
        try:
            meta = _read_meta(existing)
        except DataError:
            meta = {}
        if meta.get("complete") and meta.get("fingerprint") == fingerprint:
            return meta
    return None


def _crop_all(records: list[FaceRecord], params: PrepareParams, num_points: int, workers: int,
              errors: list[str] | None, progress: bool) -> tuple[list, list, list, list]:
    """Every record cropped in `workers` threads: (kept (record, (w, h)), crops, landmarks, matrices).
    A bad face raises DataError, or with `errors` (skip_bad) is listed there and left out."""
    from tqdm import tqdm

    kept: list[tuple[FaceRecord, tuple[int, int]]] = []
    crops, lms, mats = [], [], []

    def work(rec: FaceRecord):
        try:
            return _crop_one(rec, params, num_points)
        except DataError as exc:
            if errors is None:
                raise
            return exc

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for rec, result in tqdm(zip(records, pool.map(work, records)), total=len(records),
                                desc="prepare", unit="face", disable=None if progress else True):  # None: off a terminal
            if isinstance(result, DataError):
                errors.append(str(result))  # type: ignore[union-attr]
                continue
            crop, lm, mat, size = result
            crops.append(crop)
            lms.append(lm)
            mats.append(mat)
            kept.append((rec, size))
    return kept, crops, lms, mats


def _write_store(tmp: Path, params: PrepareParams, scheme: LandmarkScheme, kept: list, crops: list, lms: list,
                 mats: list, extra_meta: dict) -> dict:
    """Write the store's files (see the module docstring) into `tmp`, augmented copies included; its meta."""
    S, F = params.store_size, params.copies
    M = len(kept) * F
    images = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8, shape=(M, S, S, 3))
    landmarks = np.zeros((M, scheme.num_points, 2), np.float32)
    matrices = np.zeros((M, 2, 3), np.float64)
    face_index = np.repeat(np.arange(len(kept), dtype=np.int32), F)
    for i, (crop, lm, mat) in enumerate(zip(crops, lms, mats)):
        images[i * F], landmarks[i * F], matrices[i * F] = crop, lm, mat
    if F > 1:
        _augment_copies(images, landmarks, matrices, F, scheme, params)
    images.flush()
    del images
    np.save(tmp / "landmarks.npy", landmarks)
    np.save(tmp / "matrices.npy", matrices)
    np.save(tmp / "face_index.npy", face_index)
    atomic_write_json(tmp / "records.json", [
        {"name": r.name, "image_path": str(r.image_path) if r.image_path else None, "subset": r.subset,
         "image_size": list(size), "attributes": r.attributes} for r, size in kept])
    meta = {
        "version": STORE_VERSION, "params": asdict(params), "scheme": scheme.name,
        "num_points": scheme.num_points, "store_size": S, "faces": len(kept), "samples": M,
        "skipped": extra_meta["skipped"], "fingerprint": extra_meta["fingerprint"], "complete": True,
    }
    atomic_write_json(tmp / "meta.json", meta)
    return meta


def _swap_in(tmp: Path, out: Path) -> None:
    """Replace `out` (if any) with the finished build `tmp`."""
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, out)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        return True
    return True


def _remove_stale_builds(out: Path) -> None:
    """Remove the `.<name>.partial-<pid>` / `.old-<pid>` folders that killed runs left beside `out`.

    A folder whose process is still alive belongs to a build in progress and is left alone.
    """
    if not out.parent.is_dir():
        return
    pattern = re.compile(rf"\.{re.escape(out.name)}\.(?:partial|old)-(\d+)")
    for path in out.parent.iterdir():
        match = pattern.fullmatch(path.name)
        if match and path.is_dir() and int(match[1]) != os.getpid() and not _pid_alive(int(match[1])):
            shutil.rmtree(path, ignore_errors=True)


def _augment_copies(images: np.ndarray, landmarks: np.ndarray, matrices: np.ndarray, copies: int,
                    scheme, params: PrepareParams, batch: int = 64) -> None:
    """Fill copies 1..F-1 of every face with seeded augmentations of copy 0 (store frame to store frame)."""
    import torch

    from kdlandmarks.data.augment import AugmentConfig, BatchAugmenter, batch_generator

    S = params.store_size
    device = "cuda" if torch.cuda.is_available() else "cpu"
    aug = BatchAugmenter(AugmentConfig(), torch.as_tensor(scheme.flip_index), S, S, S)
    bases = np.arange(0, len(images), copies)
    pairs = [(b, b + c) for b in bases for c in range(1, copies)]
    for start in range(0, len(pairs), batch):
        chunk = pairs[start:start + batch]
        src = torch.from_numpy(np.stack([images[b] for b, _ in chunk])).to(device)
        pts = torch.from_numpy(np.stack([landmarks[b] for b, _ in chunk])).double().to(device)
        out, moved, _, out_to_src = aug.augment(src, pts, batch_generator(params.seed, start))
        out = (out.permute(0, 2, 3, 1) * 255).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
        moved = moved.cpu().numpy()
        # the copy's store->copy map (the inverse of what the augmenter applied), composed with the base matrix
        to_copy = np.linalg.inv(out_to_src.double().numpy())
        for k, (b, dst) in enumerate(chunk):
            images[dst] = out[k]
            landmarks[dst] = moved[k]
            matrices[dst] = (to_copy[k] @ np.vstack([matrices[b], [0.0, 0.0, 1.0]]))[:2]
