"""The runtime description of an exported model: everything a non-Python runtime (the web app in web/)
needs to reproduce `LandmarkDetector`'s numbers, as one JSON file beside the ONNX file
(``kd-student-300w-lite.onnx`` -> ``kd-student-300w-lite.json``).

It is written from the model's own metadata (ModelInfo in the ONNX file) and from the Python code's
settings, never typed by hand, so the two runtimes cannot drift apart:

- ``model``: the ONNX file, its input/output names, input size and point count;
- ``input``: how a crop becomes the network input (layout, channel order, x = (pixel * scale - mean) / std);
- ``codec``: the coordinate space of the output and how it decodes to input pixels (codec.LandmarkCodec);
- ``crop``: the crop window (crop.CropTransform: pixel centres, area pre-shrink of the region the crop
  reads, bilinear, replicated border) and the crop margin the model was trained at;
- ``box_calibrations``: the box-to-crop calibration per box source (detector), resolved the way
  LandmarkDetector resolves it (the model file's own, else calibration.DEFAULT_CALIBRATIONS rescaled to
  the model's margin);
- ``detector``: RetinaFace's file, input conversion, anchors, variances, thresholds and resizing
  (detection.RetinaFaceDetector with its default arguments, detector.DETECT_MAX_SIDE);
- ``roll``: how LandmarkDetector turns a rolled face's crop upright (its roll_threshold, roll_passes and
  ROLL_SETTLED, the detector's eye keypoints and the scheme's inter-ocular landmarks whose roll it reads, the
  upright patch a rolled face is found again on, and the landmarks its network check compares with the
  detector's keypoints);
- ``smoothing``: the One-Euro settings of video.DEFAULT_SMOOTHING (``predict``, the LandmarkTracker);
- ``tracking``: tracking.LandmarkTracker's defaults (the web app's webcam mode tracks as it does), with the
  hysteresis of a track's turned crop.

`write_model_spec` writes it (``kdlandmarks export`` does so beside each ONNX file it writes;
``kdlandmarks web --write-spec MODEL`` rewrites a shipped model's); tests/test_web.py checks that the
committed JSON of the shipped lite model equals what this module produces and what LandmarkDetector uses.
Torch-free: it needs onnxruntime only to read the ONNX file's metadata.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from kdlandmarks.errors import ModelError
from kdlandmarks.models.info import ModelInfo

SPEC_FORMAT = "kdlandmarks-runtime/1"
DETECTOR = "retinaface"  # the detector whose parameters the description carries (the web app's)


def spec_path(onnx_path: str | Path) -> Path:
    """Where the description of an ONNX model lives: the same name with .json."""
    return Path(onnx_path).with_suffix(".json")


def resolved_calibrations(info: ModelInfo) -> dict[str, dict[str, float]]:
    """The box-to-crop calibration of every known box source for this model: the model file's own
    (ModelInfo.box_calibrations), else the shipped default rescaled to the model's crop margin (the
    order of LandmarkDetector.calibration_for without a forced calibration)."""
    from kdlandmarks.inference.calibration import box_source_names, resolve_calibration

    own = info.box_calibrations or {}
    out: dict[str, dict[str, float]] = {}
    for name in box_source_names(own):
        cal = resolve_calibration(name, info)
        out[name] = {"dx": float(cal.dx), "dy": float(cal.dy), "scale": float(cal.scale)}
    return out


def detector_spec() -> dict[str, Any]:
    """RetinaFace as RetinaFaceDetector runs it with its default arguments, behind LandmarkDetector."""
    import onnxruntime as ort

    from kdlandmarks.inference.detection import retinaface as rf
    from kdlandmarks.inference.detector import DETECT_MAX_SIDE

    opts = rf.RETINAFACE_DEFAULTS
    if not rf.RETINAFACE_FILE.is_file():
        raise ModelError(f"{rf.RETINAFACE_FILE}: the vendored RetinaFace weights are missing")
    session = ort.InferenceSession(str(rf.RETINAFACE_FILE), providers=["CPUExecutionProvider"])
    return {
        "name": DETECTOR,
        "file": rf.RETINAFACE_FILE.name,
        "input": session.get_inputs()[0].name,
        "outputs": [o.name for o in session.get_outputs()],  # loc, conf (softmax), five keypoints
        "layout": "NCHW",
        "channels": "BGR",
        "mean": [float(v) for v in rf.RETINAFACE_MEAN_BGR],  # x = pixel - mean, per channel in `channels` order
        "scale": 1.0,
        "strides": list(rf.RETINAFACE_STRIDES),
        "min_sizes": [list(s) for s in rf.RETINAFACE_MIN_SIZES],  # anchors per stride, square, in input pixels
        "variance": list(rf.RETINAFACE_VARIANCE),
        "score_threshold": float(opts["score_threshold"]),
        "nms_threshold": float(opts["nms_threshold"]),
        "max_size": opts["max_size"],  # long side the image is shrunk to (INTER_AREA) before the network
        "min_face": float(opts["min_face"]),  # boxes with a smaller side are dropped
        "detect_max_side": DETECT_MAX_SIDE,  # LandmarkDetector shrinks larger images first (INTER_AREA)
        "box_frame": "continuous",  # network boxes span pixel j as [j, j+1]: subtract 0.5 for pixel centres
    }


def roll_spec(info: ModelInfo) -> dict[str, Any]:
    """How LandmarkDetector (with its defaults) turns rolled faces' crops: a detected face whose eye keypoints
    are rolled past `threshold` (radians; None: never) is cropped turned by that roll, then refined at most
    `passes` times on the roll of its predicted `eyes` (the scheme's inter-ocular pair) until the crop's roll is
    within `settled`; a face whose keypoints look rolled far, or rolled with a low score, or bunched, is first
    found again on a patch around it turned upright (`upright_patch`, None: never), where the landmark network's
    eye centres (`pupils` groups) and `keypoint_landmarks` agree with the detector's keypoints; and with
    search_rotations an image with no upright face is searched on its `search_turns`."""
    from dataclasses import asdict

    from kdlandmarks.data.schemes import get_scheme
    from kdlandmarks.inference.detection.rotations import QUARTER_TURNS
    from kdlandmarks.inference.detector import KEYPOINT_LANDMARKS, ROLL_SETTLED, LandmarkDetector

    threshold, patch = LandmarkDetector.roll_threshold, LandmarkDetector.upright_patch
    scheme = get_scheme(info.scheme)
    return {"threshold": None if threshold is None else float(threshold), "passes": int(LandmarkDetector.roll_passes),
            "settled": float(ROLL_SETTLED), "keypoint_eyes": [0, 1],  # RetinaFace's keypoints: eyes, nose, mouth
            "eyes": [int(i) for i in scheme.inter_ocular],
            # detection.rotations.upright_detection: how a rolled face is found again on a patch turned upright
            "upright_patch": None if patch is None else asdict(patch),
            # LandmarkDetector._network_agrees: the landmarks compared with the detector's five keypoints (eye
            # centres: the mean of each pupil group; then nose tip and mouth corners, where the scheme names them)
            "pupils": [[int(i) for i in group] for group in scheme.pupils],
            "keypoint_landmarks": [int(i) for i in KEYPOINT_LANDMARKS.get(scheme.name, ())],
            # LandmarkDetector.search_rotations: the quarter turns tried when an image holds no upright face
            "search_turns": list(QUARTER_TURNS) if LandmarkDetector.search_rotations else []}


def smoothing_spec() -> dict[str, Any]:
    """The One-Euro settings of video.DEFAULT_SMOOTHING (predict, detect_video, LandmarkTracker) and the
    frame rate assumed without timestamps."""
    from kdlandmarks.inference.video import DEFAULT_FPS, DEFAULT_SMOOTHING

    return {"filter": "one-euro-face", "units": "face size (sqrt of the first box's area)",
            # video.FaceFilter: one cutoff for all of a face's coordinates, from the face's speed
            "speed": "norm of the d_cutoff-low-passed rate of change of (centre x, centre y, spread) of the "
                     "points from the last filtered face, spread = RMS distance of the points from their mean; "
                     "cutoff = min_cutoff + beta * speed",
            **DEFAULT_SMOOTHING.to_dict(), "fps": float(DEFAULT_FPS)}


def tracking_spec() -> dict[str, Any]:
    """tracking.LandmarkTracker's defaults (every field of DEFAULT_TRACKING: when the face detector runs,
    how its faces match tracks, how its crops follow them), the box source whose calibration turns a
    track's box into its crop, how far outside the frame (face sides) a track's centre may go, and how far
    below the roll threshold (radians) a turned track's roll must fall for its crop to go back upright."""
    from dataclasses import asdict

    from kdlandmarks.inference.tracking import DEFAULT_TRACKING, EDGE_REACH, ROLL_HYSTERESIS, TRACK_BOX_SOURCE

    return {**asdict(DEFAULT_TRACKING), "box_source": TRACK_BOX_SOURCE, "edge_reach": EDGE_REACH,
            "roll_hysteresis": ROLL_HYSTERESIS}


def model_spec(info: ModelInfo, onnx_file: str = "model.onnx", input_name: str = "images",
               output_name: str = "landmarks") -> dict[str, Any]:
    """The runtime description (see the module docstring) of a model with this ModelInfo."""
    from kdlandmarks.data.codec import LandmarkCodec
    from kdlandmarks.data.crop import AREA_GRID_TOLERANCE

    codec = LandmarkCodec(info.input_size, info.space)  # checks the space name
    return {
        "format": SPEC_FORMAT,
        "model": {"file": onnx_file, "input": input_name, "output": output_name, "arch": info.arch,
                  "input_size": int(info.input_size), "num_points": int(info.num_points), "scheme": info.scheme},
        "input": {"layout": "NCHW", "channels": "RGB", "dtype": "float32", "scale": 1.0 / 255.0,
                  "mean": [0.0, 0.0, 0.0], "std": [1.0, 1.0, 1.0]},
        "codec": {"space": codec.space, "interleaved": True,
                  "decode": ("x = (u + 0.5) * input_size - 0.5" if codec.space == "normalized" else "x = u")},
        "crop": {"margin": float(info.crop_margin), "square": True, "pixel_centres": True,
                 "shrink": "area", "interpolation": "bilinear", "border": "replicate",
                 # a shrinking crop's region starts this close (shrunk pixels) to a bin edge of the whole image's
                 "area_grid_tolerance": AREA_GRID_TOLERANCE},
        "box_calibrations": resolved_calibrations(info),
        "detector": detector_spec(),
        "roll": roll_spec(info),
        "smoothing": smoothing_spec(),
        "tracking": tracking_spec(),
    }


def onnx_model_spec(onnx_path: str | Path) -> dict[str, Any]:
    """The description of an exported model, from its ModelInfo (read from the ONNX metadata by
    runtime.OnnxRegressor, the one reader of it) and its input/output names."""
    from kdlandmarks.inference.runtime import OnnxRegressor

    network = OnnxRegressor(onnx_path, threads=1)
    return model_spec(network.info, network.path.name, network.session.get_inputs()[0].name,
                      network.session.get_outputs()[0].name)


def dumps(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=2) + "\n"


def write_model_spec(onnx_path: str | Path, out: str | Path | None = None) -> Path:
    """Write the description of an exported model beside it (or to `out`), atomically; returns the path."""
    from kdlandmarks.fileio import atomic_write_text

    target = Path(out) if out is not None else spec_path(onnx_path)
    return atomic_write_text(target, dumps(onnx_model_spec(onnx_path)))


def read_model_spec(path: str | Path) -> dict[str, Any]:
    """A description written by write_model_spec; ModelError when it is not one."""
    path = Path(path)
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelError(f"{path}: unreadable model description ({exc})") from None
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise ModelError(f"{path}: not a {SPEC_FORMAT} model description")
    return spec
