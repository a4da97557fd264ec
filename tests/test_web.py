"""The web app (web/) and the Python package give the same numbers.

- The runtime description beside the lite model's ONNX file (kd-student-300w-lite.json, read by the page) is
  what kdlandmarks.export.modelspec writes now, and what LandmarkDetector, RetinaFaceDetector and LandmarkSmoother use.
- `kdlandmarks web` serves a built page with the MIME types it needs.
- The page's preprocessing (web/src/pipeline.js) under Node: crops and INTER_AREA resizes byte for byte equal
  to OpenCV's (its own kernels, cv2.ipp off), and One-Euro smoothing equal to video.LandmarkSmoother. Needs node.
- In headless Chromium (marker ``browser``): the built page on the bundled LFPW test photos gives the 68 points
  of LandmarkDetector(backend="onnx", detector="retinaface") within 0.5 px, works offline once loaded, and
  reports its ms per face. Needs /usr/bin/chromium (Debian's package), node and `npm ci` in web/; skipped
  without them unless KDLANDMARKS_REQUIRE_BROWSER=1 (.ci/run sets it after installing them).
  KDLANDMARKS_WEB_RESULTS=DIR keeps its screenshot and parity.json (points, timings) there (results/web/).
"""
import json
import os
import shutil
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest

from kdlandmarks.export import modelspec
from kdlandmarks.data.crop import CropTransform
from kdlandmarks.inference.calibration import box_source_names
from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detector import Face, LandmarkDetector
from kdlandmarks.inference.video import LandmarkSmoother
from kdlandmarks.models.zoo import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
MODEL = "kd-student-300w-lite"
PHOTOS = sorted((ROOT / "src/kdlandmarks/data/300w-sample/lfpw/testset").glob("*.jpg"))
CHROMIUM = os.environ.get("KDLANDMARKS_CHROMIUM", "/usr/bin/chromium")
MAX_DIFF_PX = 0.5
REQUIRE_BROWSER = os.environ.get("KDLANDMARKS_REQUIRE_BROWSER") == "1"


def missing(reason: str) -> None:
    """Skip, or fail where the browser test must run (CI)."""
    if REQUIRE_BROWSER:
        pytest.fail(f"KDLANDMARKS_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def onnx_detector():
    return LandmarkDetector(MODEL, backend="onnx", detector="retinaface")


# --------------------------------------------------------------------------------------------------
# The runtime description
# --------------------------------------------------------------------------------------------------

def test_committed_spec_is_what_python_writes():
    committed = WEIGHTS_DIR / f"{MODEL}.json"
    assert committed.is_file(), "run: kdlandmarks web --write-spec kd-student-300w-lite"
    assert modelspec.read_model_spec(committed) == modelspec.onnx_model_spec(WEIGHTS_DIR / f"{MODEL}.onnx"), \
        "the committed description is stale: kdlandmarks web --write-spec kd-student-300w-lite"


def test_spec_is_what_python_uses(onnx_detector):
    spec = modelspec.read_model_spec(WEIGHTS_DIR / f"{MODEL}.json")
    info = onnx_detector.info
    assert spec["model"]["input_size"] == info.input_size == onnx_detector.input_size
    assert spec["model"]["num_points"] == info.num_points
    assert spec["codec"]["space"] == onnx_detector.codec.space
    assert spec["crop"]["margin"] == info.crop_margin
    # Box-to-crop calibrations: LandmarkDetector's for every box source.
    assert list(spec["box_calibrations"]) == box_source_names(info.box_calibrations or {})
    for name, cal in spec["box_calibrations"].items():
        py = onnx_detector.calibration_for(name)
        assert cal == {"dx": py.dx, "dy": py.dy, "scale": py.scale}, name
    # The detector LandmarkDetector runs, as it is configured.
    det = onnx_detector.face_detector
    assert det.name == spec["detector"]["name"] == "retinaface"
    d = spec["detector"]
    assert (d["score_threshold"], d["nms_threshold"], d["max_size"], d["min_face"]) == \
        (det.score_threshold, det.nms_threshold, det.max_size, det.min_face)
    assert d["detect_max_side"] == onnx_detector.detect_max_side
    assert [i.name for i in det.session.get_inputs()] == [d["input"]]
    assert [o.name for o in det.session.get_outputs()] == d["outputs"]
    # predict's smoother.
    params = LandmarkSmoother().params
    s = spec["smoothing"]
    assert (s["min_cutoff"], s["beta"], s["d_cutoff"], s["fps"]) == \
        (params["min_cutoff"], params["beta"], params["d_cutoff"], params["freq"])
    tracker = LandmarkSmoother().tracker
    assert (s["iou_threshold"], s["max_missed"]) == (tracker.iou_threshold, tracker.max_missed)
    # The network input: RGB in [0, 1].
    crop = np.arange(128 * 128 * 3, dtype=np.uint8).reshape(128, 128, 3)
    x = (crop.astype(np.float32) * np.float32(spec["input"]["scale"]) - np.float32(0)) / np.float32(1)
    assert spec["input"]["channels"] == "RGB" and spec["input"]["layout"] == "NCHW"
    np.testing.assert_allclose(x, crop.astype(np.float32) / np.float32(255.0), rtol=1e-6)


def test_write_model_spec(tmp_path):
    out = modelspec.write_model_spec(WEIGHTS_DIR / f"{MODEL}.onnx", tmp_path / "x.json")
    assert out.read_text() == (WEIGHTS_DIR / f"{MODEL}.json").read_text()
    assert modelspec.spec_path("a/b/model.onnx") == Path("a/b/model.json")
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(Exception, match="not a kdlandmarks-runtime/1"):
        modelspec.read_model_spec(tmp_path / "bad.json")


def test_export_writes_the_spec_beside_the_onnx_file(tmp_path, capsys):
    pytest.importorskip("torch")
    from kdlandmarks.cli import main
    from kdlandmarks.models.backbones import ModelInfo, create_model, save_model

    own = {"retinaface": {"dx": 0.01, "dy": 0.2, "scale": 1.5}}
    save_model(tmp_path / "tiny.pt", create_model("mobilenetv2_050", 68),
               ModelInfo("mobilenetv2_050", 68, 64, crop_margin=0.2, box_calibrations=own))
    out = tmp_path / "tiny.onnx"
    assert main(["export", "--model", str(tmp_path / "tiny.pt"), "--out", str(out), "--check-faces", "1"]) == 0
    assert "tiny.json" in capsys.readouterr().out
    spec = modelspec.read_model_spec(tmp_path / "tiny.json")
    assert spec["model"]["file"] == "tiny.onnx" and spec["model"]["input_size"] == 64
    assert spec["box_calibrations"]["retinaface"] == own["retinaface"]  # the model's own wins
    want = LandmarkDetector(out, backend="onnx").calibration_for("haar")  # others: defaults at its margin
    assert spec["box_calibrations"]["haar"] == {"dx": want.dx, "dy": want.dy, "scale": want.scale}
    assert spec["crop"]["margin"] == 0.2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


# --------------------------------------------------------------------------------------------------
# `kdlandmarks web`
# --------------------------------------------------------------------------------------------------

def test_web_server_serves_the_page_with_its_types(tmp_path):
    from kdlandmarks.apps.web import find_web_dir, serve_in_thread

    with pytest.raises(ConfigError, match="npm ci && npm run build"):
        find_web_dir(tmp_path)
    for name, data in {"index.html": b"<html></html>", "app.js": b"1", "ort-wasm-simd-threaded.wasm": b"\0asm",
                       "models/m.onnx": b"x", "models/m.json": b"{}"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    server, url = serve_in_thread(tmp_path)
    try:
        types = {}
        for name in ("", "app.js", "ort-wasm-simd-threaded.wasm", "models/m.onnx", "models/m.json"):
            with urllib.request.urlopen(url + name, timeout=10) as r:
                types[name] = r.headers["Content-Type"]
        assert types[""].startswith("text/html")
        assert types["app.js"].startswith("text/javascript")
        assert types["ort-wasm-simd-threaded.wasm"] == "application/wasm"
        assert types["models/m.onnx"] == "application/octet-stream"
        assert types["models/m.json"].startswith("application/json")
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url + "nothing.js", timeout=10)
    finally:
        server.shutdown()
        server.server_close()


# --------------------------------------------------------------------------------------------------
# The page's pipeline under Node
# --------------------------------------------------------------------------------------------------

def python_timing(image: np.ndarray, detector: LandmarkDetector, repeats: int = 30) -> dict:
    """Median ms of the same steps in Python on one thread (onnxruntime), for a reference taken in the same
    conditions as the browser's (this machine's load included)."""
    import time

    import onnxruntime as ort

    from kdlandmarks.inference.detection import RetinaFaceDetector

    def median_ms(fn) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return round(1000 * float(np.median(times)), 2)

    retinaface = RetinaFaceDetector(threads=1)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(WEIGHTS_DIR / f"{MODEL}.onnx"), opts, providers=["CPUExecutionProvider"])
    transform = detector.crop_faces(image).transforms[0]
    batch = np.ascontiguousarray(transform.warp(image).transpose(2, 0, 1)[None], dtype=np.float32) / np.float32(255)
    return {"detector_ms": median_ms(lambda: retinaface.detect(image)),
            "landmark_crop_ms": median_ms(lambda: transform.warp(image)),
            "landmark_network_ms": median_ms(lambda: session.run(None, {session.get_inputs()[0].name: batch}))}


def write_y4m(path: Path, image: np.ndarray, frames: int = 30, size=(640, 480)) -> Path:
    """A short raw video (YUV4MPEG2, 4:2:0) of `image` sliding across a grey frame, for Chromium's fake camera."""
    w, h = size
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        ih, iw = image.shape[:2]
        for i in range(frames):
            canvas = np.full((h, w, 3), 96, np.uint8)
            x0, y0 = 20 + 4 * i, (h - ih) // 2 if ih < h else 0
            part = image[: min(ih, h - y0), : min(iw, w - x0)]
            canvas[y0:y0 + part.shape[0], x0:x0 + part.shape[1]] = part
            f.write(b"FRAME\n" + cv2.cvtColor(canvas, cv2.COLOR_RGB2YUV_I420).tobytes())
    return path


def node_or_skip() -> str:
    node = shutil.which("node")
    if node is None:
        missing("node is not installed")
    return node


def run_node(script: str, job: dict, tmp_path: Path, name: str) -> Path:
    job_path, out = tmp_path / f"{name}.json", tmp_path / f"{name}.out"
    job_path.write_text(json.dumps(job))
    subprocess.run([node_or_skip(), str(WEB / "tests" / script), str(job_path), str(out)], check=True,
                   timeout=300, capture_output=True)
    return out


def _ipp(on: bool) -> bool:
    was = cv2.ipp.useIPP()
    cv2.ipp.setUseIPP(on)
    return was


def test_page_crops_are_opencvs(tmp_path, onnx_detector):
    node_or_skip()
    from kdlandmarks.data.datasets.record import read_image

    rng = np.random.default_rng(0)
    size = onnx_detector.input_size
    images, job = [], {"size": size, "images": []}
    for k, photo in enumerate(PHOTOS[:4]):
        image = read_image(photo)
        if k == 0:
            image = np.ascontiguousarray(image[: image.shape[0] // 6 * 6, : image.shape[1] // 6 * 6])
        h, w = image.shape[:2]
        transforms = onnx_detector.crop_faces(image).transforms  # the detector's own crops
        for _ in range(6):  # shrinking and enlarging windows, some past the image's edges
            side = rng.uniform(0.2, 1.3) * max(w, h)
            transforms.append(CropTransform.from_square(rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h,
                                                        side, size))
        resizes = [(w // 2, h // 2), (w // 3, h // 3), (max(1, round(w * 0.37)), max(1, round(h * 0.37))),
                   (max(1, round(w * 0.81)), max(1, round(h * 0.61)))]
        raw = tmp_path / f"{k}.rgb"
        raw.write_bytes(image.tobytes())
        images.append((image, transforms, resizes))
        job["images"].append({"raw": str(raw), "width": w, "height": h, "resizes": resizes,
                              "crops": [t.matrix.ravel().tolist() for t in transforms]})
    got = np.fromfile(run_node("parity.mjs", job, tmp_path, "crops"), dtype=np.uint8)
    was = _ipp(False)
    try:  # OpenCV's own kernels: the page's arithmetic, bit for bit
        want = np.concatenate([np.concatenate([t.warp(im).ravel() for t in ts]
                                              + [cv2.resize(im, r, interpolation=cv2.INTER_AREA).ravel()
                                                 for r in rs]) for im, ts, rs in images])
        _ipp(True)  # Intel IPP's warp (opencv-python's default) rounds a few pixels the other way
        ipp = np.concatenate([np.concatenate([t.warp(im).ravel() for t in ts]
                                             + [cv2.resize(im, r, interpolation=cv2.INTER_AREA).ravel()
                                                for r in rs]) for im, ts, rs in images])
    finally:
        _ipp(was)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    diff = np.abs(got.astype(int) - ipp)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_page_smoothing_is_predicts(tmp_path):
    node_or_skip()
    spec = modelspec.read_model_spec(WEIGHTS_DIR / f"{MODEL}.json")
    rng = np.random.default_rng(1)
    base = [np.array([40.0, 50.0, 140.0, 160.0]), np.array([300.0, 60.0, 380.0, 150.0])]
    shapes = [rng.uniform(0, 1, (68, 2)) for _ in base]
    frames, t = [], 0.0
    for i in range(40):
        faces = []
        for j, (box, shape) in enumerate(zip(base, shapes)):
            if j == 1 and 15 <= i < 20:
                continue  # the second face is missed for a few frames
            b = box + np.array([1, 0, 1, 0]) * 2.0 * i + rng.normal(0, 1.5, 4)
            faces.append({"box": b.tolist(), "landmarks": (b[:2] + shape * (b[2:] - b[:2])
                                                           + rng.normal(0, 1.0, (68, 2))).tolist()})
        t += 1 / 30 + rng.uniform(0, 0.01)
        frames.append({"t": t, "faces": faces})
    got = json.loads(run_node("parity.mjs", {"smoothing": spec["smoothing"], "frames": frames}, tmp_path,
                              "smooth").read_text())
    smoother = LandmarkSmoother()
    for frame, page in zip(frames, got):
        faces = [Face(np.array(f["box"]), 1.0, np.array(f["landmarks"])) for f in frame["faces"]]
        want = smoother.update(faces, frame["t"])
        assert [tid for tid, _ in want] == [p["track"] for p in page]
        for (_, face), p in zip(want, page):
            np.testing.assert_allclose(p["landmarks"], face.landmarks, atol=1e-9)
            np.testing.assert_allclose(p["box"], face.box, atol=1e-9)


# --------------------------------------------------------------------------------------------------
# The page in headless Chromium
# --------------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_page_in_chromium_matches_python(tmp_path, onnx_detector):
    from kdlandmarks.data.datasets.record import read_image
    from kdlandmarks.apps.web import serve_in_thread

    node = node_or_skip()
    if not Path(CHROMIUM).is_file():
        missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        missing("the web app's packages are not installed (cd web && npm ci)")
    npm = shutil.which("npm")
    if npm is None:
        missing("npm is not installed")
    subprocess.run([npm, "run", "build"], cwd=WEB, check=True, timeout=300, capture_output=True)
    out = (tmp_path / "browser").resolve()
    out.mkdir()
    keep = Path(os.environ.get("KDLANDMARKS_WEB_RESULTS") or out).resolve()
    keep.mkdir(parents=True, exist_ok=True)
    video = write_y4m(tmp_path / "face.y4m", read_image(PHOTOS[0]))
    server, url = serve_in_thread(WEB / "dist")
    try:
        proc = subprocess.run([node, str(WEB / "tests" / "browser.mjs"), "--url", url, "--out", str(out),
                               "--chromium", CHROMIUM, "--fake-video", str(video), *map(str, PHOTOS)],
                              cwd=WEB, timeout=900, capture_output=True, text=True)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads((out / "browser.json").read_text())
    assert (out / "screenshot.png").stat().st_size > 10_000

    worst, per_image = 0.0, {}
    for photo in PHOTOS:
        faces = onnx_detector.detect(read_image(photo))
        page = result["images"][photo.name]["faces"]
        assert len(page) == len(faces) >= 1, photo.name
        diffs = []
        for mine, theirs in zip(page, faces):  # both in the detector's order (NMS: best score first)
            np.testing.assert_allclose(mine["box"], theirs.box, atol=1e-3)
            diffs.append(float(np.abs(np.asarray(mine["landmarks"]) - theirs.landmarks).max()))
        per_image[photo.name] = max(diffs)
        worst = max(worst, max(diffs))
    first = result["images"][PHOTOS[0].name]["faces"]
    assert result["via_file_input"] == first  # the page's file input gives the same points
    assert result["via_drop"] == result["images"][PHOTOS[1].name]["faces"]  # and a photo dropped on it
    assert result["offline"] == {"state": "ready", "same_points": True}
    # Webcam mode (Chromium's fake camera playing a moving face): the page's smoothed points are
    # video.LandmarkSmoother's on the page's raw points at the page's timestamps.
    frames = result["webcam"]["log"]
    assert sum(1 for f in frames if f["raw"]) >= 20 and all(f["smooth"] for f in frames)
    smoother = LandmarkSmoother()
    for f in frames:
        raw = [Face(np.array(x["box"]), x["score"], np.array(x["landmarks"])) for x in f["raw"]]
        want = smoother.update(raw, f["t"])
        assert len(want) == len(f["shown"])
        for (_, face), shown in zip(want, f["shown"]):
            np.testing.assert_allclose(shown["landmarks"], face.landmarks, atol=1e-6)
    webcam_ms = {k: float(np.median([f[k] for f in frames if f["raw"]])) for k in ("detectorMs", "landmarksMs")}
    native = python_timing(read_image(PHOTOS[0]), onnx_detector)
    timing = result["timing"]
    if keep != out:
        shutil.copyfile(out / "screenshot.png", keep / "screenshot.png")
    (keep / "parity.json").write_text(json.dumps({
        "max_point_diff_px": worst, "per_image_max_px": per_image, "faces": sum(len(v["faces"]) for v in
                                                                                result["images"].values()),
        "python": "LandmarkDetector('kd-student-300w-lite', backend='onnx', detector='retinaface')",
        "browser": result["browser"], "timing": timing,
        "python_onnxruntime_1_thread_same_run": native,
        "webcam_640x480_median_ms": {"detector": webcam_ms["detectorMs"], "landmarks": webcam_ms["landmarksMs"],
                                     "frames": len(frames)}}, indent=1) + "\n")
    print(f"\nheadless Chromium {result['browser']}: detector {timing['detector_ms']:.1f} ms/frame, "
          f"landmarks {timing['landmarks_ms_per_face']:.1f} ms/face; max point difference vs Python {worst:.3f} px")
    assert worst < MAX_DIFF_PX
