"""Face detection plumbing, box-to-crop calibration, LandmarkDetector and `kdlandmarks predict` on images.

Models are tiny untrained timm networks saved with save_model. A "constant" model has a zeroed head
and a known bias, so its landmarks are known exactly and the whole box -> crop -> network -> image
mapping can be checked to the pixel.
"""
import json
import os
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from kdlandmarks.cli import main
from kdlandmarks.data.crop import DEFAULT_MARGIN, BoxCalibration, square_from_landmarks
from kdlandmarks.data.datasets.record import FaceRecord
from kdlandmarks.inference.detection import DETECTORS, Detection, as_detector, available_detectors, create_detector, face_matches, match_detection, register_detector
from kdlandmarks.inference.calibration import DEFAULT_CALIBRATIONS, calibrate_detector, default_calibration
from kdlandmarks.errors import ConfigError, DataError, ModelError
from kdlandmarks.inference.detector import Face, LandmarkDetector, draw_faces
from kdlandmarks.models.backbones import ModelInfo, create_model, save_model

ARCH, SIZE, N = "mobilenetv2_050", 64, 68


def make_model(path: Path, bias=None, head_scale=None, **info_kw) -> Path:
    torch.manual_seed(0)
    model = create_model(ARCH, N)
    with torch.no_grad():
        if bias is not None:
            model.head.weight.zero_()
            model.head.bias.copy_(torch.as_tensor(bias, dtype=torch.float32))
        elif head_scale is not None:
            model.head.weight.mul_(head_scale)
            model.head.bias.zero_()
    save_model(path, model, ModelInfo(ARCH, N, SIZE, **info_kw))
    return path


def corner_bias() -> np.ndarray:
    """Point 0 at the crop's top-left edge, point 1 at its bottom-right edge, the rest at its centre."""
    b = np.zeros(2 * N)
    b[0:2], b[2:4] = -0.5, 0.5
    return b


@pytest.fixture(scope="module")
def const_model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("m") / "const.pt", bias=corner_bias(),
                      box_calibrations={"mydet": {"dx": -0.1, "dy": 0.05, "scale": 2.0}})


@pytest.fixture(scope="module")
def random_model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("m") / "random.pt", head_scale=0.01)


def rng_image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def expected_corners(cal: BoxCalibration, box):
    cx, cy, side = cal.square(np.asarray(box, dtype=float))
    return np.array([[cx - side / 2, cy - side / 2], [cx + side / 2, cy + side / 2], [cx, cy]])


# --------------------------------------------------------------------------------------------------
# Calibration and the box -> crop -> image mapping
# --------------------------------------------------------------------------------------------------

def test_known_calibration_maps_box_to_expected_crop(const_model):
    cal = BoxCalibration(dx=0.1, dy=0.2, scale=1.5)
    box = [100.0, 50.0, 200.0, 150.0]  # side 100: crop centre (160, 120), side 150
    det = LandmarkDetector(const_model, calibration=cal, detector=lambda img: [])
    face = det.detect(rng_image(300, 400), boxes=[box])[0]
    np.testing.assert_allclose(face.landmarks[0], [85.0, 45.0], atol=1e-3)
    np.testing.assert_allclose(face.landmarks[1], [235.0, 195.0], atol=1e-3)
    np.testing.assert_allclose(face.landmarks[2:], np.tile([160.0, 120.0], (N - 2, 1)), atol=1e-3)
    assert face.score == 1.0 and np.allclose(face.box, box)


def test_calibration_sources_in_order(const_model):
    box = [40.0, 60.0, 120.0, 120.0]  # non-square: side = sqrt(80 * 60)
    image = rng_image(200, 200)
    det = LandmarkDetector(const_model, detector=lambda img: [])
    # The model file's own calibration for a named box source wins ...
    got = det.detect(image, boxes=[box], box_source="mydet")[0].landmarks
    np.testing.assert_allclose(got[:3], expected_corners(BoxCalibration(-0.1, 0.05, 2.0), box), atol=1e-3)
    # ... then the shipped default of a known detector ...
    got = det.detect(image, boxes=[box], box_source="retinaface")[0].landmarks
    np.testing.assert_allclose(got[:3], expected_corners(DEFAULT_CALIBRATIONS["retinaface"], box), atol=1e-3)
    # ... and an unknown name is an error naming the known ones (it used to crop the box itself).
    with pytest.raises(ConfigError, match="unknown box source 'unknown'.*retinaface.*mydet"):
        det.detect(image, boxes=[box], box_source="unknown")


def test_default_calibration_rescales_with_margin():
    base = default_calibration("retinaface", DEFAULT_MARGIN)
    assert base == DEFAULT_CALIBRATIONS["retinaface"]
    wide = default_calibration("retinaface", 0.25)
    assert wide.dx == base.dx and wide.dy == base.dy
    assert wide.scale == pytest.approx(base.scale * 1.5 / 1.2)
    assert default_calibration("nope") is None


def test_calibrate_detector_recovers_a_known_mapping():
    """Synthetic faces and a fake detector whose boxes relate to the gt crop by a known calibration."""
    rng = np.random.default_rng(1)
    truth = BoxCalibration(dx=0.03, dy=-0.12, scale=1.25)
    records, boxes = [], {}
    for i in range(12):
        pts = rng.uniform(0, 1, (N, 2)) * rng.uniform(40, 120) + rng.uniform(20, 200, 2)
        gx, gy, gside = square_from_landmarks(pts, DEFAULT_MARGIN)
        side = gside / truth.scale
        cx, cy = gx - truth.dx * side, gy - truth.dy * side
        boxes[i] = [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]
        image = np.full((400, 400, 3), i, dtype=np.uint8)  # the fake detector reads the face id from pixels
        records.append(FaceRecord(name=f"f{i}", landmarks=pts, image=image))
    fake = lambda img: [boxes[int(img[0, 0, 0])], [0, 0, 5, 5]]  # noqa: E731  (plus a stray box)
    report = {}
    cal = calibrate_detector(fake, records, DEFAULT_MARGIN, report=report)
    assert report["matched"] == 12 and report["detections"] == 24
    assert (cal.dx, cal.dy, cal.scale) == pytest.approx((truth.dx, truth.dy, truth.scale), abs=1e-9)
    with pytest.raises(DataError, match="none of the 12"):
        calibrate_detector(lambda img: [], records)


def test_face_match_criterion():
    pts = np.array([[100, 100], [200, 100], [150, 220], [110, 200], [190, 200]], dtype=float)
    assert face_matches([95, 90, 205, 225], pts)                  # IoU with the extent box ~0.9
    assert face_matches([90, 40, 210, 225], pts)                  # tall box (forehead): all points inside
    assert not face_matches([0, 0, 640, 480], pts)                # holds everything but far too big
    assert not face_matches([150, 150, 260, 260], pts)            # half a face
    dets = [Detection(np.array([0, 0, 640, 480.0])), Detection(np.array([95, 90, 205, 225.0]), 0.5)]
    assert match_detection(dets, pts) == 1
    assert match_detection(dets[:1], pts) is None


# --------------------------------------------------------------------------------------------------
# Detector registry and user callables
# --------------------------------------------------------------------------------------------------

def test_user_callables_and_registry(monkeypatch):
    img = rng_image(50, 60)
    assert [d.score for d in as_detector(lambda im: np.array([[1, 2, 30, 40, 0.7]])).detect(img)] == [pytest.approx(0.7)]
    dets = as_detector(lambda im: [{"box": [1, 2, 3, 4]}, (5, 6, 7, 8)]).detect(img)
    assert [d.box.tolist() for d in dets] == [[1, 2, 3, 4], [5, 6, 7, 8]] and dets[0].score == 1.0
    assert as_detector(lambda im: None).detect(img) == []
    with pytest.raises(DataError, match="x1 > x0"):
        as_detector(lambda im: [[10, 10, 5, 20]]).detect(img)
    with pytest.raises(DataError, match="4 box values"):
        as_detector(lambda im: [[1, 2, 3]]).detect(img)
    with pytest.raises(ConfigError, match="unknown face detector"):
        create_detector("nope")
    with pytest.raises(ConfigError, match="cannot import"):
        create_detector("no_such_module_xyz:detect")
    monkeypatch.setitem(DETECTORS, "fixed", DETECTORS["haar"])  # restored after the test
    register_detector("fixed", lambda **kw: (lambda im: [[0, 0, 10, 10]]))
    det = create_detector("fixed")
    assert det.name == "fixed" and len(det.detect(img)) == 1
    assert "fixed" in available_detectors()


def test_auto_without_any_detector_is_a_clear_error(monkeypatch, random_model):
    for name in list(DETECTORS):
        monkeypatch.setitem(DETECTORS, name, DETECTORS[name].__class__(DETECTORS[name].factory, lambda: "not here"))
    with pytest.raises(ConfigError, match="no face detector is installed"):
        create_detector("auto")
    det = LandmarkDetector(random_model)  # boxes still work with no detector installed
    # Given boxes are cropped as RetinaFace boxes (or the named detector's) whatever is installed.
    assert det.calibration_for() == DEFAULT_CALIBRATIONS["retinaface"]
    assert LandmarkDetector(random_model, detector="haar").calibration_for() == DEFAULT_CALIBRATIONS["haar"]
    assert len(det.detect(rng_image(80, 80), boxes=[[10, 10, 60, 60]])) == 1
    with pytest.raises(ConfigError, match="pass face boxes"):
        det.detect(rng_image(80, 80))


@pytest.mark.parametrize("name", ["retinaface", "haar"])
def test_builtin_detector_finds_a_real_face(name):
    if name not in available_detectors():
        pytest.skip(f"{name} is not installed here")
    path, pts = real_face()
    if path is None:
        pytest.skip("no 300-W face available")
    from kdlandmarks.data.datasets.record import read_image

    detector = create_detector(name)
    dets = detector.detect(read_image(path))
    assert detector.name == name and match_detection(dets, pts) is not None
    assert all(0 < d.score <= 1 for d in dets)
    if name == "retinaface":
        assert all(d.keypoints.shape == (5, 2) for d in dets)


# --------------------------------------------------------------------------------------------------
# LandmarkDetector
# --------------------------------------------------------------------------------------------------

def test_detect_with_boxes_lands_near_the_box(random_model):
    det = LandmarkDetector.from_pretrained(random_model, detector=lambda im: [])
    box = np.array([50.0, 40.0, 130.0, 140.0])
    faces = det.detect(rng_image(200, 180), boxes=[box])
    assert len(faces) == 1 and faces[0].landmarks.shape == (N, 2)
    side = np.sqrt(80 * 100)
    lo, hi = box[:2] - 0.5 * side, box[2:] + 0.5 * side
    assert ((faces[0].landmarks >= lo) & (faces[0].landmarks <= hi)).all()
    assert det.detect(rng_image(200, 180), boxes=np.zeros((0, 4))) == []


def test_batch_equals_single(random_model):
    det = LandmarkDetector(random_model, batch_size=2, detector=lambda im: [[5, 5, 45, 50]])
    images = [rng_image(120, 100, 1), rng_image(90, 160, 2), rng_image(64, 64, 3), rng_image(100, 100, 4)]
    boxes = [[[10, 10, 70, 80], [30, 20, 90, 100, 0.3]], [[0, 0, 60, 60]], np.zeros((0, 4)), None]
    batch = det.detect_batch(images, boxes)
    assert [len(f) for f in batch] == [2, 1, 0, 1]
    assert batch[0][1].score == pytest.approx(0.3) and batch[3][0].score == 1.0
    for image, b, faces in zip(images, boxes, batch):
        single = det.detect(image, boxes=b)
        for f1, f2 in zip(single, faces):
            np.testing.assert_allclose(f1.landmarks, f2.landmarks, atol=1e-3)
    # Different faces really give different answers (the batch is not one face repeated).
    assert np.abs(batch[0][0].landmarks - batch[0][1].landmarks).max() > 1


def test_predict_crops_in_crop_pixels(const_model):
    det = LandmarkDetector(const_model)
    pts = det.predict_crops([rng_image(80, 100), rng_image(64, 64)])
    assert pts.shape == (2, N, 2)
    # Edges of the crop at -0.5 and W - 0.5; centre at (W - 1) / 2 (pixel-centre convention).
    np.testing.assert_allclose(pts[0, :3], [[-0.5, -0.5], [99.5, 79.5], [49.5, 39.5]], atol=1e-3)
    np.testing.assert_allclose(pts[1, :3], [[-0.5, -0.5], [63.5, 63.5], [31.5, 31.5]], atol=1e-3)
    assert det.predict_crops(rng_image(30, 30)).shape == (1, N, 2)


def test_bad_images_and_boxes_are_clear_errors(random_model):
    det = LandmarkDetector(random_model)
    box = [[1, 1, 20, 20]]
    with pytest.raises(DataError, match="uint8"):
        det.detect(np.zeros((32, 32, 3), np.float32), boxes=box)
    with pytest.raises(DataError, match="shape"):
        det.detect(np.zeros((32, 32, 2), np.uint8), boxes=box)
    with pytest.raises(DataError, match="numpy"):
        det.detect([[0, 1]], boxes=box)
    with pytest.raises(DataError, match="x1 > x0"):
        det.detect(rng_image(32, 32), boxes=[[20, 1, 10, 20]])
    with pytest.raises(DataError, match=r"\(K, 4\)"):
        det.detect(rng_image(32, 32), boxes=[[1, 2, 3]])
    with pytest.raises(DataError, match="2 box lists for 1 images"):
        det.detect_batch([rng_image(32, 32)], [box, box])
    grey = det.detect(np.zeros((40, 40), np.uint8), boxes=box)  # grey input is accepted
    assert grey[0].landmarks.shape == (N, 2)


def test_model_errors(random_model, tmp_path):
    with pytest.raises(ModelError, match="predicts 68 points, but 29"):
        LandmarkDetector(random_model, num_points=29)
    assert LandmarkDetector(random_model, num_points=68).num_points == 68
    with pytest.raises(ModelError, match="needs an exported .onnx"):
        LandmarkDetector(random_model, backend="onnx")
    with pytest.raises(ModelError, match="unknown model"):
        LandmarkDetector(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="bad.pt"):
        LandmarkDetector(bad)
    with pytest.raises(ConfigError, match="backend"):
        LandmarkDetector(random_model, backend="tensorflow")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            LandmarkDetector(random_model, device="cuda")


def test_onnx_backend_matches_torch(random_model, tmp_path):
    from kdlandmarks.export.onnx import export_onnx
    from kdlandmarks.models.backbones import load_model

    onnx_path = tmp_path / "m.onnx"
    export_onnx(load_model(random_model), onnx_path, check_images=[rng_image(SIZE, SIZE)])
    image, boxes = rng_image(120, 140), [[10, 20, 80, 90], [60, 30, 130, 110]]
    a = LandmarkDetector(random_model).detect(image, boxes=boxes)
    b = LandmarkDetector.from_pretrained(onnx_path).detect(image, boxes=boxes)
    assert LandmarkDetector(onnx_path).backend == "onnx"
    for fa, fb in zip(a, b):
        np.testing.assert_allclose(fa.landmarks, fb.landmarks, atol=1e-2)
    with pytest.raises(ModelError, match="runs with backend 'onnx'"):
        LandmarkDetector(onnx_path, backend="torch")


def test_from_model_and_drawing():
    torch.manual_seed(0)
    net = create_model(ARCH, N)
    det = LandmarkDetector.from_model(net, ModelInfo(ARCH, N, SIZE), detector=lambda im: [[8, 8, 40, 40]])
    image = rng_image(48, 48)
    faces = det.detect(image)
    assert len(faces) == 1 and isinstance(faces[0], Face)
    d = faces[0].to_dict()
    assert len(d["landmarks"]) == N and len(d["box"]) == 4
    drawn = draw_faces(image, faces, labels=[0])
    assert drawn.shape == image.shape and not np.array_equal(drawn, image)


# --------------------------------------------------------------------------------------------------
# kdlandmarks predict (images)
# --------------------------------------------------------------------------------------------------

def real_face():
    """A 300-W LFPW test face (bundled sample first, then the shared data): (image path, landmarks)."""
    from kdlandmarks.data.datasets.pts import read_pts

    roots = []
    try:
        from kdlandmarks.data.datasets import sample_root

        roots.append(sample_root() / "lfpw" / "testset")
    except Exception:
        pass
    from kdlandmarks.data.datasets import full_300w_root

    if full_300w_root() is not None:
        roots.append(full_300w_root() / "lfpw" / "testset")
    for root in roots:
        for pts in sorted(root.glob("*.pts"))[:1] if root.is_dir() else []:
            image = pts.with_suffix(".jpg")
            if image.is_file():
                return image, read_pts(pts)
    return None, None


@pytest.fixture
def face_image(tmp_path):
    path, pts = real_face()
    if path is None:
        pytest.skip("no 300-W face image available")
    dst = tmp_path / "in" / "face.jpg"
    dst.parent.mkdir()
    shutil.copy(path, dst)
    x0, y0 = pts.min(0)
    x1, y1 = pts.max(0)
    return dst, f"{x0:.1f},{y0:.1f},{x1:.1f},{y1:.1f}"


def test_predict_image_with_boxes(face_image, random_model, tmp_path, capsys):
    image, box = face_image
    out = tmp_path / "out"
    rc = main(["predict", str(image), "--model", str(random_model), "--out", str(out), "--format", "json,pts",
               "--draw", "--boxes", box])
    assert rc == 0, capsys.readouterr().err
    result = json.loads((out / "face.json").read_text())
    assert result["image"] == str(image) and result["num_points"] == N
    assert len(result["faces"]) == 1 and len(result["faces"][0]["landmarks"]) == N
    assert (out / "face_0.pts").is_file()
    drawn = cv2.imread(str(out / "face_landmarks.jpg"))
    assert drawn is not None and drawn.shape[:2] == (result["height"], result["width"])
    assert "predicted 1 faces" in capsys.readouterr().out


def test_predict_folder_skips_a_corrupt_file(face_image, random_model, tmp_path, capsys):
    image, box = face_image
    folder = image.parent
    (folder / "sub").mkdir()
    shutil.copy(image, folder / "sub" / "again.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    out = tmp_path / "out"
    rc = main(["predict", str(folder), "--model", str(random_model), "--out", str(out), "--boxes", box])
    assert rc == 0
    assert (out / "face.json").is_file() and (out / "sub" / "again.json").is_file()
    assert not (out / "broken.json").exists()
    err = [ln for ln in capsys.readouterr().err.splitlines() if "broken.jpg" in ln]
    assert len(err) == 1 and "not a readable image" in err[0]


def test_predict_detector_plugin_and_no_face(face_image, random_model, tmp_path, monkeypatch):
    image, _ = face_image
    monkeypatch.setitem(DETECTORS, "blind", DETECTORS["haar"])
    register_detector("blind", lambda **kw: (lambda im: []))
    out = tmp_path / "out"
    assert main(["predict", str(image), "--model", str(random_model), "--out", str(out), "--detector", "blind",
                 "--format", "json,pts"]) == 0
    result = json.loads((out / "face.json").read_text())
    assert result["faces"] == [] and result["reason"] == "no face detected" and result["detector"] == "blind"
    assert not list(out.glob("*.pts"))


@pytest.mark.parametrize("extra, message", [
    (["MISSING.jpg"], "no such file or folder"),
    (["--format", "xml"], "--format"),
    (["--boxes", "1,2,3"], "--boxes"),
    (["--model", "no-such-model"], "unknown model"),
    (["--batch-size", "0"], "batch-size"),
    (["--detector", "nope"], "unknown face detector"),
])
def test_predict_errors_exit_2_with_one_line(face_image, random_model, tmp_path, capsys, extra, message):
    image, _ = face_image
    args = ["predict", str(image), "--model", str(random_model), "--out", str(tmp_path / "o")]
    if extra[0] == "MISSING.jpg":
        args[1] = str(tmp_path / "missing.jpg")
    else:
        args += extra
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]


def test_predict_only_bad_inputs_fails(random_model, tmp_path, capsys):
    bad = tmp_path / "x.jpg"
    bad.write_bytes(b"junk")
    assert main(["predict", str(bad), "--model", str(random_model), "--out", str(tmp_path / "o"),
                 "--boxes", "1,1,5,5"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "x.jpg" in err[0]


def test_predict_boxes_file_maps_names_and_detects_the_rest(face_image, random_model, tmp_path, monkeypatch):
    image, box = face_image
    shutil.copy(image, image.parent / "other.jpg")
    monkeypatch.setitem(DETECTORS, "corner", DETECTORS["haar"])
    register_detector("corner", lambda **kw: (lambda im: [[0, 0, 20, 20], [30, 30, 60, 60]]))
    mapping = tmp_path / "boxes.json"
    mapping.write_text(json.dumps({"face.jpg": [[float(v) for v in box.split(",")]]}))
    out = tmp_path / "out"
    assert main(["predict", str(image.parent), "--model", str(random_model), "--out", str(out),
                 "--boxes", str(mapping), "--detector", "corner"]) == 0
    given = json.loads((out / "face.json").read_text())
    detected = json.loads((out / "other.json").read_text())
    assert len(given["faces"]) == 1 and given["faces"][0]["score"] == 1.0
    assert [f["box"] for f in detected["faces"]] == [[0, 0, 20, 20], [30, 30, 60, 60]]
    mask = os.umask(0)
    os.umask(mask)
    assert (out / "face.json").stat().st_mode & 0o777 == 0o666 & ~mask  # like any file written without temp
    assert main(["predict", str(image), "--model", str(random_model), "--boxes", str(tmp_path / "nope.json")]) == 2
