"""Evaluate a landmark model on a dataset split: crops, inference, metrics per subset, CED and .pts outputs.

Predictions are mapped back to the original image and the metrics are computed there. NME divides by a
distance in the same frame, so it equals the crop-frame value the paper reports (KD-LOSS-SPEC §5) as long
as the crop is a similarity (it is: square window, isotropic scale).

Crop protocols: ``gt`` (the paper's test protocol: the ground-truth landmark extent plus the model's
margin, optimistic) and ``box`` (the dataset's face box through the model's "box" calibration).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from .crop import BoxCalibration, CropTransform, box_crop, gt_crop
from .datasets import FaceRecord, dataset_scheme, load_dataset
from .datasets.pts import write_pts
from .errors import ConfigError, DataError, ModelError
from .fileio import atomic_write_json
from .metrics import AUC_METHOD, NORMALIZERS, PAPER_CODE_STEPS, per_image_nme, subset_results

EVAL_PROTOCOLS = ("gt", "box")
PAPER_CODE_AUC = (f"authors' code (KD-LOSS-SPEC §5): {PAPER_CODE_STEPS} thresholds t_k = threshold*k/19, "
                  "sum_{k=0}^{18} ((t_k + t_{k+1})/2) * CED(t_{k+1}); max 9.5*threshold")
W300_SUBSET_ORDER = ("common", "challenging", "full")


def evaluate_model(model: str | Path, dataset: str, root: str | Path, split: str, out_dir: str | Path,
                   protocol: str = "gt", normalizer: str = "inter-ocular", threshold: float = 0.1,
                   batch_size: int = 32, device: str = "cpu", scheme: str | Path | None = None,
                   skip_bad: bool = False, progress: bool | None = None) -> dict[str, Any]:
    """Run `model` (a model file, Lightning checkpoint or shipped name) on one split and write its report.

    Writes metrics.json, ced.png, ced.csv and pts/<face>.pts into out_dir and returns the metrics.json
    content. `progress=None` shows the bar only on a terminal.
    """
    from .inference import torch_device
    from .models import load_model
    from .zoo import resolve_model

    if protocol not in EVAL_PROTOCOLS:
        raise ConfigError(f"unknown crop protocol {protocol!r} for evaluation: choose one of {', '.join(EVAL_PROTOCOLS)}")
    if normalizer not in NORMALIZERS:
        raise ConfigError(f"unknown normalizer {normalizer!r}: choose one of {', '.join(NORMALIZERS)}")
    if not threshold > 0:
        raise ConfigError(f"threshold must be positive, got {threshold}")
    if batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {batch_size}")
    dev = torch_device(device)

    model_path = resolve_model(model)
    net, info = load_model(model_path, map_location="cpu")
    net = net.eval()
    if scheme is None and dataset == "folder":
        scheme = info.scheme  # a folder of .pts files is read with the model's own scheme
    lm_scheme = dataset_scheme(dataset, scheme)
    if lm_scheme.num_points != info.num_points:
        raise ModelError(f"{model_path}: model predicts {info.num_points} points, "
                         f"dataset {dataset} ({lm_scheme.name}) has {lm_scheme.num_points}")
    calibration = None
    if protocol == "box":
        if "box" not in info.box_calibrations:
            raise ModelError(f"{model_path}: model has no 'box' crop calibration, so the box protocol "
                             f"cannot reproduce its training crop; use --protocol gt")
        calibration = BoxCalibration(**info.box_calibrations["box"])

    skipped: list[str] = []
    errors = skipped if skip_bad else None
    notes: list[str] = []
    records, groups = _load_records(dataset, root, split, scheme, errors, notes)

    # Pass 1: crop windows (cheap, no pixels) so bad records are dropped before inference.
    transforms: list[CropTransform] = []
    kept: list[FaceRecord] = []
    for rec in records:
        try:
            if protocol == "gt":
                t = gt_crop(rec.landmarks, info.input_size, info.crop_margin)
            else:
                if rec.box is None:
                    raise DataError(f"{rec.name}: no face box, required by --protocol box")
                t = box_crop(rec.box, info.input_size, calibration)
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
            continue
        transforms.append(t)
        kept.append(rec)

    preds, done = _predict(net, info, kept, transforms, batch_size, dev, skip_bad, skipped, progress)
    if not done:
        raise DataError(f"{dataset} {split!r} under {root}: no face could be evaluated")

    record_index = {id(r): i for i, r in enumerate(records)}
    orig_idx = [record_index[id(r)] for r in done]
    remap = {old: new for new, old in enumerate(orig_idx)}
    subsets = {name: np.array([remap[i] for i in idx if i in remap], dtype=np.int64) for name, idx in groups.items()}
    gt = np.stack([r.landmarks for r in done])
    names = [r.name for r in done]
    boxes, box_source = None, None
    if normalizer == "box":
        if all(r.box is not None for r in done):
            boxes, box_source = np.stack([np.asarray(r.box, dtype=np.float64) for r in done]), "dataset face boxes"
        else:
            box_source = "ground-truth landmark extent"
    results = subset_results(preds, gt, lm_scheme, subsets, normalizer, threshold, boxes, names)
    if not results:
        raise DataError(f"{dataset} {split!r}: every reported subset is empty after skipping bad faces")
    nme_all = per_image_nme(preds, gt, lm_scheme, normalizer, boxes, names)

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    pts_names = _pts_names(done)
    for name, p in zip(pts_names, preds):
        write_pts(out / "pts" / f"{name}.pts", p)

    from .plots import plot_ced, write_ced_csv

    curves = {name: r.per_image_nme for name, r in results.items()}
    title = f"{dataset} {split} ({protocol} crop, {normalizer})"
    plot_ced(curves, out / "ced.png", threshold, title=title)
    write_ced_csv(curves, out / "ced.csv", threshold)

    report = {
        "protocol": {
            "crop": protocol,
            "crop_margin": info.crop_margin,
            "box_calibration": info.box_calibrations.get("box") if protocol == "box" else None,
            "normalizer": normalizer,
            "normalizer_points": _normalizer_points(lm_scheme, normalizer, box_source),
            "threshold": float(threshold),
            "auc": AUC_METHOD,
            "auc_paper_code": PAPER_CODE_AUC,
            "frame": "original image (NME is scale-invariant: equals the crop-frame value)",
            "model": os.path.abspath(model_path),
            "arch": info.arch,
            "input_size": info.input_size,
            "space": info.space,
            "dataset": dataset,
            "root": str(root),
            "split": split,
            "scheme": lm_scheme.name,
            "count": len(done),
            "skipped": len(skipped),
            "notes": notes,
        },
        "subsets": {name: r.summary for name, r in results.items()},
        "per_image": [
            {"name": r.name, "subset": r.subset, "nme": float(e), "pts": f"pts/{pn}.pts"}
            for r, e, pn in zip(done, nme_all, pts_names)
        ],
        "skipped": skipped,
    }
    atomic_write_json(out / "metrics.json", report, indent=2)
    return report


def _load_records(dataset: str, root: str | Path, split: str, scheme, errors: list[str] | None,
                  notes: list[str]) -> tuple[list[FaceRecord], dict[str, list[int]]]:
    """The split's records and the named subsets to report (name -> record indices)."""
    if dataset == "300w":
        from .datasets.w300 import TEST_SUBSETS, read_300w

        if split in TEST_SUBSETS:
            root = Path(root)
            if not root.is_dir():
                raise DataError(f"{root}: 300-W root folder not found")
            wanted = TEST_SUBSETS[split]
            present = [f for f in wanted if (root / f).is_dir()]
            missing = [f for f in wanted if f not in present]
            if missing:
                notes.append(f"300-W folders missing, subsets using them not reported: {', '.join(missing)}")
            records: list[FaceRecord] = []
            for folder in present:
                records += read_300w(root, folder, errors=errors)
            groups = {name: [i for i, r in enumerate(records) if r.subset in parts]
                      for name in W300_SUBSET_ORDER
                      if set(parts := TEST_SUBSETS[name]) <= set(wanted) and set(parts) <= set(present)}
            if not groups:
                raise DataError(f"300-W split {split!r}: folder(s) missing under {root}: {', '.join(missing)}; "
                                f"evaluate a present sub-folder instead (e.g. --split lfpw/testset)")
            return records, groups
    records = load_dataset(dataset, root, split, scheme=scheme, errors=errors)
    everything = list(range(len(records)))
    attributes: list[str] = []
    for r in records:
        attributes += [k for k in r.attributes if k not in attributes]
    if dataset == "wflw" and attributes:
        groups = {"full": everything}
        for key in attributes:
            groups[key] = [i for i, r in enumerate(records) if r.attributes.get(key)]
        return records, groups
    return records, {split: everything}


def _predict(net, info, records: list[FaceRecord], transforms: list[CropTransform], batch_size: int, dev,
             skip_bad: bool, skipped: list[str], progress: bool | None):
    """Predicted landmarks in original-image coordinates for the records whose image could be read."""
    from tqdm import tqdm

    from .inference import LandmarkDetector

    # the same batching and decoding that inference uses; the crops are already at the input size
    runner = LandmarkDetector.from_model(net, info, device=str(dev), batch_size=batch_size)
    preds: list[np.ndarray] = []
    done: list[FaceRecord] = []
    n_batches = (len(records) + batch_size - 1) // batch_size
    bar = tqdm(total=n_batches, desc="evaluate", unit="batch", disable=None if progress is None else not progress)
    try:
        for start in range(0, len(records), batch_size):
            crops, batch_recs, batch_t = [], [], []
            for rec, t in zip(records[start:start + batch_size], transforms[start:start + batch_size]):
                try:
                    image = rec.load_image()
                except DataError as exc:
                    if not skip_bad:
                        raise
                    skipped.append(str(exc))
                    continue
                crops.append(t.warp(image))
                batch_recs.append(rec)
                batch_t.append(t)
            if crops:
                for points, t in zip(runner.predict_crops(crops), batch_t):
                    preds.append(t.to_image(points))
                done += batch_recs
            bar.update(1)
    finally:
        bar.close()
    pred_arr = np.stack(preds) if preds else np.zeros((0, info.num_points, 2))
    return pred_arr, done


def _normalizer_points(scheme, normalizer: str, box_source: str | None) -> str:
    if normalizer == "inter-ocular":
        return f"points {scheme.inter_ocular[0]} and {scheme.inter_ocular[1]} (0-based)"
    if normalizer == "inter-pupil":
        return f"centroids of points {list(scheme.pupils[0])} and {list(scheme.pupils[1])} (0-based)"
    return f"sqrt(width * height) of the {box_source}"


def _pts_names(records: list[FaceRecord]) -> list[str]:
    """One file stem per face: the image's stem, or the sanitised record name when that is taken or absent."""
    used: set[str] = set()
    names = []
    for rec in records:
        stem = rec.image_path.stem if rec.image_path is not None else _sanitize(rec.name)
        if stem in used:
            stem = _sanitize(rec.name)
        base, k = stem, 1
        while stem in used:
            stem = f"{base}_{k}"
            k += 1
        used.add(stem)
        names.append(stem)
    return names


def _sanitize(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "face"
