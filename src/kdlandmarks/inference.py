"""Landmarks for faces in images with a trained model: find faces (or take boxes), crop them the way the
model was trained, run the network (torch or onnxruntime) in batches, and map the points back.

    from kdlandmarks import LandmarkDetector
    detector = LandmarkDetector()                                    # the default shipped student
    faces = detector.detect(image_rgb)                               # [Face(box, score, landmarks (N, 2))]
    faces = detector.detect(image_rgb, boxes=[[x0, y0, x1, y1]])     # your own face boxes
    detector = LandmarkDetector.from_pretrained("model.onnx")        # an exported model on onnxruntime

A face box becomes the model's crop through a box-to-crop calibration (crop.BoxCalibration): the
model file's own for that detector (ModelInfo.box_calibrations), else detection.DEFAULT_CALIBRATIONS.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from .crop import BoxCalibration, CropTransform, box_crop
from .detection import (FaceDetector, check_boxes, check_image, create_detector, default_calibration,
                        resolve_detector_name)
from .errors import ConfigError, DataError, KDLandmarksError, ModelError
from .zoo import DEFAULT_MODEL

DEFAULT_BOX_SOURCE = "retinaface"  # given boxes are taken to be RetinaFace-like face boxes
BACKENDS = ("torch", "onnx")


@dataclass
class Face:
    """One face: box (x0, y0, x1, y1), detector score (1.0 for given boxes), landmarks (N, 2) in image pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        return {"box": [round(float(v), decimals) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": [[round(float(x), decimals), round(float(y), decimals)] for x, y in self.landmarks]}


def torch_device(device: str) -> Any:
    """A torch.device for a user's device string; ConfigError when it is malformed or not present."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} requested but MPS is not available; use --device cpu")
    return dev


def _torch_runner(model: Any, device: str) -> tuple[Callable[[np.ndarray], np.ndarray], str]:
    import torch

    dev = torch_device(device)
    model = model.to(dev).eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(batch).to(dev)).float().cpu().numpy()

    return run, str(dev)


def _onnx_providers(device: str) -> list[str]:
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(f"device {device!r}: this onnxruntime has no CUDA provider "
                              "(install onnxruntime-gpu); use --device cpu")
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ConfigError(f"device {device!r} is not supported by the onnx backend: use cpu or cuda")


def _resolve_model_path(model: str | Path, backend: str | None) -> Path:
    """A shipped name resolves to its ONNX export when onnxruntime is installed (fast start, small memory),
    unless backend "torch" is asked for."""
    import importlib.util

    from .zoo import SHIPPED, resolve_model

    if backend is None and str(model) in SHIPPED and importlib.util.find_spec("onnxruntime") is not None:
        backend = "onnx"
    return Path(resolve_model(model, backend=backend or "torch"))


class LandmarkDetector:
    """Faces and their landmarks in RGB images, with a trained model and a pluggable face detector.

    model: a shipped model name, a model file (.pt from save_model), a Lightning checkpoint (.ckpt) or
    an exported .onnx; None -> the default shipped student. backend: "torch" or "onnx" (default: from
    the file type). detector: a registry name ("auto" = best installed, see detection.py), a
    FaceDetector, or any callable image -> boxes; only used when detect() gets no boxes.
    calibration: a BoxCalibration or a detector name forcing the box-to-crop mapping for every box.
    num_points: the point count you expect; a model with another count raises ModelError.
    """

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu", backend: str | None = None,
                 detector: str | FaceDetector | Callable[..., Any] = "auto", num_points: int | None = None,
                 batch_size: int = 32, calibration: BoxCalibration | str | None = None,
                 detector_options: dict[str, Any] | None = None, _loaded: tuple[Any, Any] | None = None) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: choose torch or onnx")
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        if _loaded is not None:
            net, self.info = _loaded
            self.model_path: Path | None = None
            self.backend = "torch"
            self._run, self.device = _torch_runner(net, device)
        else:
            self._load(DEFAULT_MODEL if model is None else model, backend, device)
        if num_points is not None and int(num_points) != int(self.info.num_points):
            raise ModelError(f"{self.model_path or 'model'}: predicts {self.info.num_points} points, "
                             f"but {num_points} were requested")
        from .codec import LandmarkCodec

        self.codec = LandmarkCodec(self.info.input_size, self.info.space)
        self._detector_spec = detector
        self._detector_options = dict(detector_options or {})
        self._detector: FaceDetector | None = None
        self._calibration = calibration

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path | None = None, device: str = "cpu", backend: str | None = None,
                        detector: str | FaceDetector | Callable[..., Any] = "auto", **kwargs: Any) -> "LandmarkDetector":
        """Load a shipped model by name, a model file, a training checkpoint or an exported .onnx."""
        return cls(name_or_path, device=device, backend=backend, detector=detector, **kwargs)

    @classmethod
    def from_model(cls, model: Any, info: Any, device: str = "cpu", **kwargs: Any) -> "LandmarkDetector":
        """Wrap an in-memory LandmarkRegressor and its ModelInfo (e.g. right after training)."""
        return cls(device=device, _loaded=(model, info), **kwargs)

    def _load(self, model: str | Path, backend: str | None, device: str) -> None:
        path = _resolve_model_path(model, backend)
        kind = "onnx" if path.suffix.lower() == ".onnx" else "torch"
        backend = backend or kind
        if backend != kind:
            if kind == "onnx":
                raise ModelError(f"{path}: an exported ONNX model runs with backend 'onnx', not 'torch'")
            raise ModelError(f"{path}: backend 'onnx' needs an exported .onnx file (kdlandmarks export)")
        self.model_path = path
        self.backend = backend
        if backend == "onnx":
            from .export import OnnxRegressor

            regressor = OnnxRegressor(path, providers=_onnx_providers(device))
            self.info = regressor.info
            self._run, self.device = regressor, device
        else:
            from .models import load_model

            net, self.info = load_model(path)
            self._run, self.device = _torch_runner(net, device)

    # ----------------------------------------------------------------------------------------------
    @property
    def num_points(self) -> int:
        return int(self.info.num_points)

    @property
    def input_size(self) -> int:
        return int(self.info.input_size)

    @property
    def detector(self) -> FaceDetector:
        """The face detector, created on first use (so that box-only use needs none installed)."""
        if self._detector is None:
            self._detector = create_detector(self._detector_spec, **self._detector_options)
        return self._detector

    @property
    def detector_name(self) -> str | None:
        """The configured detector's name without creating it; None when it cannot be resolved."""
        if self._detector is not None:
            return self._detector.name
        spec = self._detector_spec
        if isinstance(spec, str) and ":" not in spec:
            try:
                return resolve_detector_name(spec)
            except ConfigError:
                return None
        return getattr(spec, "name", None)

    def _given_box_source(self) -> str | None:
        """Whose boxes given boxes are taken to be: the named detector, else RetinaFace's (the default
        detector), so that the same boxes give the same crops whatever detectors are installed."""
        spec = self._detector_spec
        if isinstance(spec, str):
            return DEFAULT_BOX_SOURCE if spec == "auto" or ":" in spec else spec
        return getattr(spec, "name", None)

    def calibration_for(self, source: str | None = None) -> BoxCalibration:
        """The box-to-crop mapping for boxes from `source` (a detector name; default: this detector).

        Order: the `calibration` given to the constructor, the model file's own for that name, the
        shipped default for that detector, and the identity (crop the box itself) for unknown names.
        Given boxes without a source count as the configured detector's ("auto": RetinaFace's).
        """
        if isinstance(self._calibration, BoxCalibration):
            return self._calibration
        name = self._calibration or source or self._given_box_source()
        if name is None:
            return BoxCalibration()
        own = (self.info.box_calibrations or {}).get(name)
        if own is not None:
            try:
                return BoxCalibration(**own)
            except TypeError:
                raise ModelError(f"{self.model_path or 'model'}: malformed box calibration for {name!r}: {own}") from None
        return default_calibration(name, self.info.crop_margin) or BoxCalibration()

    # ----------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, boxes: Any = None, box_source: str | None = None) -> list[Face]:
        """Faces in one RGB uint8 (H, W, 3) image. With `boxes` ((K, 4) x0, y0, x1, y1, or (K, 5) with
        scores) no detector runs and each face's score is 1.0 (or the given one)."""
        return self.detect_batch([image], None if boxes is None else [boxes], box_source)[0]

    def detect_batch(self, images: Sequence[np.ndarray], boxes: Sequence[Any] | None = None,
                     box_source: str | None = None) -> list[list[Face]]:
        """detect() over many images; the network runs in batches over all faces of all images.

        `boxes` holds one entry per image: its boxes, or None to run the detector on that image.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise DataError("detect_batch expects a list of images; use detect() for a single image")
        images = [check_image(im, f"image {i}") for i, im in enumerate(images)]
        if boxes is None:
            boxes = [None] * len(images)
        if len(boxes) != len(images):
            raise DataError(f"boxes: got {len(boxes)} box lists for {len(images)} images")
        transforms: list[CropTransform] = []
        crops: list[np.ndarray] = []
        per_image: list[tuple[np.ndarray, np.ndarray]] = []
        for i, (image, given) in enumerate(zip(images, boxes)):
            if given is None:
                dets = self.detector.detect(image)
                bxs = np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4)
                scores = np.array([d.score for d in dets], dtype=np.float64)
                calibration = self.calibration_for(box_source or self.detector.name)
            else:
                bxs, scores = check_boxes(given, f"boxes of image {i}")
                calibration = self.calibration_for(box_source)
            per_image.append((bxs, scores))
            for box in bxs:
                t = box_crop(box, self.input_size, calibration)
                transforms.append(t)
                crops.append(t.warp(image))
        points = self._predict(crops)
        out: list[list[Face]] = []
        k = 0
        for bxs, scores in per_image:
            faces = []
            for box, score in zip(bxs, scores):
                faces.append(Face(box.copy(), float(score), transforms[k].to_image(points[k])))
                k += 1
            out.append(faces)
        return out

    def predict_crops(self, crops: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
        """Landmarks (B, N, 2) in each crop's own pixels for face crops framed as in training (the
        landmark extent plus the model's margin, square). Crops are RGB uint8 (H, W, 3), any size:
        each is resized (anisotropically, as the paper does) to the network input."""
        import cv2

        if isinstance(crops, np.ndarray) and crops.ndim == 3:
            crops = [crops]
        crops = [check_image(c, f"crop {i}") for i, c in enumerate(crops)]
        s = self.input_size
        sized = []
        for c in crops:
            if c.shape[:2] != (s, s):
                interp = cv2.INTER_AREA if min(c.shape[:2]) > s else cv2.INTER_LINEAR
                c = cv2.resize(c, (s, s), interpolation=interp)
            sized.append(c)
        points = self._predict(sized)
        # Back from network pixels to each crop's pixels (pixel-centre convention, per axis).
        for i, c in enumerate(crops):
            h, w = c.shape[:2]
            points[i] = (points[i] + 0.5) * np.array([w / s, h / s]) - 0.5
        return points

    def _predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """RGB uint8 (S, S, 3) crops -> landmarks (B, N, 2) in crop pixels, in chunks of batch_size."""
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.num_points, 2))
        outs = []
        for start in range(0, n, self.batch_size):
            chunk = np.stack(crops[start:start + self.batch_size])
            batch = np.ascontiguousarray(chunk.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
            try:
                y = np.asarray(self._run(batch))
            except KDLandmarksError:
                raise
            except RuntimeError as exc:  # e.g. CUDA out of memory: name what ran
                raise ModelError(f"{self.model_path or 'model'}: inference failed on a batch of {len(batch)} "
                                 f"({str(exc).splitlines()[0][:200]}); try a smaller batch size") from None
            outs.append(y)
        vec = np.concatenate(outs).astype(np.float64)
        if vec.shape != (n, 2 * self.num_points):
            raise ModelError(f"{self.model_path or 'model'}: network output shape {vec.shape}, "
                             f"expected ({n}, {2 * self.num_points})")
        return self.codec.decode(vec)


def draw_faces(image_rgb: np.ndarray, faces: Sequence[Face], labels: Sequence[Any] | None = None) -> np.ndarray:
    """A copy of the image with each face's box, landmarks and optional label (e.g. a track id) drawn."""
    import cv2

    canvas = np.ascontiguousarray(check_image(image_rgb).copy())
    for i, face in enumerate(faces):
        x0, y0, x1, y1 = (int(round(v)) for v in face.box)
        side = max(x1 - x0, y1 - y0, 1)
        thick = max(1, side // 150)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), (0, 200, 255), thick, cv2.LINE_AA)
        radius = max(1, side // 100)
        for x, y in np.asarray(face.landmarks):
            if np.isfinite(x) and np.isfinite(y):
                cv2.circle(canvas, (int(round(x)), int(round(y))), radius, (0, 255, 0), -1, cv2.LINE_AA)
        if labels is not None:
            cv2.putText(canvas, str(labels[i]), (x0, max(0, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                        max(0.4, side / 300), (255, 255, 0), thick, cv2.LINE_AA)
    return canvas
