"""Metrics on hand-computed tiny cases: NME, failure rate, both AUCs, normalisers, CED."""
import json

import numpy as np
import pytest

from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.evaluation.metrics import (EvaluationResult, auc_exact, auc_paper_code, ced_curve, per_image_nme,
                                            summarize)
from kdlandmarks.data.schemes import LandmarkScheme

# Points 0, 1: outer eye corners 10 px apart; 2, 3: pupils 6 px apart; 4: mouth. Extent 10 x 8.
SCHEME = LandmarkScheme(name="toy", num_points=5, flip_pairs=((0, 1), (2, 3)), inter_ocular=(0, 1),
                        pupils=((2,), (3,)))
FACE = np.array([[0.0, 0.0], [10.0, 0.0], [2.0, 0.0], [8.0, 0.0], [5.0, 8.0]])


def faces(m: int) -> np.ndarray:
    return np.stack([FACE + 20.0 * i for i in range(m)])


def shifted(gt: np.ndarray, dx: np.ndarray) -> np.ndarray:
    """Every point of image i moved right by dx[i] pixels: point error dx[i], NME dx[i] / 10 inter-ocular."""
    out = gt.copy()
    out[..., 0] += np.asarray(dx)[:, None]
    return out


def evaluate(pred: np.ndarray, gt: np.ndarray, scheme: LandmarkScheme, normalizer: str = "inter-ocular",
             threshold: float = 0.10, boxes: np.ndarray | None = None, names: list[str] | None = None
             ) -> EvaluationResult:
    """The metrics of (M, N, 2) predictions as evaluate_model computes them on one subset."""
    nme = per_image_nme(pred, gt, scheme, normalizer, boxes, names)
    return EvaluationResult(nme, summarize(nme, threshold, normalizer))


def test_perfect_prediction():
    gt = faces(3)
    res = evaluate(gt.copy(), gt, SCHEME)
    s = res.summary
    assert s["nme"] == 0 and s["failure_rate"] == 0 and s["auc"] == pytest.approx(1.0)
    assert s["auc_paper_code"] == pytest.approx(0.95)  # the code formula's maximum
    assert s["count"] == 3 and s["normalizer"] == "inter-ocular" and s["threshold"] == 0.10
    np.testing.assert_array_equal(res.per_image_nme, 0)
    json.dumps(res.to_dict())


def test_nme_hand_computed():
    gt = faces(2)
    pred = gt.copy()
    pred[0, 4] += [3.0, 4.0]  # one point 5 px off: mean 1 px over 5 points, / 10 px -> NME 0.1
    res = evaluate(pred, gt, SCHEME)
    np.testing.assert_allclose(res.per_image_nme, [0.1, 0.0])
    assert res.summary["nme"] == pytest.approx(5.0)


def test_failure_just_above_and_below_threshold():
    gt = faces(2)
    res = evaluate(shifted(gt, [1.0001, 0.9999]), gt, SCHEME, threshold=0.10)
    np.testing.assert_allclose(res.per_image_nme, [0.10001, 0.09999])
    assert res.summary["failure_rate"] == pytest.approx(50.0)
    # Exactly at the threshold is not a failure (NME > threshold fails).
    assert summarize(np.array([0.1]), 0.1)["failure_rate"] == 0.0
    assert summarize(np.array([0.1 + 1e-12]), 0.1)["failure_rate"] == 100.0


def test_normaliser_changes_nme_by_known_ratio():
    gt = faces(2)
    pred = shifted(gt, [1.0, 2.0])
    io = evaluate(pred, gt, SCHEME, "inter-ocular").per_image_nme
    ip = evaluate(pred, gt, SCHEME, "inter-pupil").per_image_nme
    box = evaluate(pred, gt, SCHEME, "box").per_image_nme
    np.testing.assert_allclose(ip / io, 10 / 6)
    np.testing.assert_allclose(box / io, 10 / np.sqrt(10 * 8))
    boxes = np.array([[0, 0, 20, 5], [0, 0, 4, 4]], dtype=float)  # sqrt areas 10 and 4
    given = evaluate(pred, gt, SCHEME, "box", boxes=boxes).per_image_nme
    np.testing.assert_allclose(given, [1 / 10, 2 / 4])


def test_zero_normaliser_and_bad_input():
    gt = faces(2)
    gt[1, 1] = gt[1, 0]  # eye corners coincide
    with pytest.raises(DataError, match="zero"):
        evaluate(gt.copy(), gt, SCHEME, names=["a", "b"])
    with pytest.raises(DataError, match="b:"):
        evaluate(gt.copy(), gt, SCHEME, names=["a", "b"])
    gt = faces(2)
    with pytest.raises(DataError):
        evaluate(gt[:, :4], gt[:, :4], SCHEME)
    with pytest.raises(DataError, match="differ"):
        evaluate(gt[:1], gt, SCHEME)
    bad = gt.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(DataError, match="NaN"):
        evaluate(bad, gt, SCHEME)
    with pytest.raises(ConfigError):
        evaluate(gt, gt, SCHEME, normalizer="eyes")


def test_standard_auc_of_step_distribution():
    # NMEs 0, 0.05, 0.2 at T = 0.1: CED = 1/3 on [0, 0.05), 2/3 on [0.05, 0.1] -> 0.05/3 + 0.1/3 = 0.05.
    e = np.array([0.0, 0.05, 0.2])
    assert auc_exact(e, 0.1) == pytest.approx(0.5)
    # Half the images perfect, half at 0.04: CED 0.5 below 0.04, 1 from there -> 0.5*0.04 + 0.06 = 0.08.
    assert auc_exact(np.array([0.0, 0.04]), 0.1) == pytest.approx(0.8)
    # Matches a fine numerical integral of ced_curve.
    rng = np.random.default_rng(0)
    e = np.abs(rng.normal(0.05, 0.03, size=500))
    t, ced = ced_curve(e, 0.1, num=200001)
    assert auc_exact(e, 0.1) == pytest.approx(np.trapezoid(ced, t) / 0.1, abs=1e-4)


def test_paper_code_auc_hand_computed():
    # One image at NME 0.05: CED(t_k) = 1 for k >= 10 (t_10 = 0.0526 > 0.05 > t_9 = 0.0474),
    # so the sum runs over k = 9..18 of 0.1 (2k+1) / 38 = 0.1 * (19^2 - 9^2) / 38.
    assert auc_paper_code(np.array([0.05]), 0.1) == pytest.approx(0.1 * 280 / 38)
    # Two images, one beyond the threshold: half the maximum.
    assert auc_paper_code(np.array([0.0, 0.5]), 0.1) == pytest.approx(0.475)
    # The spec's formula written out literally.
    e = np.array([0.01, 0.02, 0.033, 0.07, 0.09, 0.2])
    t = [0.1 * k / 19 for k in range(20)]
    ced = [np.mean(e <= tk) for tk in t]
    literal = sum((t[k] + t[k + 1]) / 2 * ced[k + 1] for k in range(19))
    assert auc_paper_code(e, 0.1) == pytest.approx(literal)
    # Equals scipy-style trapz(y=t, x=cumsum(CED)) as the authors' code computes it.
    assert auc_paper_code(e, 0.1) == pytest.approx(np.trapezoid(t, np.cumsum(ced)))


def test_paper_code_auc_maximum_is_095():
    assert auc_paper_code(np.zeros(10), 0.1) == pytest.approx(0.95)
    rng = np.random.default_rng(1)
    assert auc_paper_code(rng.uniform(0, 0.2, 100), 0.1) < 0.95


def test_ced_curve_values():
    t, frac = ced_curve(np.array([0.0, 0.02, 0.05, 0.5]), 0.1, num=11)
    np.testing.assert_allclose(t, np.linspace(0, 0.1, 11))
    np.testing.assert_allclose(frac, [0.25, 0.25, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 0.75, 0.75])
    assert np.all(np.diff(frac) >= 0)
    with pytest.raises(DataError):
        ced_curve(np.array([]), 0.1)
