"""MediaPipe's BlazeFace face detector (optional: mediapipe <= 0.10.21 bundles the model)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from kdlandmarks.data.images import check_image
from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detection.base import Detection


_MP_MODELS = {"short": 0, "full": 1}  # the legacy solution's model_selection


def _mediapipe_dir() -> Path | None:
    spec = importlib.util.find_spec("mediapipe")  # finds the package without importing it (slow)
    for loc in (spec.submodule_search_locations or []) if spec is not None else []:
        return Path(loc)
    return None


def mediapipe_unavailable() -> str | None:
    root = _mediapipe_dir()
    if root is None:
        return ("needs mediapipe: pip install 'mediapipe<=0.10.21' (bundles BlazeFace); newer releases need "
                "a model file, see MediaPipeDetector")
    if not ((root / "python" / "solutions" / "face_detection.py").is_file()
            and (root / "modules" / "face_detection" / "face_detection_short_range.tflite").is_file()):
        return ("needs a mediapipe that bundles BlazeFace (<= 0.10.21); with a newer one pass "
                "model_path=blaze_face_short_range.tflite to kdlandmarks.inference.detection:MediaPipeDetector")
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
            raise ConfigError(f"face detector {self.name!r} {mediapipe_unavailable()}")
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
        reason = mediapipe_unavailable()
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


