"""Named box conventions ("box sources"): each maps a face box to a sensible crop, the tight landmark box
reproduces the ground-truth crop, a misspelt name is an error, and `predict --box-source` works.

Fast and deterministic: the bundled 300-W sample and the shipped lite student on onnxruntime only.
"""
from __future__ import annotations

import json

import numpy as np
import pytest

from kdlandmarks.cli import main
from kdlandmarks.data.crop import DEFAULT_MARGIN, BoxCalibration, gt_crop, landmark_box, square_from_landmarks
from kdlandmarks.data.datasets import dataset_scheme, sample_root
from kdlandmarks.data.datasets.w300 import read_300w
from kdlandmarks.inference.calibration import DEFAULT_CALIBRATIONS, box_source_names, check_box_source, default_calibration
from kdlandmarks.inference.detection import detector_status, match_detection
from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detector import LandmarkDetector
from kdlandmarks.evaluation.metrics import per_image_nme

CONVENTIONS = ("retinaface", "haar", "dlib", "mediapipe", "mediapipe-full", "landmarks")
LITE = "kd-student-300w-lite"


@pytest.fixture(scope="module")
def faces():
    root = sample_root()
    return read_300w(root, "train") + read_300w(root, "lfpw/testset")


@pytest.fixture(scope="module")
def test_faces():
    return read_300w(sample_root(), "lfpw/testset")


@pytest.fixture(scope="module")
def lite():
    return LandmarkDetector(LITE, backend="onnx", detector=lambda image: [])


def crop_error(cal: BoxCalibration, box, landmarks, margin=DEFAULT_MARGIN) -> tuple[float, float]:
    """Centre distance / gt side and side / gt side of the calibrated crop of `box` vs the gt crop."""
    cx, cy, side = cal.square(np.asarray(box, dtype=np.float64))
    gx, gy, gside = square_from_landmarks(landmarks, margin)
    return float(np.hypot(cx - gx, cy - gy) / gside), float(side / gside)


# --------------------------------------------------------------------------------------------------
# The conventions
# --------------------------------------------------------------------------------------------------

def test_every_common_detector_has_a_named_convention():
    assert set(CONVENTIONS) <= set(box_source_names())
    assert box_source_names(["mine"])[-1] == "mine"


@pytest.mark.parametrize("name", CONVENTIONS)
def test_convention_maps_a_box_to_a_sensible_crop(name, lite):
    cal = DEFAULT_CALIBRATIONS[name]
    # Faces are left-right symmetric; boxes reach higher (forehead) than the 68 points do, never lower;
    # and the crop is the landmark extent plus 10 % each side, so a little larger than a face box.
    assert abs(cal.dx) < 0.02 and 0.0 <= cal.dy < 0.2 and 1.0 < cal.scale < 1.3
    # A square 100-px box at the origin: its crop is centred near it, 100-130 px wide, below-or-at centre.
    cx, cy, side = lite.calibration_for(name).square(np.array([-50.0, -50.0, 50.0, 50.0]))
    assert abs(cx) < 2 and 0 <= cy < 20 and 100 < side < 130
    # The model's margin rescales the side only.
    wider = default_calibration(name, margin=0.2)
    assert (wider.dx, wider.dy) == (cal.dx, cal.dy) and wider.scale == pytest.approx(cal.scale * 1.4 / 1.2)


def test_landmark_convention_on_a_tight_box_reproduces_the_gt_crop(faces, lite):
    cal = lite.calibration_for("landmarks")
    ratios = []
    for rec in faces:
        centre, ratio = crop_error(cal, landmark_box(rec.landmarks), rec.landmarks)
        assert centre < 1e-9 and 0.9 < ratio < 1.1, rec.name  # the side depends on the face's aspect ratio
        ratios.append(ratio)
    assert 0.98 < np.median(ratios) < 1.02


def test_landmark_convention_predicts_like_the_gt_crop_and_the_default_does_not(test_faces, lite):
    scheme = dataset_scheme("300w")
    images = [r.load_image() for r in test_faces]
    gt = np.stack([r.landmarks for r in test_faces])
    tight = [landmark_box(p)[None] for p in gt]
    crops = [gt_crop(p, lite.input_size, lite.info.crop_margin) for p in gt]
    by_gt = np.stack([t.to_image(p) for t, p in zip(crops, lite.predict_crops([t.warp(im) for t, im in zip(crops, images)]))])
    by_landmarks = np.stack([f[0].landmarks for f in lite.detect_batch(images, tight, box_source="landmarks")])
    by_default = np.stack([f[0].landmarks for f in lite.detect_batch(images, tight)])  # taken as RetinaFace's
    nme_gt, nme_lm, nme_default = (100 * per_image_nme(p, gt, scheme).mean() for p in (by_gt, by_landmarks, by_default))
    assert nme_lm < 8.0 and abs(nme_lm - nme_gt) < 1.5, (nme_lm, nme_gt)
    assert nme_default > nme_lm + 3.0, (nme_default, nme_lm)  # why naming the convention matters


def test_given_boxes_default_to_retinaface_and_detected_boxes_keep_their_detector(test_faces, lite):
    rec = test_faces[0]
    image, box = rec.load_image(), landmark_box(rec.landmarks)
    assert lite.calibration_for() == lite.calibration_for("retinaface") == DEFAULT_CALIBRATIONS["retinaface"]
    named = LandmarkDetector(LITE, backend="onnx", detector="haar")  # a named detector's boxes, as before
    assert named.calibration_for() == DEFAULT_CALIBRATIONS["haar"]
    # A custom detector's boxes have no calibration (cropped as they are), whatever box_source says:
    # box_source names the given boxes only.
    custom = LandmarkDetector(LITE, backend="onnx", detector=lambda im: [box])
    identity = LandmarkDetector(LITE, backend="onnx", detector=lambda im: [], calibration=BoxCalibration())
    found = custom.detect(image, box_source="landmarks")[0].landmarks
    np.testing.assert_allclose(found, identity.detect(image, boxes=[box])[0].landmarks, atol=1e-4)
    given = custom.detect(image, boxes=[box], box_source="landmarks")[0].landmarks
    assert np.abs(given - found).max() > 1.0


# --------------------------------------------------------------------------------------------------
# Misspelt names
# --------------------------------------------------------------------------------------------------

def test_misspelt_box_source_is_a_one_line_error_listing_the_names(test_faces, lite):
    image = test_faces[0].load_image()
    box = [[10.0, 10.0, 100.0, 100.0]]
    calls = [lambda: check_box_source("retinafce"),
             lambda: lite.calibration_for("retinafce"),
             lambda: lite.detect(image, boxes=box, box_source="retinafce"),
             lambda: lite.detect_batch([image], [box], box_source="retinafce"),
             lambda: lite.detect_batch([image], [None], box_source="retinafce"),  # checked before detecting
             lambda: LandmarkDetector(LITE, backend="onnx", calibration="retinafce")]
    for call in calls:
        with pytest.raises(ConfigError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and "'retinafce'" in message
        assert all(name in message for name in CONVENTIONS), message


# --------------------------------------------------------------------------------------------------
# The CLI
# --------------------------------------------------------------------------------------------------

def test_cli_predict_with_box_source_landmarks(tmp_path, test_faces):
    rec = test_faces[0]
    photo = rec.image_path
    box = ",".join(f"{v:.2f}" for v in landmark_box(rec.landmarks))
    runs = {}
    for source in ("landmarks", None):
        out = tmp_path / (source or "default")
        flag = ["--box-source", source] if source else []
        assert main(["predict", str(photo), "--boxes", box, *flag, "--out", str(out)]) == 0
        runs[source] = json.loads((out / f"{photo.stem}.json").read_text())
    assert runs["landmarks"]["box_source"] == "landmarks" and runs[None]["box_source"] == "retinaface"
    scheme = dataset_scheme("300w")
    nme = {s: 100 * per_image_nme(np.asarray(r["faces"][0]["landmarks"])[None], rec.landmarks[None], scheme)[0]
           for s, r in runs.items()}
    assert nme["landmarks"] < 10.0 and nme[None] > nme["landmarks"], nme


def test_cli_rejects_a_misspelt_box_source_and_one_without_boxes(tmp_path, capsys):
    photo = sorted((sample_root() / "lfpw" / "testset").glob("*.jpg"))[0]
    assert main(["predict", str(photo), "--boxes", "10,10,100,100", "--box-source", "landmark",
                 "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown box source 'landmark'" in err[0] and "landmarks" in err[0]
    assert main(["predict", str(photo), "--box-source", "dlib", "--out", str(tmp_path)]) == 2
    assert "--boxes" in capsys.readouterr().err
    assert not list(tmp_path.glob("*.json"))


# --------------------------------------------------------------------------------------------------
# The optional detectors, where installed: their calibrated crops land on the gt crop
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["dlib", "mediapipe"])
def test_optional_detector_boxes_calibrate_onto_the_gt_crop(name, test_faces):
    reason = detector_status()[name]
    if reason is not None:
        pytest.skip(f"{name}: {reason}")
    from kdlandmarks.inference.detection import create_detector

    det = create_detector(name)
    assert det.name == name
    errors = []
    for rec in test_faces:
        dets = det.detect(rec.load_image())
        idx = match_detection(dets, rec.landmarks)
        if idx is not None:
            errors.append(crop_error(DEFAULT_CALIBRATIONS[name], dets[idx].box, rec.landmarks))
    assert len(errors) >= len(test_faces) - 2
    centre, ratio = np.median(np.asarray(errors), axis=0)
    assert centre < 0.1 and 0.9 < ratio < 1.1, (centre, ratio)
