"""Evaluate a landmark model on a dataset split: crops, inference, metrics per subset, CED and .pts outputs.

Predictions are mapped back to the original image and the metrics are computed there. NME divides by a
distance in the same frame, so it equals the crop-frame value the paper reports (docs/method.md#nme) as long
as the crop is a similarity (it is: square window, isotropic scale).

Crop protocols:
- ``gt``: the paper's test protocol: the ground-truth landmark extent plus the model's margin (optimistic:
  the crop knows where the landmarks are).
- ``box``: the dataset's face box through the model's "box" calibration.
- ``detector``: accuracy end to end, as users get it: the face detector (the shipped RetinaFace by
  default) runs on each image as LandmarkDetector runs it, the detection that is the annotated face
  (detection.match_detection: IoU > 0.5 with the landmark box, or most of the landmarks inside a box of
  sensible size) is cropped through the detector's calibration, and the model runs on that crop.
  A face the detector misses (no detection matches it) is a failure: it is scored NME = MISS_NME (1.0,
  i.e. 100 % of the normalising distance). That is above any failure threshold below 1, so for the
  failure rate, the CED and the AUC a miss counts exactly as a face with no prediction at all (an
  infinite error: it never falls under the threshold); in the mean NME it adds 100/N percentage points
  per miss. Misses are counted apart (``misses``) and ``nme_detected`` is the mean over found faces.
"""
from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kdlandmarks.data.crop import BoxCalibration, CropTransform, box_crop, gt_crop
from kdlandmarks.data.datasets import FaceRecord, dataset_scheme, load_dataset
from kdlandmarks.data.datasets.pts import write_pts
from kdlandmarks.errors import ConfigError, DataError, ModelError
from kdlandmarks.fileio import atomic_write_json, output_folder
from kdlandmarks.evaluation.metrics import (AUC_METHOD, NORMALIZERS, PAPER_CODE_STEPS, EvaluationResult,
                                            normalizing_distance, per_image_nme, summarize)

EVAL_PROTOCOLS = ("gt", "box", "detector")
DEFAULT_DETECTOR = "retinaface"  # the shipped face detector (vendored ONNX), for --protocol detector
MISS_NME = 1.0  # NME of a face the detector misses (--protocol detector): a failure at any threshold < 1
PAPER_CODE_AUC = (f"authors' code (docs/method.md#fr-auc): {PAPER_CODE_STEPS} thresholds t_k = threshold*k/19, "
                  "sum_{k=0}^{18} ((t_k + t_{k+1})/2) * CED(t_{k+1}); max 9.5*threshold")
MISS_RULE = (f"a face the detector misses is a failure, scored NME = {MISS_NME:g} (100 % of the normalising "
             "distance: never under the threshold, so it counts in FR and adds nothing to the AUC)")
W300_SUBSET_ORDER = ("common", "challenging", "full")


@dataclass(frozen=True)
class EvaluationOptions:
    """How `evaluate_model` crops, scores and runs; the defaults are the paper's test protocol."""

    protocol: str = "gt"  # crop protocol: gt | box | detector (module docstring)
    normalizer: str = "inter-ocular"  # metrics.NORMALIZERS
    threshold: float = 0.1  # failure threshold of FR, CED and AUC
    flip_test: bool = False  # average with the un-mirrored prediction on the mirrored crop (recorded)
    detector: Any = DEFAULT_DETECTOR  # the face detector of protocol "detector": a name or a callable
    scheme: str | Path | None = None  # landmark scheme of the dataset (a folder of .pts: the model's own)
    skip_bad: bool = False  # skip (and list) bad faces instead of stopping at the first
    batch_size: int = 32
    device: str = "cpu"
    backend: str | None = None  # None: as LandmarkDetector picks (a shipped name runs on onnxruntime)
    progress: bool | None = None  # None: a progress bar only on a terminal


def evaluate_model(model: str | Path, dataset: str, root: str | Path, split: str, out_dir: str | Path,
                   options: EvaluationOptions | None = None) -> dict[str, Any]:
    """Run `model` (a shipped name, a model file, a Lightning checkpoint or an exported .onnx) on one split
    and write its report.

    The network runs as LandmarkDetector runs it: a shipped name on onnxruntime (no torch needed) unless
    `options.backend` is "torch". Writes metrics.json, ced.csv, ced.png (where matplotlib is installed) and
    pts/<face>.pts into out_dir and returns the metrics.json content. A flip test is recorded in the
    report's protocol, so flip-test scores are never mistaken for single-pass ones. Under protocol
    "detector" the module docstring says how a missed face is scored.
    """
    from kdlandmarks.inference.detector import LandmarkDetector

    opts = options or EvaluationOptions()
    _check_options(opts)
    output_folder(out_dir, option="out_dir", create=False)  # a file in the way fails now, not at the end

    # Checks the model file, backend, device and (flip test) the landmark scheme before any face is read.
    runner = LandmarkDetector(model, device=opts.device, backend=opts.backend, batch_size=opts.batch_size,
                              flip_test=opts.flip_test, detector=opts.detector)
    info = runner.info
    scheme = info.scheme if opts.scheme is None and dataset == "folder" else opts.scheme  # .pts: model's own
    lm_scheme = dataset_scheme(dataset, scheme)
    if lm_scheme.num_points != info.num_points:
        raise ModelError(f"{runner.model_path}: model predicts {info.num_points} points, "
                         f"dataset {dataset} ({lm_scheme.name}) has {lm_scheme.num_points}")
    calibration, detector_name = _crop_calibration(runner, opts.protocol)

    skipped: list[str] = []
    notes: list[str] = []
    records, groups = _load_records(dataset, root, split, scheme, skipped if opts.skip_bad else None, notes)
    kept, transforms = _crop_windows(records, opts.protocol, info, calibration, opts.skip_bad, skipped)
    kept, transforms = _normalisable(kept, transforms, lm_scheme, opts.normalizer, opts.skip_bad, skipped)
    done, preds, detections = _predict(runner, kept, transforms, opts.skip_bad, skipped, opts.progress)
    if not done:
        raise DataError(f"{dataset} {split!r} under {root}: no face could be evaluated")
    scores = _score(records, groups, done, preds, lm_scheme, opts)
    if not scores.results:
        raise DataError(f"{dataset} {split!r}: every reported subset is empty after skipping bad faces")

    out = output_folder(out_dir, option="out_dir")
    pts_names = _write_pts(out, done, preds)
    _write_ced(out, scores.results, opts.threshold,
               f"{dataset} {split} ({opts.protocol} crop, {opts.normalizer})", notes)
    data = {"dataset": dataset, "root": str(root), "split": split, "scheme": lm_scheme.name, "count": len(done),
            "skipped": len(skipped), "notes": notes}
    report = {
        "protocol": _protocol(opts, runner, calibration, _normalizer_points(lm_scheme, opts.normalizer,
                                                                            scores.box_source), data),
        "subsets": {name: r.summary for name, r in scores.results.items()},
        "per_image": [
            {"name": r.name, "subset": r.subset, "nme": float(e), "pts": f"pts/{pn}.pts" if p is not None else None}
            for r, e, pn, p in zip(done, scores.nme, pts_names, preds)
        ],
        "skipped": skipped,
    }
    if opts.protocol == "detector":
        _add_detections(report, detector_name, scores.found, detections)
    atomic_write_json(out / "metrics.json", report, indent=2)
    return report


def _protocol(opts: EvaluationOptions, runner: Any, calibration: BoxCalibration | None, normalizer_points: str,
              data: dict[str, Any]) -> dict[str, Any]:
    """metrics.json's "protocol": how the numbers were made (crop, normaliser, AUC, model), then `data`."""
    info = runner.info
    return {
        "crop": opts.protocol,
        "crop_margin": info.crop_margin,
        "box_calibration": asdict(calibration) if calibration is not None else None,
        "normalizer": opts.normalizer,
        "normalizer_points": normalizer_points,
        "threshold": float(opts.threshold),
        "flip_test": bool(opts.flip_test),
        "auc": AUC_METHOD,
        "auc_paper_code": PAPER_CODE_AUC,
        "frame": "original image (NME is scale-invariant: equals the crop-frame value)",
        "model": os.path.abspath(runner.model_path),
        "backend": runner.backend,
        "autocast": runner.autocast,
        "arch": info.arch,
        "input_size": info.input_size,
        "space": info.space,
        **data,
    }


def _check_options(opts: EvaluationOptions) -> None:
    if opts.protocol not in EVAL_PROTOCOLS:
        raise ConfigError(f"unknown crop protocol {opts.protocol!r} for evaluation: choose one of "
                          f"{', '.join(EVAL_PROTOCOLS)}")
    if opts.normalizer not in NORMALIZERS:
        raise ConfigError(f"unknown normalizer {opts.normalizer!r}: choose one of {', '.join(NORMALIZERS)}")
    if not opts.threshold > 0:
        raise ConfigError(f"threshold must be positive, got {opts.threshold}")
    if opts.protocol == "detector" and not opts.threshold < MISS_NME:
        raise ConfigError(f"with {{protocol}}=detector the threshold must be below {MISS_NME:g}, the NME a "
                          f"missed face is scored with; got {opts.threshold}", parameters=("protocol",))
    if opts.batch_size < 1:
        raise ConfigError(f"batch size must be at least 1, got {opts.batch_size}")


def _crop_calibration(runner: Any, protocol: str) -> tuple[BoxCalibration | None, str | None]:
    """(box-to-crop calibration, detector name) of a crop protocol: the model's "box" calibration for
    `box`, the face detector's for `detector`, none for `gt`."""
    if protocol == "box":
        if "box" not in runner.info.box_calibrations:
            raise ModelError(f"{runner.model_path}: model has no 'box' crop calibration, so the box protocol "
                             f"cannot reproduce its training crop; use {{protocol}}=gt", parameters=("protocol",))
        return BoxCalibration(**runner.info.box_calibrations["box"]), None
    if protocol == "detector":
        detector_name = runner.face_detector.name  # a detector that is not installed: one line, now
        return runner.detector_calibration(detector_name), detector_name
    return None, None


def _crop_windows(records: list[FaceRecord], protocol: str, info: Any, calibration: BoxCalibration | None,
                  skip_bad: bool, skipped: list[str]) -> tuple[list[FaceRecord], list[CropTransform | None]]:
    """Pass 1 (gt, box): crop windows (cheap, no pixels) so bad records are dropped before inference;
    (kept records, their transforms; None under `detector`, where the crop comes from the detection)."""
    transforms: list[CropTransform | None] = []
    kept: list[FaceRecord] = []
    for rec in records:
        try:
            if protocol == "gt":
                t = gt_crop(rec.landmarks, info.input_size, info.crop_margin)
            elif protocol == "box":
                if rec.box is None:
                    raise DataError(f"{rec.name}: no face box, required by {{protocol}}=box", parameters=("protocol",))
                t = box_crop(rec.box, info.input_size, calibration)
            else:
                t = None  # from the detection, once the image is read
        except DataError as exc:
            if not skip_bad:
                raise
            skipped.append(str(exc))
            continue
        transforms.append(t)
        kept.append(rec)
    return kept, transforms


def _normalisable(records: list[FaceRecord], transforms: list[CropTransform | None], scheme: Any, normalizer: str,
                  skip_bad: bool, skipped: list[str]) -> tuple[list[FaceRecord], list[CropTransform | None]]:
    """The records whose ground truth gives the normaliser a length (inter-ocular, inter-pupil): one whose
    two eye points coincide has no NME; it is refused by name, or skipped with skip_bad, before inference."""
    if normalizer not in ("inter-ocular", "inter-pupil") or not records:
        return records, transforms
    d = normalizing_distance(np.stack([r.landmarks for r in records]), scheme, normalizer)
    for i in np.flatnonzero(~(d > 0)):
        points = _normalizer_points(scheme, normalizer, None)
        message = f"{records[i].name}: {normalizer} distance is zero (its {points} coincide), so it has no NME"
        if not skip_bad:
            raise DataError(message)
        skipped.append(message)
    keep = d > 0
    return [r for r, k in zip(records, keep) if k], [t for t, k in zip(transforms, keep) if k]


@dataclass
class _Scores:
    nme: np.ndarray  # per evaluated face, MISS_NME for a miss
    found: np.ndarray  # bool, per evaluated face: a prediction exists
    results: dict[str, EvaluationResult]  # per reported subset
    box_source: str | None  # what the "box" normaliser measured


def _score(records: list[FaceRecord], groups: dict[str, list[int]], done: list[FaceRecord], preds: list,
           lm_scheme: Any, opts: EvaluationOptions) -> _Scores:
    """Per-face NME in the original image and the summaries of each subset (misses counted apart)."""
    normalizer = opts.normalizer
    found = np.array([p is not None for p in preds], dtype=bool)
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
    nme_all = np.full(len(done), MISS_NME)
    if found.any():
        hit = np.flatnonzero(found)
        nme_all[hit] = per_image_nme(np.stack([preds[i] for i in hit]), gt[hit], lm_scheme, normalizer,
                                     None if boxes is None else boxes[hit], [names[i] for i in hit])
    results: dict[str, EvaluationResult] = {}
    for name, idx in subsets.items():
        if idx.size == 0:
            continue
        summary = summarize(nme_all[idx], opts.threshold, normalizer)
        if opts.protocol == "detector":
            hits = idx[found[idx]]
            summary["misses"] = int(idx.size - hits.size)
            summary["nme_detected"] = float(100 * nme_all[hits].mean()) if hits.size else None
        results[name] = EvaluationResult(nme_all[idx], summary)
    return _Scores(nme_all, found, results, box_source)


def _write_pts(out: Path, done: list[FaceRecord], preds: list) -> list[str]:
    """pts/<name>.pts for every face with a prediction; returns every face's pts name."""
    pts_names = _pts_names(done)
    for name, p in zip(pts_names, preds):
        if p is not None:
            write_pts(out / "pts" / f"{name}.pts", p)
    return pts_names


def _write_ced(out: Path, results: dict[str, EvaluationResult], threshold: float, title: str,
               notes: list[str]) -> None:
    """ced.csv, and ced.png where matplotlib is installed (else a note says why not)."""
    from kdlandmarks.evaluation.plots import matplotlib_missing, plot_ced, write_ced_csv

    curves = {name: r.per_image_nme for name, r in results.items()}
    why_not = matplotlib_missing()
    if why_not is None:
        plot_ced(curves, out / "ced.png", threshold, title=title)
    else:
        notes.append(f"ced.png not drawn (ced.csv holds the curves): {why_not}")
    write_ced_csv(curves, out / "ced.csv", threshold)


def _add_detections(report: dict[str, Any], detector_name: str | None, found: np.ndarray, detections: list) -> None:
    """The detector protocol's fields: the miss rule and count, and each face's matched detection."""
    report["protocol"].update({"detector": detector_name, "miss_nme": MISS_NME, "miss_rule": MISS_RULE,
                               "misses": int((~found).sum()),
                               "match": "detection.match_detection: IoU > 0.5 with the landmark box, or >= 75 % "
                                        "of the landmarks inside a box at most 2x the landmark extent"})
    for entry, det in zip(report["per_image"], detections):
        entry["detected"] = det is not None
        if det is not None:
            entry["box"] = [round(float(v), 2) for v in det[0]]
            entry["score"] = round(float(det[1]), 4)


def _load_records(dataset: str, root: str | Path, split: str, scheme, errors: list[str] | None,
                  notes: list[str]) -> tuple[list[FaceRecord], dict[str, list[int]]]:
    """The split's records and the named subsets to report (name -> record indices)."""
    if dataset == "300w":
        from kdlandmarks.data.datasets.w300 import TEST_SUBSETS, read_300w

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
                                f"evaluate a present sub-folder instead (e.g. {{split}}=lfpw/testset)",
                                parameters=("split",))
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


def _predict(runner: Any, records: list[FaceRecord], transforms: list[CropTransform | None], skip_bad: bool,
             skipped: list[str], progress: bool | None
             ) -> tuple[list[FaceRecord], list[np.ndarray | None], list[tuple[np.ndarray, float] | None]]:
    """Each readable record's predicted landmarks in original-image coordinates, through `runner` (a
    LandmarkDetector: its batching, decoding and flip test). A record with a transform is cropped with
    it; one without runs the detector as LandmarkDetector.detect does and is cropped from the detection
    that is the annotated face; a miss has prediction None. Returns (records, predictions, detections:
    (box, score) or None)."""
    from tqdm import tqdm

    from kdlandmarks.inference.detection import Detection, match_detection

    batch_size = runner.batch_size
    preds: list[np.ndarray | None] = []
    dets: list[tuple[np.ndarray, float] | None] = []
    done: list[FaceRecord] = []
    n_batches = (len(records) + batch_size - 1) // batch_size
    bar = tqdm(total=n_batches, desc="evaluate", unit="batch", disable=None if progress is None else not progress)
    try:
        for start in range(0, len(records), batch_size):
            crops, batch_t, slots = [], [], []
            for rec, t in zip(records[start:start + batch_size], transforms[start:start + batch_size]):
                try:
                    image = rec.load_checked_image()  # impossible ground truth is refused, as in prepare
                except DataError as exc:
                    if not skip_bad:
                        raise
                    skipped.append(str(exc))
                    continue
                done.append(rec)
                preds.append(None)
                if t is None:  # --protocol detector
                    found = runner.crop_faces(image, name=rec.name)
                    k = match_detection([Detection(b, float(sc)) for b, sc in zip(found.boxes, found.scores)],
                                        rec.landmarks)
                    dets.append(None if k is None else (found.boxes[k], float(found.scores[k])))
                    if k is None:
                        continue  # a miss: no crop, no prediction
                    t, crop = found.transforms[k], found.crops[k]
                else:
                    dets.append(None)
                    crop = t.warp(image)
                crops.append(crop)
                batch_t.append(t)
                slots.append(len(preds) - 1)
            if crops:
                for points, t, slot in zip(runner.predict_crops(crops), batch_t, slots):
                    preds[slot] = t.to_image(points)
            bar.update(1)
    finally:
        bar.close()
    return done, preds, dets


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
