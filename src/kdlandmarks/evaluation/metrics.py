"""Landmark accuracy metrics: per-image NME, failure rate, CED curves and two AUC definitions.

docs/method.md#evaluation. Per image, NME_i = mean_k ||p_k - g_k|| / d_i with d_i from the ground truth
(inter-ocular, inter-pupil, or the square root of a face box's area). Reported:

- ``nme``: 100 * mean_i NME_i (percent);
- ``failure_rate``: 100 * fraction of images with NME_i > threshold (percent);
- ``auc``: the standard AUC@threshold, (1/T) * integral_0^T CED(t) dt, integrated *exactly*: CED is a
  step function, so the integral equals mean_i max(0, T - NME_i);
- ``auc_paper_code``: the formula of the authors' evaluation code, which is what the paper's
  AUC values are: t_k = T*k/19 (k = 0..19), sum_{k=0}^{18} ((t_k + t_{k+1}) / 2) * CED(t_{k+1}). It is
  not normalised by T, so its maximum is 9.5 * T (0.95 at T = 0.1).
CED(t) is the fraction of images with NME_i <= t.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.data.schemes import LandmarkScheme

NORMALIZERS = ("inter-ocular", "inter-pupil", "box")
PAPER_CODE_STEPS = 20
AUC_METHOD = "exact integral of the step CED over [0, threshold], divided by threshold"


@dataclass
class EvaluationResult:
    """Per-image NME (fractions, not percent) and the summary numbers of one set of images."""

    per_image_nme: np.ndarray
    summary: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"summary": dict(self.summary), "per_image_nme": [float(v) for v in self.per_image_nme]}


def normalizing_distance(gt: np.ndarray, scheme: LandmarkScheme, normalizer: str = "inter-ocular",
                         boxes: np.ndarray | None = None) -> np.ndarray:
    """d_i for each of the (M, N, 2) ground-truth sets."""
    if normalizer == "inter-ocular":
        return scheme.interocular_distance(gt)
    if normalizer == "inter-pupil":
        return scheme.interpupil_distance(gt)
    if normalizer == "box":
        if boxes is None:
            lo, hi = gt.min(axis=1), gt.max(axis=1)
            w, h = hi[:, 0] - lo[:, 0], hi[:, 1] - lo[:, 1]
        else:
            b = np.asarray(boxes, dtype=np.float64)
            if b.shape != (len(gt), 4):
                raise DataError(f"boxes must be ({len(gt)}, 4) x0, y0, x1, y1, got shape {b.shape}")
            w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
        return np.sqrt(np.clip(w, 0, None) * np.clip(h, 0, None))
    raise ConfigError(f"unknown normalizer {normalizer!r}: choose one of {', '.join(NORMALIZERS)}")


def normalised_error(pred: Any, gt: Any, distance: Any) -> Any:
    """NME_i = mean_k ||p_k - g_k|| / d_i for (M, N, 2) predictions and ground truth and (M,) distances:
    the one NME formula, for numpy arrays (evaluation, ASM) or torch tensors (validation during training,
    on the device). No checks: see per_image_nme for checked numpy input."""
    if isinstance(pred, np.ndarray):
        return np.linalg.norm(pred - gt, axis=-1).mean(axis=-1) / distance
    return (pred - gt).norm(dim=-1).mean(dim=-1) / distance


def per_image_nme(pred: np.ndarray, gt: np.ndarray, scheme: LandmarkScheme, normalizer: str = "inter-ocular",
                  boxes: np.ndarray | None = None, names: list[str] | None = None) -> np.ndarray:
    """Per-image NME (fractions) of (M, N, 2) predictions against the ground truth, normalised by
    `normalizer` (see normalizing_distance); DataError for mismatched shapes, non-finite values or a zero
    normalising distance (named by `names` when given)."""
    pred = np.asarray(pred, dtype=np.float64)
    gt = np.asarray(gt, dtype=np.float64)
    if gt.ndim != 3 or gt.shape[2] != 2:
        raise DataError(f"ground truth must be an (M, N, 2) array, got shape {gt.shape}")
    if pred.shape != gt.shape:
        raise DataError(f"predictions {pred.shape} and ground truth {gt.shape} differ in shape")
    if gt.shape[1] != scheme.num_points:
        raise DataError(f"scheme {scheme.name} has {scheme.num_points} points, landmarks have {gt.shape[1]}")
    if not np.isfinite(gt).all():
        raise DataError("ground truth contains NaN or infinite values")
    if not np.isfinite(pred).all():
        raise DataError("predictions contain NaN or infinite values (a diverged model?)")
    d = normalizing_distance(gt, scheme, normalizer, boxes)
    bad = np.flatnonzero(~(d > 0))
    if bad.size:
        which = names[bad[0]] if names is not None else f"image {bad[0]}"
        raise DataError(f"{which}: {normalizer} normalising distance is zero ({bad.size} image(s) affected)")
    return normalised_error(pred, gt, d)


def ced_curve(per_image_nme: np.ndarray, threshold: float = 0.10, num: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """`num` evenly spaced thresholds in [0, threshold] and the fraction of images with NME <= each."""
    errors = np.sort(np.asarray(per_image_nme, dtype=np.float64).ravel())
    if errors.size == 0:
        raise DataError("cannot draw a CED curve of zero images")
    if num < 2:
        raise ConfigError(f"a CED curve needs at least 2 thresholds, got {num}")
    t = np.linspace(0.0, threshold, num)
    return t, np.searchsorted(errors, t, side="right") / errors.size


def auc_exact(per_image_nme: np.ndarray, threshold: float = 0.10) -> float:
    """Standard AUC@threshold: integral_0^T CED(t) dt / T, exact for the step CED."""
    e = np.asarray(per_image_nme, dtype=np.float64).ravel()
    return float(np.mean(np.clip(threshold - e, 0.0, None)) / threshold)


def auc_paper_code(per_image_nme: np.ndarray, threshold: float = 0.10) -> float:
    """The authors' code's AUC (docs/method.md#fr-auc): sum_{k=0}^{18} ((t_k + t_{k+1}) / 2) * CED(t_{k+1})."""
    t, ced = ced_curve(per_image_nme, threshold, PAPER_CODE_STEPS)
    return float(np.sum((t[:-1] + t[1:]) / 2 * ced[1:]))


def summarize(per_image_nme: np.ndarray, threshold: float = 0.10, normalizer: str = "inter-ocular") -> dict[str, Any]:
    e = np.asarray(per_image_nme, dtype=np.float64).ravel()
    if e.size == 0:
        raise DataError("cannot summarise zero images")
    return {
        "nme": float(100 * e.mean()),
        "failure_rate": float(100 * np.mean(e > threshold)),
        "auc": auc_exact(e, threshold),
        "auc_paper_code": auc_paper_code(e, threshold),
        "count": int(e.size),
        "normalizer": normalizer,
        "threshold": float(threshold),
        "auc_method": AUC_METHOD,
    }
