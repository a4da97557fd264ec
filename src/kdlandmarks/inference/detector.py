"""Landmarks for faces in images with a trained model: find faces (or take boxes), crop them the way the
model was trained, run the network (onnxruntime or torch, see runtime.py) in batches, and map the points
back. The shipped models run on onnxruntime, so this path never imports torch (the default install has
none); a .pt/.ckpt model file or backend "torch" needs the `train` extra.

    from kdlandmarks import LandmarkDetector
    detector = LandmarkDetector()                                    # the default shipped student (its int8 export)
    faces = detector.detect(image_rgb)                               # [Face(box, score, landmarks (N, 2))]
    faces = detector.detect(image_rgb, boxes=[[x0, y0, x1, y1]])     # your own (RetinaFace-style) face boxes
    faces = detector.detect(image_rgb, boxes=boxes, box_source="dlib")  # boxes of another convention
    detector = LandmarkDetector("kd-student-300w-lite:fp32")          # a shipped student's fp32 export
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

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from kdlandmarks.data.crop import BoxCalibration, CropTransform, box_crop, gt_crop, roll_angle
from kdlandmarks.data.flip import flip_scheme, run_flip_test
from kdlandmarks.data.schemes import get_scheme
from kdlandmarks.inference.detection import Detection, FaceDetector, check_boxes, create_detector, resolve_detector_name
from kdlandmarks.inference.detection.rotations import (DEFAULT_UPRIGHT_PATCH, RotationSearch, UprightPatch, bunched,
                                                      needs_upright_patch, upright_detection)
from kdlandmarks.inference.calibration import box_source_names, check_box_source, resolve_calibration
from kdlandmarks.data.images import check_image, shrink, too_small
from kdlandmarks.errors import ConfigError, DataError, KDLandmarksError, ModelError
from kdlandmarks.inference.video import DEFAULT_SMOOTHING, SmoothingOptions
from kdlandmarks.inference.runtime import (BACKENDS, InputBuffers, check_network_output, fill_input,  # noqa: F401
                                           load_runner, to_batch, torch_device, torch_runner)  # to_batch, torch_device: API
from kdlandmarks.models.zoo import DEFAULT_MODEL

DEFAULT_BOX_SOURCE = "retinaface"  # given boxes are taken to be RetinaFace-like face boxes
DETECT_MAX_SIDE = 2048  # detectors see a copy of a larger image shrunk to this long side (pixels)
# Faces whose detector keypoints say they are rolled by more than this are cropped turned upright. Below it
# the crop stays upright: the students trained with rotations of +-25 degrees, and the keypoints' roll is
# itself off by about 8 degrees (RetinaFace on rolled 300-W validation faces, benchmarks/roll_robustness.py).
ROLL_THRESHOLD = math.radians(15)
# A rolled face's crop is refined again while its predicted eye corners still disagree with the crop's roll
# by more than this (at most roll_passes passes): a rough first roll (keypoints off by 45 degrees) settles.
ROLL_SETTLED = math.radians(10)
# The landmarks at a five-keypoint detector's nose tip and mouth corners (its eyes are the scheme's pupils),
# for the schemes that name them; other schemes compare the eyes only.
KEYPOINT_LANDMARKS = {"300w": (30, 48, 54), "wflw": (54, 76, 82)}


@dataclass
class Face:
    """One face: box (x0, y0, x1, y1), detector score (1.0 for given boxes), landmarks (N, 2) in image pixels."""

    box: np.ndarray
    score: float
    landmarks: np.ndarray

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        return {"box": [round(float(v), decimals) for v in self.box], "score": round(float(self.score), 4),
                "landmarks": [[round(float(x), decimals), round(float(y), decimals)] for x, y in self.landmarks]}


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
    #: detector faces rolled past this (radians) are cropped turned upright, in two passes (None: never turn)
    roll_threshold: float | None = ROLL_THRESHOLD
    #: when a detected face's keypoints are re-read on a patch turned upright, and how (None: never)
    upright_patch: UprightPatch | None = DEFAULT_UPRIGHT_PATCH
    #: at most this many network passes refine a rolled face's crop before the final one
    roll_passes: int = 3
    #: when the detector finds no face, also search the image turned by quarter turns (faces lying sideways)
    search_rotations: bool = False

    def __init__(self, model: str | Path | None = None, *, device: str = "cpu", backend: str | None = None,
                 detector: str | FaceDetector | Callable[..., Any] = "auto", num_points: int | None = None,
                 batch_size: int = 32, calibration: BoxCalibration | str | None = None,
                 detector_options: dict[str, Any] | None = None, flip_test: bool = False) -> None:
        self._configure(lambda: load_runner(DEFAULT_MODEL if model is None else model, backend, device),
                        backend=backend, detector=detector, num_points=num_points, batch_size=batch_size,
                        calibration=calibration, detector_options=detector_options, flip_test=flip_test)

    def _configure(self, load: Callable[[], tuple[Any, Any, Path | None, str, str]], *, backend: str | None = None,
                   detector: str | FaceDetector | Callable[..., Any] = "auto", num_points: int | None = None,
                   batch_size: int = 32, calibration: BoxCalibration | str | None = None,
                   detector_options: dict[str, Any] | None = None, flip_test: bool = False) -> None:
        """Check the options, then take the network from `load()` -> (run, info, model_path, backend, device)
        and set the detector up around it. __init__ loads a model file here; from_model hands in a network
        already in memory, so the public constructor needs no private parameter for it."""
        if backend is not None and backend not in BACKENDS:
            raise ConfigError(f"unknown backend {backend!r}: choose torch or onnx")
        if int(batch_size) < 1:
            raise ConfigError(f"batch size must be at least 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self.model_path: Path | None
        self._run, self.info, self.model_path, self.backend, self.device = load()
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
        self._buffers = InputBuffers()  # per thread: one detector may serve many threads
        if self.flip_test:
            _ = self.flip_scheme  # fail now (one line), not at the first face

    @property
    def autocast(self) -> str | None:
        """"bf16" when the network runs under bf16 autocast (a teacher on the torch backend, where it pays),
        None when it runs at its stored precision."""
        return getattr(self._run, "autocast", None)

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
        """Wrap an in-memory LandmarkRegressor and its ModelInfo (e.g. right after training); the other
        keywords are the constructor's."""

        def loaded() -> tuple[Any, Any, None, str, str]:
            run, used_device = torch_runner(model, device)
            return run, info, None, "torch", used_device

        detector = cls.__new__(cls)
        detector._configure(loaded, **kwargs)
        return detector

    def set_network(self, run: Callable[[np.ndarray], np.ndarray]) -> None:
        """Run the network through `run` ((B, 3, S, S) float32 -> (B, 2N)) from now on: e.g. the same .onnx
        on an OnnxRegressor with its own thread count (benchmarks/box_perturbation.py)."""
        self._run = run

    # ----------------------------------------------------------------------------------------------
    @property
    def num_points(self) -> int:
        return int(self.info.num_points)

    @property
    def input_size(self) -> int:
        return int(self.info.input_size)

    @property
    def quantization(self) -> dict[str, Any] | None:
        """How an int8 ONNX model was quantised (its metadata); None for a float model."""
        return getattr(self._run, "quantization", None)

    @property
    def face_detector(self) -> FaceDetector:
        """The face detector, created on first use (so that box-only use needs none installed)."""
        if self._detector is None:
            detector = create_detector(self._detector_spec, **self._detector_options)
            self._detector = RotationSearch(detector) if self.search_rotations else detector
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
        items = [self._face_windows(image, given, given_calibration, f"image {i}")
                 for i, (image, given) in enumerate(zip(images, boxes))]
        sources = [(image, t) for image, item in zip(images, items) for t in item.transforms]
        return self._faces(items, self._predict(sources, _warp_into, flip_test))

    def detect_video(self, path: str | Path, boxes: Any = None, box_source: str | None = None,
                     smoothing: SmoothingOptions | None = DEFAULT_SMOOTHING, tracking: Any = None,
                     max_pixels: int | None = None) -> Iterator[Any]:
        """Yield a video.VideoFrame (index, time, RGB image, faces, track ids) for every frame of the video
        file `path`, decoded one frame at a time and tracked by a tracking.LandmarkTracker: each face is
        cropped from its landmarks on the previous frame, and the face detector runs only to find new
        faces and re-acquire lost ones (`tracking`: a TrackingOptions, default DEFAULT_TRACKING).

        `smoothing`: the One-Euro settings of each track's landmarks and box (video.SmoothingOptions), or
        None for the raw landmarks. `boxes` / `box_source`: the same given boxes for every frame (see
        detect). `max_pixels`: refuse videos with larger frames. A video that cannot be opened, is
        refused, or has no readable frame raises DataError when iteration reaches it. For frames of a
        camera, use a LandmarkTracker directly.

            for frame in detector.detect_video("clip.mp4"):
                for track, face in zip(frame.tracks, frame.faces): ...
        """
        from kdlandmarks.inference.tracking import DEFAULT_TRACKING, LandmarkTracker, track_frames
        from kdlandmarks.inference.video import VideoStream

        if box_source is not None:
            self.calibration_for(box_source)  # an unknown name: an error before the video is read
        with VideoStream(path, max_pixels) as stream:
            tracker = LandmarkTracker(self, smoothing=smoothing, tracking=tracking or DEFAULT_TRACKING,
                                      boxes=boxes, box_source=box_source, fps=stream.fps)
            yield from track_frames(stream, tracker)

    def crop_faces(self, image: np.ndarray, boxes: Any = None, box_source: str | None = None,
                   name: str = "image", detect_max_side: int | None = None) -> "FaceCrops":
        """The first half of detect(): find (or take) one image's faces and cut the network's crops.

        What it returns is small (input-sized crops), so the image can be freed at once; hand the crops of
        many images to faces_from_crops(), which runs the network over them in batches. `name` (e.g. the
        file) starts the messages of a bad image or bad boxes. `box_source`: the convention of the given
        boxes (see detect; default RetinaFace's). `detect_max_side`: for this call, the detector looks at a
        copy shrunk to this long side when smaller than the usual detect_max_side (e.g. a tracker's quick
        scan for new faces); crops are still cut from the full image.
        """
        image = check_image(image, name)
        calibration = self.calibration_for(box_source)
        return self._crop_faces(image, boxes, calibration, name, detect_max_side)

    def crop_windows(self, image: np.ndarray, transforms: Sequence[CropTransform], scores: Any = None,
                     name: str = "image") -> "FaceCrops":
        """crop_faces() for crop windows the caller placed, e.g. a tracker's around a face's last landmarks,
        turned with its roll: each CropTransform (the model's input size) cut from the image as it is, with
        no face detector, calibration or refinement. The boxes are the windows' squares (before their turn);
        scores: one per window (default 1.0)."""
        image = check_image(image, name)
        transforms = list(transforms)
        if any(t.size != self.input_size for t in transforms):
            raise ConfigError(f"{name}: crop windows must be {self.input_size} pixels, the model's input size")
        boxes = np.array([(cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)
                          for cx, cy, side in (t.square for t in transforms)], dtype=np.float64).reshape(-1, 4)
        scores = np.ones(len(transforms)) if scores is None else np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(scores) != len(transforms):
            raise DataError(f"{name}: {len(scores)} scores for {len(transforms)} crop windows")
        return FaceCrops(boxes, scores, transforms, [t.warp(image) for t in transforms])

    def faces_from_crops(self, items: Sequence["FaceCrops"], flip_test: bool | None = None) -> list[list[Face]]:
        """The second half of detect_batch(): landmarks for the crops of each item (one per image)."""
        crops = [c for item in items for c in item.crops]
        return self._faces(items, self._predict(crops, fill_input, flip_test))

    def _faces(self, items: Sequence["FaceCrops"], points: np.ndarray) -> list[list[Face]]:
        """Each item's faces, given the landmarks (input pixels) of all their crops in order."""
        out: list[list[Face]] = []
        k = 0
        for item in items:
            out.append([Face(box.copy(), float(score), t.to_image(points[k + j]))
                        for j, (box, score, t) in enumerate(zip(item.boxes, item.scores, item.transforms))])
            k += len(item.transforms)
        return out

    def _crop_faces(self, image: np.ndarray, given: Any, given_calibration: BoxCalibration,
                    name: str, detect_max_side: int | None = None) -> "FaceCrops":
        item = self._face_windows(image, given, given_calibration, name, detect_max_side)
        item.crops = [t.warp(image) for t in item.transforms]
        return item

    def _face_windows(self, image: np.ndarray, given: Any, given_calibration: BoxCalibration,
                      name: str, detect_max_side: int | None = None) -> "FaceCrops":
        """One image's faces and their crop transforms, without the crops (the image is still at hand)."""
        if given is None:
            dets = self._detect_faces(image, name, detect_max_side)
            scores = np.array([d.score for d in dets], dtype=np.float64)
            calibration = self.detector_calibration(self.face_detector.name)
            dets = [self._upright_redetected(image, d) for d in dets]
            bxs = np.array([d.box for d in dets], dtype=np.float64).reshape(-1, 4)
            angles = [self._keypoint_roll(d) for d in dets]
        else:
            bxs, scores = check_boxes(given, f"boxes of {name}", (image.shape[1], image.shape[0]))
            calibration = given_calibration
            angles = [0.0] * len(bxs)
        transforms = [box_crop(box, self.input_size, calibration, a) for box, a in zip(bxs, angles)]
        rolled = [i for i, a in enumerate(angles) if a != 0.0]
        if rolled:
            transforms = self._turned_upright(image, transforms, rolled)
        return FaceCrops(bxs, scores, transforms, [])

    def _upright_redetected(self, image: np.ndarray, detection: Detection) -> Detection:
        """A face whose keypoints say it is rolled far, or rolled with a low score, or whose keypoints are
        bunched (detection.rotations.needs_upright_patch) found again on a small patch around it turned
        upright (upright_detection), where the landmark network agrees with the detector's keypoints: the
        detector's keypoints are poor on rolled faces (off by more than 30 degrees on 22 % of 300-W faces at
        90 degrees) and good on upright ones. `detection` itself when it needs no check, when the face is
        not found upright, or when an unrolled face is confirmed unrolled."""
        if self.roll_threshold is None or self.upright_patch is None:
            return detection
        if not needs_upright_patch(detection, self.roll_threshold, self.upright_patch):
            return detection
        detector = self.face_detector
        if isinstance(detector, RotationSearch):
            detector = detector.detector  # the patch search turns the patch itself
        calibration = self.detector_calibration(detector.name)
        roll = self._eye_roll(detection)
        found = upright_detection(detector, image, detection, roll, self.upright_patch,
                                  lambda d: self._network_agrees(image, d, calibration))
        if found is None or (abs(roll) <= self.roll_threshold and abs(self._eye_roll(found)) <= self.roll_threshold
                             and not bunched(detection, self.upright_patch.spread)):
            return detection
        return found

    def _network_agrees(self, image: np.ndarray, detection: Detection, calibration: BoxCalibration) -> bool:
        """Whether the landmark network, on the crop this detection gives (turned by its keypoints' roll),
        puts the eyes, nose tip and mouth corners where the detector's five keypoints are: within
        upright_patch.agree eye distances on average. On 300-W training faces rolled by 60 and 90 degrees,
        upright readings of patches the right way up agree within 0.2 but for 1 in 1240, upside-down or
        sideways ones misread as upright disagree by more but for 1 in 96."""
        kps = np.asarray(detection.keypoints, dtype=np.float64)
        crop = box_crop(detection.box, self.input_size, calibration, self._eye_roll(detection))
        landmarks = crop.to_image(self._predict([(image, crop)], _warp_into, flip_test=False)[0])
        scheme = get_scheme(self.info.scheme)
        points = [landmarks[list(group)].mean(axis=0) for group in scheme.pupils]
        points += [landmarks[i] for i in KEYPOINT_LANDMARKS.get(scheme.name, ())]
        n = min(len(points), len(kps))  # a detector with fewer keypoints: those it has
        gap = np.linalg.norm(np.asarray(points[:n]) - kps[:n], axis=1).mean()
        return bool(gap <= self.upright_patch.agree * np.linalg.norm(kps[1] - kps[0]))

    def _eye_roll(self, detection: Detection) -> float | None:
        """The roll of a detection's eye keypoints; None without them, or when faces are never turned."""
        if self.roll_threshold is None or detection.keypoints is None or len(detection.keypoints) < 2:
            return None
        return float(roll_angle(detection.keypoints[0], detection.keypoints[1]))

    def _keypoint_roll(self, detection: Detection) -> float:
        """The roll to turn a detected face by: its eye keypoints' roll past roll_threshold, else 0."""
        roll = self._eye_roll(detection)
        return roll if roll is not None and abs(roll) > self.roll_threshold else 0.0

    def _turned_upright(self, image: np.ndarray, transforms: list[CropTransform],
                        rolled: list[int]) -> list[CropTransform]:
        """Rolled faces' crops, refined: the keypoints' roll is rough, so the network runs once on the crop
        turned by it, and the final crop is the landmark crop (the model's margin) of that prediction,
        turned by the roll of its own eye corners."""
        left, right = get_scheme(self.info.scheme).inter_ocular
        out = list(transforms)
        for _ in range(self.roll_passes):
            points = self._predict([(image, out[i]) for i in rolled], _warp_into, flip_test=False)
            unsettled = []
            for i, crop_points in zip(rolled, points):
                landmarks = out[i].to_image(crop_points)
                roll = float(roll_angle(landmarks[left], landmarks[right]))
                if abs(math.remainder(roll - out[i].angle, math.tau)) > ROLL_SETTLED:
                    unsettled.append(i)
                out[i] = gt_crop(landmarks, self.input_size, self.info.crop_margin, roll)
            rolled = unsettled
            if not rolled:
                break
        return out

    def _detect_faces(self, image: np.ndarray, name: str = "image", max_side: int | None = None) -> list[Detection]:
        """The detector's faces, found on a copy shrunk to detect_max_side pixels (long side; `max_side`
        when that is smaller) when the image is larger, and mapped back to the image's pixels (pixel-centre
        convention)."""
        h, w = image.shape[:2]
        limit = min((v for v in (self.detect_max_side, max_side) if v), default=None)
        if not limit or max(h, w) <= limit:
            return self.face_detector.detect(image)
        small, _ = shrink(image, limit)
        if too_small(small.shape[1], small.shape[0]):
            raise DataError(f"{name}: image is {w}x{h} pixels, too elongated to find faces in (the face "
                            f"detector's copy, {limit} pixels long, would be {small.shape[1]}x{small.shape[0]}); "
                            "give face boxes instead")
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
        points = self._predict(crops, fill_input, flip_test)
        # Back from network pixels to each crop's pixels (pixel-centre convention, per axis).
        for i, c in enumerate(crops):
            h, w = c.shape[:2]
            points[i] = (points[i] + 0.5) * np.array([w / s, h / s]) - 0.5
        return points

    def _predict(self, sources: Sequence[Any], fill: Callable[[np.ndarray, Any], None],
                 flip_test: bool | None = None) -> np.ndarray:
        """Landmarks (B, N, 2) in input pixels for B faces: `fill(slot, source)` writes each source's
        network input into its (3, S, S) slot of a batch (runtime.fill_input for crops, _warp_into for an
        (image, CropTransform) pair). The batch is this thread's reused buffer; chunks of batch_size faces
        go through the network in one call each (with flip test, each chunk and its mirrors together)."""
        scheme = self.flip_scheme if (self.flip_test if flip_test is None else flip_test) else None
        n = len(sources)
        if n == 0:
            return np.zeros((0, self.num_points, 2))
        outs = []
        batch = self._buffers.take(min(n, self.batch_size), self.input_size)
        try:
            for start in range(0, n, self.batch_size):
                chunk = batch[:min(self.batch_size, n - start)]
                for slot, source in zip(chunk, sources[start:start + len(chunk)]):
                    fill(slot, source)
                if scheme is None:
                    outs.append(self.codec.decode(self._network(chunk)))
                else:
                    outs.append(run_flip_test(self._network, chunk, self.codec, scheme))
        finally:
            self._buffers.give_back(batch)
        return outs[0] if len(outs) == 1 else np.concatenate(outs)

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
        check_network_output(y, self.model_path or "model")
        return y.astype(np.float64)


def _warp_into(slot: np.ndarray, source: tuple[np.ndarray, CropTransform]) -> None:
    """Cut one face's crop out of its image and write it into its (3, S, S) slot of the network input."""
    image, transform = source
    fill_input(slot, transform.warp(image))


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
