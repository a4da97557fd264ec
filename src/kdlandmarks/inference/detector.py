"""Landmarks for faces in images with a trained model: find faces (or take boxes), crop them the way the
model was trained, run the network (onnxruntime or torch, see runtime.py) in batches, and map the points
back. The shipped models run on onnxruntime, so this path never imports torch (the default install has
none); a .pt/.ckpt model file or backend "torch" needs the `train` extra.

    from kdlandmarks import LandmarkDetector
    detector = LandmarkDetector()                                    # the default shipped student
    faces = detector.detect(image_rgb)                               # [Face(box, score, landmarks (N, 2))]
    faces = detector.detect(image_rgb, boxes=[[x0, y0, x1, y1]])     # your own (RetinaFace-style) face boxes
    faces = detector.detect(image_rgb, boxes=boxes, box_source="dlib")  # boxes of another convention
    detector = LandmarkDetector.from_pretrained("model.onnx")        # an exported model on onnxruntime
    detector = LandmarkDetector(flip_test=True)                      # flip test: average with the mirror
    faces = detector.detect(image_rgb, flip_test=False)              # ... or choose per call
    for frame in detector.detect_video("clip.mp4"):                  # tracked, smoothed faces per frame
        frame.index, frame.faces, frame.tracks

Files to files (what `kdlandmarks predict` does): kdlandmarks.apps.predict.predict_paths.

Flip test (off by default) runs each face crop and its horizontal mirror through the network in one
batch, mirrors the second view's points back (x -> S - 1 - x in input pixels, pixel centres; in the
codec's normalised space u -> -u) and relabels them with the model's landmark scheme (flip_index, so a
left eye stays a left eye), then averages the two views. It costs one more network pass per face (not
another face detection) and needs a scheme with flip pairs (FlipTestError otherwise).

A face box becomes the model's crop through a box-to-crop calibration (crop.BoxCalibration): the
model file's own for that detector (ModelInfo.box_calibrations), else detection.DEFAULT_CALIBRATIONS.
Boxes you give are named by their convention, `box_source`: "retinaface", "haar", "dlib", "mediapipe",
"mediapipe-full" or "landmarks" (a tight box around the 68 landmarks); see detection.box_source_names.
Default: given boxes are taken to be RetinaFace's (or those of the detector named with `detector=`, when
it has a calibration); an unknown name is a ConfigError. Faces the detector finds use its own.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from kdlandmarks.data.crop import BoxCalibration, CropTransform, box_crop
from kdlandmarks.inference.detection import Detection, FaceDetector, check_boxes, create_detector, resolve_detector_name
from kdlandmarks.inference.calibration import box_source_names, check_box_source, resolve_calibration
from kdlandmarks.data.images import check_image, shrink
from kdlandmarks.errors import ConfigError, DataError, FlipTestError, KDLandmarksError, ModelError
from kdlandmarks.inference.runtime import BACKENDS, load_runner, to_batch, torch_device, torch_runner  # noqa: F401 (torch_device: API)
from kdlandmarks.models.zoo import DEFAULT_MODEL

DEFAULT_BOX_SOURCE = "retinaface"  # given boxes are taken to be RetinaFace-like face boxes
DETECT_MAX_SIDE = 2048  # detectors see a copy of a larger image shrunk to this long side (pixels)


@dataclass
class Face:
    """One face: box (x0, y0, x1, y1), detector score (1.0 for given boxes), landmarks (N, 2) in image pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        return {"box": [round(float(v), decimals) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": [[round(float(x), decimals), round(float(y), decimals)] for x, y in self.landmarks]}


def flip_scheme(info: Any, where: Any = None) -> Any:
    """The LandmarkScheme flip test relabels a model's points with: the model's own (ModelInfo.scheme).

    FlipTestError (one line) when it cannot be read, does not match the model's point count, or has no
    flip pairs.
    """
    from kdlandmarks.data.schemes import get_scheme

    what = f"{where}: " if where else ""
    name = getattr(info, "scheme", None)
    try:
        scheme = get_scheme(name)
    except ConfigError as exc:
        raise FlipTestError(f"{what}flip test needs the model's landmark scheme {name!r}, which cannot be read "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if scheme.num_points != int(info.num_points):
        raise FlipTestError(f"{what}flip test: landmark scheme {scheme.name!r} has {scheme.num_points} points, "
                            f"the model predicts {info.num_points}")
    if not scheme.flip_pairs:
        raise FlipTestError(f"{what}flip test needs flip pairs, and landmark scheme {scheme.name!r} has none; "
                            "run without flip test")
    return scheme


def with_mirrors(batch: np.ndarray) -> np.ndarray:
    """(B, 3, S, S) network input -> (2B, 3, S, S): the batch, then each image mirrored left-right (exactly:
    a reversal of the width axis)."""
    return np.concatenate([batch, batch[..., ::-1]])


def merge_flip_views(plain: Any, mirrored: Any, scheme: Any, size: int) -> Any:
    """The flip-test average of (..., N, 2) points in the pixels of a `size`-wide network input: `plain` on
    the input, `mirrored` on its mirror image. The mirrored view is mirrored back (x -> size - 1 - x) and
    permuted with the scheme's flip_index, so that each point returns to its own index, then averaged.
    numpy arrays (float64 out) or torch tensors (dtype and device kept: the training loop's teachers)."""
    if not hasattr(plain, "new_tensor"):
        plain = np.asarray(plain, dtype=np.float64)
    return 0.5 * (plain + scheme.flip(mirrored, size))


def run_flip_test(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, codec: Any, scheme: Any) -> np.ndarray:
    """Flip-test landmarks (B, N, 2) in input pixels for a (B, 3, S, S) float32 batch: `run` (the network,
    (M, 3, S, S) -> (M, 2N)) is called once, on the batch and its mirrors together (2B images)."""
    b = len(batch)
    points = codec.decode(np.asarray(run(with_mirrors(batch)), dtype=np.float64))
    return merge_flip_views(points[:b], points[b:], scheme, codec.input_size)


@dataclass
class FaceCrops:
    """One image's faces cut out for the network (LandmarkDetector.crop_faces): boxes (K, 4), scores (K,),
    each face's crop transform and its input-sized RGB crop. Small: the image itself is not kept."""

    boxes: np.ndarray
    scores: np.ndarray
    transforms: list[CropTransform]
    crops: list[np.ndarray]


class LandmarkDetector:
    """Faces and their landmarks in RGB images, with a trained model and a pluggable face detector.

    model: a shipped model name, a model file (.pt from save_model), a Lightning checkpoint (.ckpt) or
    an exported .onnx; None -> the default shipped student. backend: "torch" or "onnx" (default: from
    the file type). detector: a registry name ("auto" = best installed, see detection.py), a
    FaceDetector, or any callable image -> boxes; only used when detect() gets no boxes.
    calibration: a BoxCalibration or a box source name (see detect) forcing the box-to-crop mapping for
    every box, given or detected (e.g. a custom detector whose boxes are RetinaFace-like).
    num_points: the point count you expect; a model with another count raises ModelError.
    batch_size: faces per network batch. flip_test: average each face's prediction with the un-mirrored
    prediction on its mirrored crop (see the module docstring); both views of a batch's faces go through
    the network together (2 x batch_size images). detect(), detect_batch() and predict_crops() can
    override it per call. It needs a landmark scheme with flip pairs (FlipTestError otherwise).
    detect_max_side (attribute): the detector runs on a copy of a larger image shrunk to this long side
    (None: full size); crops are always cut from the full-size image.
    """

    detect_max_side: int | None = DETECT_MAX_SIDE

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu", backend: str | None = None,
                 detector: str | FaceDetector | Callable[..., Any] = "auto", num_points: int | None = None,
                 batch_size: int = 32, calibration: BoxCalibration | str | None = None,
                 detector_options: dict[str, Any] | None = None, flip_test: bool = False,
                 _loaded: tuple[Any, Any] | None = None) -> None:
        if backend is not None and backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: choose torch or onnx")
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        if _loaded is not None:
            net, self.info = _loaded
            self.model_path: Path | None = None
            self.backend = "torch"
            self._run, self.device = torch_runner(net, device)
        else:
            self._load(DEFAULT_MODEL if model is None else model, backend, device)
        if num_points is not None and int(num_points) != int(self.info.num_points):
            raise ModelError(f"{self.model_path or 'model'}: predicts {self.info.num_points} points, "
                             f"but {num_points} were requested")
        from kdlandmarks.data.codec import LandmarkCodec

        self.codec = LandmarkCodec(self.info.input_size, self.info.space)
        self._detector_spec = detector
        self._detector_options = dict(detector_options or {})
        self._detector: FaceDetector | None = None
        if isinstance(calibration, str):
            check_box_source(calibration, self.info.box_calibrations or {})
        self._calibration = calibration
        self.flip_test = bool(flip_test)
        self._flip_scheme: Any = None
        if self.flip_test:
            _ = self.flip_scheme  # fail now (one line), not at the first face

    @property
    def flip_scheme(self) -> Any:
        """The LandmarkScheme flip test uses (the model's); FlipTestError when it has no flip pairs."""
        if self._flip_scheme is None:
            self._flip_scheme = flip_scheme(self.info, self.model_path or "model")
        return self._flip_scheme

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
        self._run, self.info, self.model_path, self.backend, self.device = load_runner(model, backend, device)

    # ----------------------------------------------------------------------------------------------
    @property
    def num_points(self) -> int:
        return int(self.info.num_points)

    @property
    def input_size(self) -> int:
        return int(self.info.input_size)

    @property
    def face_detector(self) -> FaceDetector:
        """The face detector, created on first use (so that box-only use needs none installed)."""
        if self._detector is None:
            self._detector = create_detector(self._detector_spec, **self._detector_options)
        return self._detector

    @property
    def detector(self) -> FaceDetector:
        """Deprecated alias of face_detector (this object is the landmark detector)."""
        import warnings

        warnings.warn("LandmarkDetector.detector is deprecated; use LandmarkDetector.face_detector",
                      DeprecationWarning, stacklevel=2)
        return self.face_detector

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

    def given_box_source(self) -> str:
        """Whose boxes given boxes are taken to be without a box_source: the detector named with
        `detector=` when it has a calibration (e.g. "haar"), else RetinaFace's (the default detector, and
        for "auto"), so that the same boxes give the same crops whatever detectors are installed."""
        spec = self._detector_spec
        name = spec if isinstance(spec, str) else getattr(spec, "name", None)
        known = box_source_names(self.info.box_calibrations or {})
        return name if isinstance(name, str) and name != "auto" and name in known else DEFAULT_BOX_SOURCE

    def calibration_for(self, source: str | None = None) -> BoxCalibration:
        """The box-to-crop mapping for given boxes of the convention `source` (a box source name, see
        detect; None: the default, RetinaFace's unless `detector=` names another calibrated detector).

        Order: the `calibration` given to the constructor, the model file's own for that name, the
        shipped default (detection.DEFAULT_CALIBRATIONS). An unknown name is a ConfigError listing the
        known ones.
        """
        if source is not None:
            check_box_source(source, self.info.box_calibrations or {})
        return self.detector_calibration(source or self.given_box_source())

    def detector_calibration(self, name: str | None) -> BoxCalibration:
        """The calibration for boxes a detector named `name` drew, without calibration_for's name check: a
        detector with no calibration (a custom one) has its boxes cropped as they are (identity)."""
        if isinstance(self._calibration, BoxCalibration):
            return self._calibration
        try:
            return resolve_calibration(self._calibration or name, self.info)
        except ModelError as exc:
            raise ModelError(f"{self.model_path or 'model'}: {exc}") from None

    # ----------------------------------------------------------------------------------------------
    def detect(self, image: np.ndarray, boxes: Any = None, box_source: str | None = None,
               flip_test: bool | None = None) -> list[Face]:
        """Faces in one RGB uint8 (H, W, 3) image. With `boxes` ((K, 4) x0, y0, x1, y1, or (K, 5) with
        scores) no detector runs and each face's score is 1.0 (or the given one). `flip_test`: True or
        False overrides the detector's setting for this call.

        `box_source` names the convention of the given boxes, i.e. which detector drew them: "retinaface",
        "haar", "dlib", "mediapipe", "mediapipe-full", "landmarks" (a tight box around the 68 landmarks),
        or a name the model file calibrates. Default (None): RetinaFace boxes, or those of the detector
        named with `detector=` when it has a calibration. An unknown name raises ConfigError. Faces the
        detector finds are always cropped with that detector's own calibration."""
        return self.detect_batch([image], None if boxes is None else [boxes], box_source, flip_test)[0]

    def detect_batch(self, images: Sequence[np.ndarray], boxes: Sequence[Any] | None = None,
                     box_source: str | None = None, flip_test: bool | None = None) -> list[list[Face]]:
        """detect() over many images; the network runs in batches over all faces of all images.

        `boxes` holds one entry per image: its boxes, or None to run the detector on that image.
        `box_source`: the convention of all the given boxes (see detect; default RetinaFace's).
        `flip_test`: True or False overrides the detector's setting for this call.
        """
        if isinstance(images, np.ndarray) and images.ndim == 3:
            raise DataError("detect_batch expects a list of images; use detect() for a single image")
        images = [check_image(im, f"image {i}") for i, im in enumerate(images)]
        if boxes is None:
            boxes = [None] * len(images)
        if len(boxes) != len(images):
            raise DataError(f"boxes: got {len(boxes)} box lists for {len(images)} images")
        given_calibration = self.calibration_for(box_source)  # checks the name before any work
        items = [self._crop_faces(image, given, given_calibration, f"image {i}")
                 for i, (image, given) in enumerate(zip(images, boxes))]
        return self.faces_from_crops(items, flip_test)

    def detect_video(self, path: str | Path, boxes: Any = None, box_source: str | None = None,
                     smooth: bool = True, batch_size: int | None = None) -> Iterator[Any]:
        """Yield a video.VideoFrame (index, time, RGB image, faces, track ids) for every frame of the video
        file `path`, read and run in batches of `batch_size` frames (default: the detector's batch size).

        With `smooth` (default) faces are tracked across frames (IoU) and each track's landmarks and box are
        One-Euro-filtered (video.LandmarkSmoother); without it faces are per frame and their track ids None.
        `boxes` / `box_source`: the same given boxes for every frame (see detect). A video that cannot be
        opened, or has no readable frame, raises DataError when iteration reaches it.

            for frame in detector.detect_video("clip.mp4"):
                for track, face in zip(frame.tracks, frame.faces): ...
        """
        from kdlandmarks.inference.video import VideoStream, track_frames

        if box_source is not None:
            self.calibration_for(box_source)  # an unknown name: an error before the video is read
        with VideoStream(path) as stream:
            yield from track_frames(self, stream, boxes, box_source, smooth, batch_size)

    def crop_faces(self, image: np.ndarray, boxes: Any = None, box_source: str | None = None,
                   name: str = "image") -> "FaceCrops":
        """The first half of detect(): find (or take) one image's faces and cut the network's crops.

        What it returns is small (input-sized crops), so the image can be freed at once; hand the crops of
        many images to faces_from_crops(), which runs the network over them in batches. `name` (e.g. the
        file) starts the messages of a bad image or bad boxes. `box_source`: the convention of the given
        boxes (see detect; default RetinaFace's).
        """
        image = check_image(image, name)
        calibration = self.calibration_for(box_source)
        return self._crop_faces(image, boxes, calibration, name)

    def faces_from_crops(self, items: Sequence["FaceCrops"], flip_test: bool | None = None) -> list[list[Face]]:
        """The second half of detect_batch(): landmarks for the crops of each item (one per image)."""
        points = self._predict([c for item in items for c in item.crops], flip_test)
        out: list[list[Face]] = []
        k = 0
        for item in items:
            faces = []
            for box, score, t in zip(item.boxes, item.scores, item.transforms):
                faces.append(Face(box.copy(), float(score), t.to_image(points[k])))
                k += 1
            out.append(faces)
        return out

    def _crop_faces(self, image: np.ndarray, given: Any, given_calibration: BoxCalibration,
                    name: str) -> "FaceCrops":
        if given is None:
            dets = self._detect_faces(image)
            bxs = np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4)
            scores = np.array([d.score for d in dets], dtype=np.float64)
            calibration = self.detector_calibration(self.face_detector.name)
        else:
            bxs, scores = check_boxes(given, f"boxes of {name}")
            calibration = given_calibration
        transforms = [box_crop(box, self.input_size, calibration) for box in bxs]
        return FaceCrops(bxs, scores, transforms, [t.warp(image) for t in transforms])

    def _detect_faces(self, image: np.ndarray) -> list[Detection]:
        """The detector's faces, found on a copy shrunk to detect_max_side pixels (long side) when the
        image is larger, and mapped back to the image's pixels (pixel-centre convention)."""
        h, w = image.shape[:2]
        limit = self.detect_max_side
        if not limit or max(h, w) <= limit:
            return self.face_detector.detect(image)
        small, _ = shrink(image, limit)
        scale = np.array([small.shape[1] / w, small.shape[0] / h])
        out = []
        for d in self.face_detector.detect(small):
            box = (np.asarray(d.box, dtype=np.float64).reshape(2, 2) + 0.5) / scale - 0.5
            kps = None if d.keypoints is None else (np.asarray(d.keypoints, dtype=np.float64) + 0.5) / scale - 0.5
            out.append(Detection(box.reshape(4), d.score, kps))
        return out

    def predict_crops(self, crops: Sequence[np.ndarray] | np.ndarray, flip_test: bool | None = None) -> np.ndarray:
        """Landmarks (B, N, 2) in each crop's own pixels for face crops framed as in training (the
        landmark extent plus the model's margin, square). Crops are RGB uint8 (H, W, 3), any size:
        each is resized (anisotropically, as the paper does; runtime.to_batch) to the network input, which
        flip test (`flip_test` overrides the detector's setting) mirrors."""
        if isinstance(crops, np.ndarray) and crops.ndim == 3:
            crops = [crops]
        crops = [check_image(c, f"crop {i}") for i, c in enumerate(crops)]
        s = self.input_size
        points = self._predict(crops, flip_test)
        # Back from network pixels to each crop's pixels (pixel-centre convention, per axis).
        for i, c in enumerate(crops):
            h, w = c.shape[:2]
            points[i] = (points[i] + 0.5) * np.array([w / s, h / s]) - 0.5
        return points

    def _predict(self, crops: Sequence[np.ndarray], flip_test: bool | None = None) -> np.ndarray:
        """RGB uint8 crops -> landmarks (B, N, 2) in input pixels, in chunks of batch_size faces (with flip
        test each chunk and its mirrors go through the network as one batch). Crops of another size than
        the input are resized to it (runtime.to_batch)."""
        scheme = self.flip_scheme if (self.flip_test if flip_test is None else flip_test) else None
        n = len(crops)
        if n == 0:
            return np.zeros((0, self.num_points, 2))
        outs = []
        for start in range(0, n, self.batch_size):
            batch = to_batch(crops[start:start + self.batch_size], self.input_size)
            if scheme is None:
                outs.append(self.codec.decode(self._network(batch)))
            else:
                outs.append(run_flip_test(self._network, batch, self.codec, scheme))
        return np.concatenate(outs)

    def _network(self, batch: np.ndarray) -> np.ndarray:
        """(B, 3, S, S) float32 in [0, 1] -> the network's (B, 2N) float64 output; ModelError on failure."""
        try:
            y = np.asarray(self._run(batch))
        except KDLandmarksError:
            raise
        except RuntimeError as exc:  # e.g. CUDA out of memory: name what ran
            raise ModelError(f"{self.model_path or 'model'}: inference failed on a batch of {len(batch)} "
                             f"({str(exc).splitlines()[0][:200]}); try a smaller batch size") from None
        if y.shape != (len(batch), 2 * self.num_points):
            raise ModelError(f"{self.model_path or 'model'}: network output shape {y.shape}, "
                             f"expected ({len(batch)}, {2 * self.num_points})")
        return y.astype(np.float64)


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
