"""The web app (web/) and the Python package give the same numbers.

- The runtime description beside the lite model's ONNX file (kd-student-300w-lite.json, read by the page) is
  what kdlandmarks.export.modelspec writes now, and what LandmarkDetector, RetinaFaceDetector and LandmarkTracker use.
- `kdlandmarks web` serves a built page with the MIME types and the cross-origin-isolation headers it needs,
  and its models from the package's weights; from a wheel installed in a fresh venv too (marker ``slow``).
- The page's preprocessing (web/src/pipeline.js) under Node: crops (upright and turned with a face's roll) and
  INTER_AREA resizes byte for byte equal to OpenCV's (its own kernels, cv2.ipp off), the crop geometry
  (matrices, squares, boxes at any roll, quarter turns) equal to crop.py's and tracking.py's, and One-Euro
  smoothing equal to video.FaceFilter. Needs node.
- The page's whole pipeline under Node with onnxruntime-web (web/tests/pipeline.mjs, no browser): on rolled
  photos it finds the faces of LandmarkDetector.detect and their 68 points within 0.5 px (crops turned by the
  keypoints' roll, refined, rolled faces re-detected upright), and its webcam tracker follows a head that tilts
  as tracking.LandmarkTracker does (turned crops, the periodic scan on a shrunk copy). Needs node and `npm ci`.
- In headless Chromium (marker ``browser``): the built page on the bundled LFPW test photos gives the 68 points
  of LandmarkDetector("kd-student-300w-lite:fp32", backend="onnx", detector="retinaface") within 0.5 px, its webcam tracking on known
  frames is tracking.LandmarkTracker's, it is cross-origin isolated (wasm threads possible), works offline
  once loaded, and reports its ms per face. Needs /usr/bin/chromium (Debian's package), node and `npm ci`
  in web/; skipped without them unless KDLANDMARKS_REQUIRE_BROWSER=1 (.ci/run sets it after installing them).
  KDLANDMARKS_WEB_RESULTS=DIR keeps its screenshot and parity.json (points, timings) there (results/web/).
"""
import json
import math
import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from kdlandmarks.export import modelspec
from kdlandmarks.data.crop import BoxCalibration, CropTransform, gt_crop, roll_angle, square_from_landmarks
from kdlandmarks.data.datasets.record import read_image
from kdlandmarks.data.schemes import get_scheme
from kdlandmarks.inference.calibration import box_source_names
from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detector import Face, LandmarkDetector
from kdlandmarks.inference.detection.rotations import QUARTER_TURNS, turned_back
from kdlandmarks.inference.detector import KEYPOINT_LANDMARKS, ROLL_SETTLED
from kdlandmarks.inference.tracking import (DEFAULT_TRACKING, EDGE_REACH, ROLL_HYSTERESIS, TRACK_BOX_SOURCE,
                                            LandmarkTracker, box_for_square, crop_square)
from kdlandmarks.inference.video import DEFAULT_FPS, DEFAULT_SMOOTHING, FaceFilter, SmoothingOptions
from kdlandmarks.models.zoo import WEIGHTS_DIR

ROOT = Path(__file__).resolve().parents[1]
WEB = ROOT / "web"
MODEL = "kd-student-300w-lite"
# The page runs the fp32 export (onnxruntime-web's wasm runs it faster than the int8 one); Python's default for
# this name is int8 (models.zoo.INT8_DEFAULT), so the comparisons name the fp32 file.
PYTHON_MODEL = f"{MODEL}:fp32"
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
    return LandmarkDetector(PYTHON_MODEL, backend="onnx", detector="retinaface")


# --------------------------------------------------------------------------------------------------
# The runtime description
# --------------------------------------------------------------------------------------------------

def test_committed_spec_is_what_python_writes():
    committed = WEIGHTS_DIR / f"{MODEL}.json"
    assert committed.is_file(), "run: kdlandmarks web --write-spec kd-student-300w-lite:fp32"
    assert modelspec.read_model_spec(committed) == modelspec.onnx_model_spec(WEIGHTS_DIR / f"{MODEL}.onnx"), \
        "the committed description is stale: kdlandmarks web --write-spec kd-student-300w-lite:fp32"


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
    # The video defaults: LandmarkTracker's smoothing and tracking, and the calibration of its crops.
    s = spec["smoothing"]
    assert (s["min_cutoff"], s["beta"], s["d_cutoff"], s["fps"]) == (
        DEFAULT_SMOOTHING.min_cutoff, DEFAULT_SMOOTHING.beta, DEFAULT_SMOOTHING.d_cutoff, DEFAULT_FPS)
    t = spec["tracking"]
    assert {k: t[k] for k in asdict(DEFAULT_TRACKING)} == asdict(DEFAULT_TRACKING)
    assert t["box_source"] == TRACK_BOX_SOURCE and TRACK_BOX_SOURCE in spec["box_calibrations"]
    assert t["edge_reach"] == EDGE_REACH and t["roll_hysteresis"] == ROLL_HYSTERESIS
    # Rolled faces: LandmarkDetector's roll settings and the eyes it reads them from.
    r = spec["roll"]
    assert (r["threshold"], r["passes"], r["settled"]) == (onnx_detector.roll_threshold, onnx_detector.roll_passes,
                                                           ROLL_SETTLED)
    assert tuple(r["eyes"]) == get_scheme(info.scheme).inter_ocular and r["keypoint_eyes"] == [0, 1]
    assert r["search_turns"] == (list(QUARTER_TURNS) if onnx_detector.search_rotations else [])
    patch = onnx_detector.upright_patch
    assert r["upright_patch"] == (None if patch is None else asdict(patch))
    # The network check of an upright reading: the eye centres and the landmarks at the other keypoints.
    scheme = get_scheme(info.scheme)
    assert [tuple(g) for g in r["pupils"]] == list(scheme.pupils)
    assert tuple(r["keypoint_landmarks"]) == KEYPOINT_LANDMARKS.get(scheme.name, ())
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
    from kdlandmarks.apps.web import ISOLATION_HEADERS, find_web_dir, serve_in_thread

    with pytest.raises(ConfigError, match="npm ci && npm run build"):
        find_web_dir(tmp_path)
    for name, data in {"index.html": b"<html></html>", "app.js": b"1", "ort-wasm-simd-threaded.wasm": b"\0asm",
                       "models/m.onnx": b"x", "models/m.json": b"{}"}.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(data)
    server, url = serve_in_thread(tmp_path)
    try:
        types = {}
        for name in ("", "app.js", "ort-wasm-simd-threaded.wasm", "models/m.onnx", "models/m.json",
                     f"models/{MODEL}.onnx"):
            with urllib.request.urlopen(url + name, timeout=10) as r:
                types[name] = r.headers["Content-Type"]
                # onnxruntime-web's threads need SharedArrayBuffer: a cross-origin-isolated page
                assert r.headers["Cross-Origin-Opener-Policy"] == "same-origin"
                assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp"
                assert {k: r.headers[k] for k in ISOLATION_HEADERS} == ISOLATION_HEADERS
                body = r.read()
            if name == f"models/{MODEL}.onnx":  # not in the page's folder: the package's weights
                assert body == (WEIGHTS_DIR / f"{MODEL}.onnx").read_bytes()
        assert types[""].startswith("text/html")
        assert types["app.js"].startswith("text/javascript")
        assert types["ort-wasm-simd-threaded.wasm"] == "application/wasm"
        assert types["models/m.onnx"] == "application/octet-stream"
        assert types["models/m.json"].startswith("application/json")
        for missing_file in ("nothing.js", f"models/{MODEL}.pt", "models/../models/none.onnx", "weights/x.onnx"):
            with pytest.raises(urllib.error.HTTPError):
                urllib.request.urlopen(url + missing_file, timeout=10)
    finally:
        server.shutdown()
        server.server_close()


def http_get(url: str) -> tuple[Any, bytes]:
    """The response's headers (names case-insensitive) and body."""
    with urllib.request.urlopen(url, timeout=30) as r:
        return r.headers, r.read()


@pytest.mark.slow
def test_web_from_a_wheel_in_a_fresh_venv(tmp_path):
    """`kdlandmarks web` from a regular install: a wheel of the tree (built page included), installed in a
    fresh venv, serves the page, its runtime and the model with the headers the page needs."""
    from kdlandmarks.apps.web import PAGE_DIR

    if not (PAGE_DIR / "index.html").is_file():
        missing(f"the web page is not built ({PAGE_DIR}: cd web && npm ci && npm run build)")
    # A copy of the package's sources, so that the build leaves nothing in the repository.
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copyfile(ROOT / name, pkg / name)
    shutil.copytree(ROOT / "src", pkg / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "-w", str(tmp_path / "wheel"), str(pkg)], check=True, timeout=600, env=env,
                   capture_output=True)
    wheel = next((tmp_path / "wheel").glob("kdlandmarks-*.whl"))
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    page = {f"kdlandmarks/apps/webpage/{p.relative_to(PAGE_DIR).as_posix()}" for p in PAGE_DIR.rglob("*")
            if p.is_file()}
    assert page <= names, sorted(page - names)
    # The venv sees this interpreter's packages (numpy, onnxruntime...) but imports kdlandmarks from the wheel.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", str(wheel)], check=True,
                   timeout=300, env=env, capture_output=True)
    server = subprocess.Popen([str(python), "-m", "kdlandmarks", "web", "--port", "0"], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = server.stdout.readline()
        assert " at http://" in line, line + server.stderr.read()
        served_from = Path(line.split("serving ", 1)[1].split(" at ", 1)[0])
        assert venv in served_from.parents and ROOT not in served_from.parents, line
        url = line.split(" at ", 1)[1].split()[0]
        headers, body = http_get(url)
        assert headers["Content-Type"].startswith("text/html") and b'id="sample"' in body
        for name in ("app.js", "ort-wasm-simd-threaded.mjs", "ort-wasm-simd-threaded.wasm",
                     f"models/{MODEL}.json", f"models/{MODEL}.onnx", "models/retinaface_mnet025.onnx"):
            headers, body = http_get(url + name)
            assert headers["Cross-Origin-Opener-Policy"] == "same-origin", name
            assert headers["Cross-Origin-Embedder-Policy"] == "require-corp", name
            if name.startswith("models/"):
                assert body == (WEIGHTS_DIR / name.split("/")[1]).read_bytes(), name
            else:
                assert body == (PAGE_DIR / name).read_bytes(), name
        assert http_get(url + "ort-wasm-simd-threaded.wasm")[0]["Content-Type"] == "application/wasm"
    finally:
        server.terminate()
        server.wait(timeout=30)
        server.stdout.close()
        server.stderr.close()


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


TRACK_DETECT_EVERY = 5  # the tracking check's detector period (the default, 30, is longer than its clip)


def tracking_frames(detector: LandmarkDetector, out: Path) -> tuple[list, Path]:
    """A clip of two faces (cut from two bundled photos) on a 640x360 frame: one moving right all along,
    one that appears, still, at frame 7. The frames with their times, and the page's job: a JSON
    {"tracking": overrides, "frames": [{"image": PNG path, "t"}, ...]}."""
    patches = []
    for photo in PHOTOS[:2]:
        image = read_image(photo)
        box = detector.detect(image)[0].box
        patches.append(CropTransform.from_square((box[0] + box[2]) / 2, (box[1] + box[3]) / 2,
                                                 1.8 * max(box[2] - box[0], box[3] - box[1]), 160).warp(image))
    out.mkdir()
    frames, job = [], []
    for k in range(20):
        frame = np.full((360, 640, 3), 96, np.uint8)
        frame[90:250, 40 + 10 * k:200 + 10 * k] = patches[0]
        if k >= 7:
            frame[120:280, 420:580] = patches[1]
        path = out / f"{k:02d}.png"
        cv2.imwrite(str(path), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        frames.append((frame, k / 30))
        job.append({"image": str(path), "t": k / 30})
    (out / "job.json").write_text(json.dumps({"tracking": {"detect_every": TRACK_DETECT_EVERY}, "frames": job}))
    return frames, out / "job.json"


def check_tracking(page: dict, frames: list, detector: LandmarkDetector) -> None:
    """The page's tracking of `frames` (window.kdl.trackBlobs) is tracking.LandmarkTracker's: the same
    frames with a detection, the same track ids, the same points and boxes within MAX_DIFF_PX."""
    same_tracking(page, frames, LandmarkTracker(detector, tracking=replace(DEFAULT_TRACKING,
                                                                           detect_every=TRACK_DETECT_EVERY)))
    # What happened: the moving face tracked between detections, the new face found by the next one.
    tracks = [sorted(f["track"] for f in frame["faces"]) for frame in page["frames"]]
    assert tracks[:7] == [[0]] * 7 and tracks[-1] == [0, 1], tracks
    assert page["detections"] <= len(frames) // 2, page["detections"]


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


def without_ipp(fn, *args):
    """fn(*args) with OpenCV's own kernels (the page's arithmetic), not Intel IPP's."""
    was = _ipp(False)
    try:
        return fn(*args)
    finally:
        _ipp(was)


def test_page_crops_are_opencvs(tmp_path, onnx_detector):
    node_or_skip()

    rng = np.random.default_rng(0)
    size = onnx_detector.input_size
    spec = modelspec.read_model_spec(WEIGHTS_DIR / f"{MODEL}.json")
    images, job = [], {"size": size, "area_grid_tolerance": spec["crop"]["area_grid_tolerance"], "images": []}
    for k, photo in enumerate(PHOTOS[:4]):
        image = read_image(photo)
        if k == 0:
            image = np.ascontiguousarray(image[: image.shape[0] // 6 * 6, : image.shape[1] // 6 * 6])
        h, w = image.shape[:2]
        transforms = onnx_detector.crop_faces(image).transforms  # the detector's own crops
        for j in range(10):  # shrinking and enlarging windows, some past the image's edges, some turned
            side = rng.uniform(0.2, 1.3) * max(w, h)
            angle = 0.0 if j < 6 else rng.uniform(-math.pi, math.pi)
            transforms.append(CropTransform.from_square(rng.uniform(-0.2, 1.2) * w, rng.uniform(-0.2, 1.2) * h,
                                                        side, size, angle))
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


def test_page_smoothing_is_pythons(tmp_path):
    """The page's FaceFilter (One-Euro on landmarks and box, face-size units) is video.FaceFilter."""
    node_or_skip()
    spec = modelspec.read_model_spec(WEIGHTS_DIR / f"{MODEL}.json")
    rng = np.random.default_rng(1)
    box, shape = np.array([40.0, 50.0, 140.0, 160.0]), rng.uniform(0, 1, (68, 2))
    frames, t = [], 0.0
    for i in range(40):
        b = box + np.array([1, 0, 1, 0]) * (2.0 * i if i < 20 else 40.0 - 5.0 * (i - 20)) + rng.normal(0, 1.5, 4)
        t += 1 / 30 + rng.uniform(0, 0.01) if i != 25 else 0.0  # one repeated timestamp: the default frame time
        frames.append({"t": t, "box": b.tolist(),
                       "landmarks": (b[:2] + shape * (b[2:] - b[:2]) + rng.normal(0, 1.0, (68, 2))).tolist()})
    got = json.loads(run_node("parity.mjs", {"smoothing": spec["smoothing"], "frames": frames}, tmp_path,
                              "smooth").read_text())
    smoothing = SmoothingOptions(spec["smoothing"]["min_cutoff"], spec["smoothing"]["beta"],
                                 spec["smoothing"]["d_cutoff"])
    python = FaceFilter(smoothing, spec["smoothing"]["fps"])
    moved = 0.0
    for frame, page in zip(frames, got, strict=True):
        want = python(Face(np.array(frame["box"]), 1.0, np.array(frame["landmarks"])), frame["t"])
        np.testing.assert_allclose(page["landmarks"], want.landmarks, rtol=0, atol=1e-9)
        np.testing.assert_allclose(page["box"], want.box, rtol=0, atol=1e-9)
        moved = max(moved, float(np.abs(want.landmarks - np.array(frame["landmarks"])).max()))
    assert moved > 1.0  # the filter did smooth


def test_page_geometry_is_pythons(tmp_path):
    """The page's crop geometry at any roll: crop matrices (from squares, boxes and landmarks), squares, boxes,
    rolls and quarter turns are crop.py's, tracking.py's and detection.rotations' to 1e-9."""
    node_or_skip()
    rng = np.random.default_rng(2)
    pts = rng.uniform(50, 250, (68, 2))
    cal = BoxCalibration(dx=0.02, dy=0.15, scale=1.09)
    calls, want = [], []
    for angle in (0.0, 0.3, -0.7, math.pi / 2, 2.9, -math.pi):
        t = CropTransform.from_square(130.5, 90.25, 150.0, 128, angle)
        m = t.matrix.ravel().tolist()
        box = [40.0, 30.0, 170.0, 180.0]
        square = cal.square(np.array(box), angle)
        calls += [["cropMatrix", [130.5, 90.25, 150.0, 128, angle]], ["matrixAngle", [m]], ["matrixScale", [m]],
                  ["cropSquare", [m, 128]], ["toImage", [m, pts[:3].tolist()]],
                  ["calibratedSquare", [box, {"dx": cal.dx, "dy": cal.dy, "scale": cal.scale}, angle]],
                  ["boxForSquare", [list(square), {"dx": cal.dx, "dy": cal.dy, "scale": cal.scale}, angle]],
                  ["squareFromLandmarks", [pts.tolist(), 0.1, angle]],
                  ["landmarkCrop", [pts.tolist(), 128, 0.1, angle]]]
        want += [m, t.angle, t.scale, list(crop_square(t)), t.to_image(pts[:3]).tolist(), list(square),
                 box_for_square(square, cal, angle).tolist(), list(square_from_landmarks(pts, 0.1, angle)),
                 gt_crop(pts, 128, 0.1, angle).matrix.ravel().tolist()]
    calls.append(["rollAngle", [pts[36].tolist(), pts[45].tolist()]])
    want.append(float(roll_angle(pts[36], pts[45])))
    image = rng.integers(0, 255, (5, 7, 3), dtype=np.uint8)
    for turns in range(4):
        calls += [["rot90", [{"data": image.ravel().tolist(), "width": 7, "height": 5}, turns]],
                  ["turnedBack", [[1.5, 3.0], turns, 7, 5]]]
        turned = np.rot90(image, turns)
        want += [{"data": turned.ravel().tolist(), "width": turned.shape[1], "height": turned.shape[0]},
                 turned_back(np.array([1.5, 3.0]), turns, 7, 5).tolist()]
    got = json.loads(run_node("parity.mjs", {"calls": calls}, tmp_path, "geometry").read_text())
    for (name, _), mine, theirs in zip(calls, got, want, strict=True):
        if isinstance(theirs, dict):
            assert mine == theirs, name
        else:
            np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9, err_msg=name)


def pipeline_or_skip() -> None:
    node_or_skip()
    if not (WEB / "node_modules" / "onnxruntime-web").is_dir():
        missing("the web app's packages are not installed (cd web && npm ci)")


def rolled_photo(image: np.ndarray, degrees: float) -> np.ndarray:
    """The photo rolled by `degrees` (counter-clockwise on screen) on a canvas grown to hold all of it."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64) @ m.T
    m[:, 2] -= np.floor(corners.min(0))
    size = tuple(int(v) + 1 for v in np.ceil(corners.max(0)) - np.floor(corners.min(0)))
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)


def raw_image(image: np.ndarray, path: Path) -> dict:
    path.write_bytes(np.ascontiguousarray(image).tobytes())
    return {"raw": str(path), "width": image.shape[1], "height": image.shape[0]}


# (photo, roll in degrees); at -120 degrees photo 11's first upright reading fails the network check (the search
# goes on to the patch's half turn and quarter turns)
ROLLED_PHOTOS = [(0, 0.0), (0, 40.0), (1, -60.0), (2, 90.0), (3, 180.0), (4, 25.0), (11, -120.0)]


def test_page_finds_rolled_faces_as_python(tmp_path, onnx_detector):
    """On photos rolled by up to 180 degrees, the page (onnxruntime-web under Node) finds LandmarkDetector.detect's
    faces, with the same boxes and its 68 points within MAX_DIFF_PX: crops turned by the keypoints' roll and
    refined, rolled faces re-detected on a patch turned upright where the network agrees with the keypoints (a
    failed check sending the search on)."""
    pipeline_or_skip()
    images = [rolled_photo(read_image(PHOTOS[k]), degrees) for k, degrees in ROLLED_PHOTOS]
    job = {"spec": str(WEIGHTS_DIR / f"{MODEL}.json"),
           "photos": [raw_image(im, tmp_path / f"{i}.rgb") for i, im in enumerate(images)]}
    got = json.loads(run_node("pipeline.mjs", job, tmp_path, "photos").read_text())["photos"]
    turned = 0
    for (k, degrees), image, page in zip(ROLLED_PHOTOS, images, got, strict=True):
        faces = without_ipp(onnx_detector.detect, image)  # the page's warps are OpenCV's own kernels
        assert len(page) == len(faces) >= 1, (k, degrees)
        turned += any(t.angle != 0.0 for t in onnx_detector.crop_faces(image).transforms)
        for mine, theirs in zip(page, faces):  # a box found again on a turned patch: within 0.01 px
            np.testing.assert_allclose(mine["box"], theirs.box, atol=1e-2)
            assert abs(mine["score"] - theirs.score) < 1e-4
            diff = float(np.abs(np.asarray(mine["landmarks"]) - theirs.landmarks).max())
            assert diff < MAX_DIFF_PX, (k, degrees, diff)
    assert turned >= 4  # the rolled photos went through the turned crops


class RecordingWindows:
    """A LandmarkDetector that records the crop windows a tracker cuts and the sizes its face detector looks at."""

    def __init__(self, detector: LandmarkDetector) -> None:
        self.detector, self.windows, self.scans = detector, [], []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.detector, name)

    def crop_faces(self, image, boxes=None, box_source=None, name="image", detect_max_side=None):
        self.scans.append(detect_max_side)
        return self.detector.crop_faces(image, boxes, box_source, name, detect_max_side)

    def crop_windows(self, image, transforms, scores=None, name="image"):
        self.windows.append(list(transforms))
        return self.detector.crop_windows(image, transforms, scores, name)


def tilting_frames(detector: LandmarkDetector, out: Path) -> tuple[list, list]:
    """A 960x540 clip: a face (cut from a bundled photo) moving right while its head tilts from 0 to 45
    degrees, and a face rolled by 30 degrees appearing, still, at frame 7. The frames with their times, and
    the page's frames as raw RGB files."""
    faces = []
    for photo in PHOTOS[:2]:
        image = read_image(photo)
        box = detector.detect(image)[0].box
        faces.append((image, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, 1.8 * max(box[2] - box[0], box[3] - box[1])))
    frames, job = [], []
    for k in range(18):
        frame = np.full((540, 960, 3), 96, np.uint8)
        image, cx, cy, side = faces[0]
        frame[150:350, 60 + 14 * k:260 + 14 * k] = CropTransform.from_square(cx, cy, side, 200,
                                                                            math.radians(-2.5 * k)).warp(image)
        if k >= 7:
            image, cx, cy, side = faces[1]
            frame[300:460, 700:860] = CropTransform.from_square(cx, cy, side, 160, math.radians(30)).warp(image)
        frames.append((frame, k / 30))
        job.append({**raw_image(frame, out / f"{k:02d}.rgb"), "t": k / 30})
    return frames, job


def same_tracking(page: dict, frames: list, tracker: LandmarkTracker) -> None:
    """The page's tracking of `frames` is `tracker`'s (a fresh tracking.LandmarkTracker): the same frames with
    a detection, the same track ids, the same points and boxes within MAX_DIFF_PX."""
    assert len(page["frames"]) == len(frames)
    for k, ((image, t), got) in enumerate(zip(frames, page["frames"])):
        before = tracker.detections
        faces = without_ipp(tracker.update, image, t)
        assert got["detected"] == (tracker.detections > before), k
        assert [f["track"] for f in got["faces"]] == [f.track for f in faces], k
        for mine, want in zip(got["faces"], faces):
            assert np.abs(np.array(mine["landmarks"]) - want.landmarks).max() < MAX_DIFF_PX, k
            assert np.abs(np.array(mine["box"]) - want.box).max() < MAX_DIFF_PX, k
    assert page["detections"] == tracker.detections


def test_page_tracks_a_tilting_head_as_python(tmp_path, onnx_detector):
    """The webcam's tracker (onnxruntime-web under Node) on a head that tilts to 45 degrees while it moves,
    and a second, rolled face that appears: tracking.LandmarkTracker's detections, track ids, points and boxes,
    the crop turned with the head and the periodic scans on a copy shrunk to scan_max_side."""
    pipeline_or_skip()
    frames, job = tilting_frames(onnx_detector, tmp_path)
    tracking = {"detect_every": TRACK_DETECT_EVERY}
    got = json.loads(run_node("pipeline.mjs", {"spec": str(WEIGHTS_DIR / f"{MODEL}.json"),
                                               "track": {"tracking": tracking, "frames": job}},
                              tmp_path, "track").read_text())["track"]
    recording = RecordingWindows(onnx_detector)
    same_tracking(got, frames, LandmarkTracker(recording, tracking=replace(DEFAULT_TRACKING, **tracking)))
    tracks = [sorted(f["track"] for f in frame["faces"]) for frame in got["frames"]]
    assert tracks[:7] == [[0]] * 7 and tracks[-1] == [0, 1], tracks
    assert got["detections"] <= len(frames) // 2, got["detections"]
    angles = [abs(math.degrees(w[0].angle)) for w in recording.windows if w]
    assert angles[0] == 0.0 and 35 < angles[-1] < 50, angles  # upright at first, then turned with the head
    assert 20 < abs(math.degrees(recording.windows[-1][1].angle)) < 40  # the new face: turned from the start
    assert DEFAULT_TRACKING.scan_max_side in recording.scans and None in recording.scans  # a scan on a shrunk copy


# --------------------------------------------------------------------------------------------------
# The page in headless Chromium
# --------------------------------------------------------------------------------------------------

@pytest.mark.browser
def test_page_in_chromium_matches_python(tmp_path, onnx_detector):
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
    tracked_frames, track_job = tracking_frames(onnx_detector, tmp_path / "track")
    spec_smoothing = modelspec.read_model_spec(WEIGHTS_DIR / f"{MODEL}.json")["smoothing"]
    server, url = serve_in_thread()  # the page `npm run build` wrote into the package
    try:
        proc = subprocess.run([node, str(WEB / "tests" / "browser.mjs"), "--url", url, "--out", str(out),
                               "--chromium", CHROMIUM, "--fake-video", str(video), "--track", str(track_job),
                               *map(str, PHOTOS)],
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
    assert result["runtime"]["isolated"] is True  # served with COOP/COEP: threads available
    # Webcam mode (Chromium's fake camera playing a moving face): the page tracks (the detector runs on few
    # frames), and its smoothed points are video.FaceFilter's, per track, on its raw points at its timestamps.
    frames = result["webcam"]["log"]
    assert sum(1 for f in frames if f["raw"]) >= 20 and all(f["smooth"] for f in frames)
    assert 1 <= sum(f["detected"] for f in frames) < len(frames) / 2
    smoothing = SmoothingOptions(**{k: spec_smoothing[k] for k in ("min_cutoff", "beta", "d_cutoff")})
    filters: dict[int, FaceFilter] = {}
    for f in frames:
        assert len(f["raw"]) == len(f["shown"]) == len(f["tracks"])
        for track, raw, shown in zip(f["tracks"], f["raw"], f["shown"]):
            face_filter = filters.setdefault(track, FaceFilter(smoothing, spec_smoothing["fps"]))
            want = face_filter(Face(np.array(raw["box"]), raw["score"], np.array(raw["landmarks"])), f["t"])
            np.testing.assert_allclose(shown["landmarks"], want.landmarks, atol=1e-6)
    # The webcam's tracking on known frames (a face moving, another appearing) is LandmarkTracker's.
    check_tracking(result["tracking"], tracked_frames, onnx_detector)
    webcam_ms = {"detectorMs": float(np.median([f["detectorMs"] for f in frames if f["detected"]])),
                 "landmarksMs": float(np.median([f["landmarksMs"] for f in frames if f["raw"]]))}
    native = python_timing(read_image(PHOTOS[0]), onnx_detector)
    timing = result["timing"]
    if keep != out:
        shutil.copyfile(out / "screenshot.png", keep / "screenshot.png")
    (keep / "parity.json").write_text(json.dumps({
        "max_point_diff_px": worst, "per_image_max_px": per_image, "faces": sum(len(v["faces"]) for v in
                                                                                result["images"].values()),
        "python": f"LandmarkDetector({PYTHON_MODEL!r}, backend='onnx', detector='retinaface')",
        "browser": result["browser"], "timing": timing,
        "python_onnxruntime_1_thread_same_run": native,
        "webcam_640x480_median_ms": {"detector": webcam_ms["detectorMs"], "landmarks": webcam_ms["landmarksMs"],
                                     "frames": len(frames)}}, indent=1) + "\n")
    print(f"\nheadless Chromium {result['browser']}: detector {timing['detector_ms']:.1f} ms/frame, "
          f"landmarks {timing['landmarks_ms_per_face']:.1f} ms/face; max point difference vs Python {worst:.3f} px")
    assert worst < MAX_DIFF_PX
