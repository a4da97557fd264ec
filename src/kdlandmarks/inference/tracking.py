"""Landmark tracking on video and webcams, as the field does it: the previous frame's landmarks give the
next frame's crop, and the face detector runs only to find new faces and to re-acquire lost ones.

    tracker = LandmarkTracker(LandmarkDetector())       # one per stream; the detector may be shared
    cap = cv2.VideoCapture(0)
    while (frame := cap.read()[1]) is not None:
        for face in tracker.update(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)):
            face.track, face.landmarks

Per frame, each live track is cropped from the square around its last landmarks (the crop the model
was trained on: the landmark extent plus the model's margin), moved on by the face's last motion; all
of a frame's faces go through the network in one call. Those landmarks are lightly filtered first
(TrackingOptions.crop_smoothing): a crop that followed every frame's noise would feed it back as more
noise. The face detector runs when there is no track, when a track's quality is low (its new landmark
square agrees poorly with the square it was cropped from: the face was lost or moved faster than the
crop), when the last detection missed a track, and at least every `TrackingOptions.detect_every` frames
to find new faces. That periodic scan, when every track is healthy, looks at a smaller copy of the frame
(TrackingOptions.scan_max_side): it only has to notice a new face, and a face it misses at that size is
found at full size on the next frame (a track it fails to confirm asks for a detection). A track that no
detection confirms twice in a row ends, and so does one whose face leaves the frame.

A tilted head keeps its crop turned upright: a track's crop turns by the roll of its filtered eye corners
(the scheme's inter-ocular pair) once that roll passes the detector's roll_threshold (the faces detect()
turns), and goes back upright only when it falls ROLL_HYSTERESIS below it; a face found by the detector
starts with the turn detect() gave its crop. An upright face's crops are exactly those of an untilted
tracker. The overlap checks (quality, matching, duplicates) compare squares as if axis-aligned, each
measured at its own track's roll: they only ask whether two windows hold the same face.

The landmarks and box returned are smoothed per track by a video.FaceFilter (`smoothing`, default
video.DEFAULT_SMOOTHING: a One-Euro filter driven by the whole face's speed, in face-size units), or
returned raw with smoothing=None; the output smoothing never changes the crops.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any, Iterator

import numpy as np

from kdlandmarks.data.crop import (DEFAULT_MARGIN, BoxCalibration, CropTransform, box_crop, roll_angle,
                                   square_from_landmarks)
from kdlandmarks.data.images import check_image
from kdlandmarks.data.schemes import get_scheme
from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.inference.video import DEFAULT_FPS, DEFAULT_SMOOTHING, FaceFilter, SmoothingOptions, VideoFrame

TRACK_BOX_SOURCE = "landmarks"  # the calibration through which a track's square becomes its crop
EDGE_REACH = 0.25  # a track ends when its landmarks' centre is further outside the frame (fraction of face side)
# A turned track's crop goes back upright only when its roll falls this far below the detector's roll_threshold:
# a roll hovering at the threshold (filtered, it wanders by well under a degree) would otherwise switch the crop
# between upright and turned from frame to frame, and each switch moves the points a little.
ROLL_HYSTERESIS = math.radians(5)


@dataclass(frozen=True)
class TrackingOptions:
    """When LandmarkTracker runs the face detector, and when a track ends.

    detect_every: at most this many frames pass without a face detection (new faces appear within it;
    1 = detect on every frame). min_agreement: IoU of a track's new landmark square with the square its
    crop came from, below which the face detector runs on the next frame. match_iou: the overlap at
    which a detection is the same face as a track. crop_smoothing: the One-Euro settings of the landmarks
    a track's next crop is cut around (whatever the output's smoothing): unfiltered, a still face's crop
    would follow the landmarks' own noise and feed it back as more noise. scan_max_side: the long side
    (pixels) of the frame copy that the periodic scan for new faces looks at while every track is healthy
    (None: the detector's usual copy); detections for a lost, doubtful or first face use the usual copy.
    """

    detect_every: int = 60
    min_agreement: float = 0.5
    match_iou: float = 0.3
    crop_smoothing: SmoothingOptions = SmoothingOptions(min_cutoff=1.0, beta=30.0, d_cutoff=4.0)
    scan_max_side: int | None = 480

    def __post_init__(self) -> None:
        if int(self.detect_every) < 1:
            raise ConfigError(f"tracking: detect_every must be at least 1 frame, got {self.detect_every}")
        if self.scan_max_side is not None and int(self.scan_max_side) < 32:
            raise ConfigError(f"tracking: scan_max_side must be at least 32 pixels (or None), got {self.scan_max_side}")
        for name in ("min_agreement", "match_iou"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:  # also refuses NaN
                raise ConfigError(f"tracking: {name} must be in [0, 1], got {value}")


DEFAULT_TRACKING = TrackingOptions()


@dataclass
class TrackedFace:
    """One face of a frame from LandmarkTracker.update: its track id, and the face (box, score, landmarks
    (N, 2) in image pixels, smoothed when smoothing is on). `box` is a RetinaFace-convention box around
    the landmarks; `score` is the detector's score when the track was last detected (1.0 for given boxes)."""

    track: int
    face: Any

    @property
    def box(self) -> np.ndarray:
        return self.face.box

    @property
    def score(self) -> float:
        return self.face.score

    @property
    def landmarks(self) -> np.ndarray:
        return self.face.landmarks

    def to_dict(self, decimals: int = 2) -> dict[str, Any]:
        return {"track": self.track, **self.face.to_dict(decimals)}


Square = tuple[float, float, float]  # centre x, centre y, side (image pixels)


@dataclass
class _Track:
    id: int
    square: Square  # around the last unfiltered landmarks, measured at `roll`
    score: float
    roll: float = 0.0  # the roll the next crop turns by (0: upright); `square` and `crop` are measured at it
    crop: Square | None = None  # where the next frame's crop comes from (None: the square)
    crop_filter: FaceFilter | None = None  # smooths the landmarks the crops are cut around
    smoothed: Square | None = None  # the square around those at the last frame
    unconfirmed: bool = False  # the last detection did not find it
    needs_detection: bool = False  # its quality was low: detect on the next frame
    filter: FaceFilter | None = None


def square_iou(a: Square, b: Square) -> float:
    """Intersection over union of two axis-aligned squares (centre x, centre y, side)."""
    ax, ay, aside = a
    bx, by, bside = b
    w = min(ax + aside / 2, bx + bside / 2) - max(ax - aside / 2, bx - bside / 2)
    h = min(ay + aside / 2, by + bside / 2) - max(ay - aside / 2, by - bside / 2)
    inter = max(w, 0.0) * max(h, 0.0)
    union = aside * aside + bside * bside - inter
    return inter / union if union > 0 else 0.0


def box_for_square(square: Square, calibration: BoxCalibration, angle: float = 0.0) -> np.ndarray:
    """The box that `calibration` maps onto `square` for a face rolled by `angle`: the inverse of
    BoxCalibration.square (whose shift turns with the face)."""
    cx, cy, side = square
    box_side = side / calibration.scale
    c, s = math.cos(angle), math.sin(angle)
    bx = cx - (c * calibration.dx - s * calibration.dy) * box_side
    by = cy - (s * calibration.dx + c * calibration.dy) * box_side
    return np.array([bx - box_side / 2, by - box_side / 2, bx + box_side / 2, by + box_side / 2])


def crop_square(transform: Any) -> Square:
    """The image square a CropTransform samples (centre and side, image pixels): CropTransform.square."""
    return transform.square


def _greedy_matches(tracks: list[Square], detections: list[Square], min_iou: float) -> dict[int, int]:
    """Detection index -> track index, best overlaps first, each used once."""
    pairs = sorted(((square_iou(t, d), j, i) for j, t in enumerate(tracks) for i, d in enumerate(detections)),
                   reverse=True)
    matched: dict[int, int] = {}
    used: set[int] = set()
    for iou, j, i in pairs:
        if iou >= min_iou and i not in matched and j not in used:
            matched[i] = j
            used.add(j)
    return matched


class LandmarkTracker:
    """Tracks faces and their landmarks over the frames of one stream, one frame at a time (see the module
    docstring). `detector`: a LandmarkDetector, which many trackers and threads may share; each tracker
    holds its own state, so use one per stream (and per thread).

    smoothing: a video.SmoothingOptions, or None for the raw landmarks. tracking: a TrackingOptions.
    boxes / box_source: the same given face boxes for every frame instead of the face detector (see
    LandmarkDetector.detect); their track ids are their order. fps: the frame rate used when update() is
    given no timestamp.
    """

    def __init__(self, detector: Any, *, smoothing: SmoothingOptions | None = DEFAULT_SMOOTHING,
                 tracking: TrackingOptions = DEFAULT_TRACKING, boxes: Any = None, box_source: str | None = None,
                 fps: float = DEFAULT_FPS) -> None:
        if not (fps > 0 and math.isfinite(fps)):
            raise ConfigError(f"frame rate must be a positive number, got {fps}")
        self.detector = detector
        self.smoothing = smoothing
        self.tracking = tracking
        self.boxes = boxes
        self.box_source = box_source
        self.fps = float(fps)
        self._track_calibration = detector.calibration_for(TRACK_BOX_SOURCE)
        self._box_calibration = detector.calibration_for(box_source)  # checks the name now
        self._margin = float(getattr(detector.info, "crop_margin", DEFAULT_MARGIN))
        self._roll_threshold = detector.roll_threshold  # None: crops never turn, as in detect()
        self._eyes = None if self._roll_threshold is None else get_scheme(detector.info.scheme).inter_ocular
        self.reset()

    def reset(self) -> None:
        """Forget all tracks and the frame size (e.g. to start another stream)."""
        self._tracks: list[_Track] = []
        self._next_id = 0
        self._since_detection = 0
        self._frame_shape: tuple[int, ...] | None = None
        self.frames = 0  # frames seen since the last reset
        self.detections = 0  # frames on which the face detector ran

    @property
    def track_ids(self) -> list[int]:
        """The ids of the live tracks."""
        return [t.id for t in self._tracks]

    def update(self, frame: np.ndarray, t: float | None = None) -> list[TrackedFace]:
        """The faces of the next RGB uint8 (H, W, 3) frame, each with its track id. `t`: its time in
        seconds (default: frame count / fps). DataError for an empty or missing frame, or one of another
        size than the stream's first."""
        frame = self._check_frame(frame)
        t = self.frames / self.fps if t is None else float(t)
        self.frames += 1
        if self.boxes is not None:
            faces = self._given_faces(frame)
        else:
            faces = self._tracked_faces(frame, t)
        return [TrackedFace(track.id, self._smooth(track, face, t)) for track, face in faces]

    # ----------------------------------------------------------------------------------------------
    def _check_frame(self, frame: Any) -> np.ndarray:
        what = f"frame {self.frames}"
        if frame is None:
            raise DataError(f"{what}: no image (the stream is closed or ended)")
        if isinstance(frame, np.ndarray) and frame.size == 0:
            raise DataError(f"{what}: empty image (shape {frame.shape})")
        frame = check_image(frame, what)
        if self._frame_shape is None:
            self._frame_shape = frame.shape
        elif frame.shape != self._frame_shape:
            h, w = frame.shape[:2]
            h0, w0 = self._frame_shape[:2]
            raise DataError(f"{what}: {w}x{h} pixels, but the stream's frames are {w0}x{h0}")
        return frame

    def _given_faces(self, frame: np.ndarray) -> list[tuple[_Track, Any]]:
        item = self.detector.crop_faces(frame, self.boxes, self.box_source, name=f"frame {self.frames - 1}")
        faces = self.detector.faces_from_crops([item])[0]
        while len(self._tracks) < len(faces):
            self._tracks.append(_Track(len(self._tracks), (0.0, 0.0, 1.0), 1.0))
        return list(zip(self._tracks, faces))

    def _tracked_faces(self, frame: np.ndarray, t: float) -> list[tuple[_Track, Any]]:
        name = f"frame {self.frames - 1}"
        predicted = [track.crop or track.square for track in self._tracks]
        windows = [self._window(sq, track.roll) for sq, track in zip(predicted, self._tracks)]
        tracked = self.detector.crop_windows(frame, windows, [track.score for track in self._tracks], name=name)
        new = None
        if self._detection_due():
            new = self._detect_new(frame, predicted, name)
        items = [tracked] if new is None else [tracked, new]
        results = self.detector.faces_from_crops(items)
        h, w = frame.shape[:2]
        out = []
        kept = []
        for track, crop_sq, face in zip(self._tracks, predicted, results[0]):
            if self._follow(track, crop_sq, face, t, w, h):
                kept.append(track)
                out.append((track, self._with_box(face, track)))
        for face, window in zip(results[1], new.transforms) if new is not None else []:
            track = _Track(self._next_id, (math.nan,) * 3, float(face.score), roll=window.angle)  # detect()'s turn
            self._move(track, face, t, w, h)
            self._next_id += 1
            kept.append(track)
            out.append((track, self._with_box(face, track)))
        self._tracks = kept
        self._since_detection += 1
        return self._without_duplicates(out)

    def _window(self, square: Square, roll: float) -> CropTransform:
        """A track's crop: its square turned by its roll, cut as crop_faces cuts a box of TRACK_BOX_SOURCE
        (the same arithmetic: an upright track's crop is bit for bit what a box-given crop was)."""
        box = box_for_square(square, self._track_calibration, roll)
        return box_crop(box, self.detector.input_size, self._track_calibration, roll)

    def _with_box(self, face: Any, track: _Track) -> Any:
        """The face with a box of the default given-box convention (RetinaFace's) around its landmarks
        (for a rolled face, the box such a detector draws around it: the crop's calibration, turned)."""
        return replace(face, box=box_for_square(track.square, self._box_calibration, track.roll), score=track.score)

    def _detection_due(self) -> bool:
        return not self._tracks or self._since_detection >= self.tracking.detect_every or self._doubtful()

    def _doubtful(self) -> bool:
        """Whether a track was lost, moved past its crop, or went unconfirmed: detect at full size."""
        return any(t.needs_detection or t.unconfirmed for t in self._tracks)

    def _detect_new(self, frame: np.ndarray, predicted: list[Square], name: str) -> Any:
        """Run the face detector: mark which tracks it confirms (a track unconfirmed twice ends) and
        return the crops of the faces no track follows."""
        scan = self._tracks and not self._doubtful()
        found = self.detector.crop_faces(frame, None, name=name,
                                         detect_max_side=self.tracking.scan_max_side if scan else None)
        self.detections += 1
        self._since_detection = 0
        squares = [crop_square(t) for t in found.transforms]
        matches = _greedy_matches(predicted, squares, self.tracking.match_iou)
        confirmed = set(matches.values())
        for j, track in enumerate(self._tracks):
            track.needs_detection = False
            if j in confirmed:
                track.unconfirmed = False
                track.score = float(found.scores[next(i for i, k in matches.items() if k == j)])
            elif track.unconfirmed:
                track.square = (math.nan, math.nan, math.nan)  # ends in _follow
            else:
                track.unconfirmed = True
        keep = [i for i in range(len(squares)) if i not in matches]
        return replace(found, boxes=found.boxes[keep], scores=found.scores[keep],
                       transforms=[found.transforms[i] for i in keep], crops=[found.crops[i] for i in keep])

    def _follow(self, track: _Track, crop_sq: Square, face: Any, t: float, width: int, height: int) -> bool:
        """Move the track to its face's new landmarks; False when the track ends."""
        if not math.isfinite(track.square[0]):
            return False
        square = square_from_landmarks(face.landmarks, self._margin, track.roll)  # at the crop's roll
        cx, cy, side = square
        reach = EDGE_REACH * side  # a face half out of the frame is still followed, as detect() finds it
        if not (-reach <= cx < width + reach and -reach <= cy < height + reach) or side <= 0 \
                or not np.isfinite(face.landmarks).all():
            return False  # the face left the frame (or the network lost it entirely)
        track.needs_detection = track.needs_detection or square_iou(square, crop_sq) < self.tracking.min_agreement
        self._move(track, face, t, width, height, square)
        return True

    def _move(self, track: _Track, face: Any, t: float, width: int, height: int,
              square: Square | None = None) -> None:
        """Give the track its face's next crop and roll, and its square (`square`, measured at the old roll,
        when the roll stays)."""
        roll = track.roll
        track.crop = self._next_crop(track, face, t, width, height)
        if square is None or track.roll != roll:
            square = square_from_landmarks(face.landmarks, self._margin, track.roll)
        track.square = square

    def _turn(self, landmarks: np.ndarray, roll: float) -> float:
        """The roll of a track's next crop: its eye corners' roll once past the detector's roll_threshold
        (a turned crop, `roll` != 0, until it falls ROLL_HYSTERESIS below it), else 0."""
        if self._eyes is None:
            return 0.0
        left, right = self._eyes
        now = float(roll_angle(landmarks[left], landmarks[right]))
        limit = self._roll_threshold - (ROLL_HYSTERESIS if roll != 0.0 else 0.0)
        return now if abs(now) > limit else 0.0

    def _next_crop(self, track: _Track, face: Any, t: float, width: int, height: int) -> Square:
        """The crop for the next frame: the square around the track's filtered landmarks, turned by their
        roll (track.roll, updated here), moved on by their last motion (a constant-velocity prediction), its
        centre kept inside the frame."""
        if track.crop_filter is None:
            track.crop_filter = FaceFilter(self.tracking.crop_smoothing, self.fps)
        landmarks = track.crop_filter(face, t).landmarks
        track.roll = self._turn(landmarks, track.roll)
        square = square_from_landmarks(landmarks, self._margin, track.roll)
        last, track.smoothed = track.smoothed, square
        cx, cy, side = square
        if last is not None:
            cx, cy = cx + cx - last[0], cy + cy - last[1]
        return min(max(cx, 0.0), width - 1.0), min(max(cy, 0.0), height - 1.0), min(side, 2.0 * max(width, height))

    def _without_duplicates(self, faces: list[tuple[_Track, Any]]) -> list[tuple[_Track, Any]]:
        """Two tracks that converged on one face: the older one stays."""
        out: list[tuple[_Track, Any]] = []
        for track, face in sorted(faces, key=lambda tf: tf[0].id):
            if all(square_iou(track.square, other.square) < 0.5 for other, _ in out):
                out.append((track, face))
        self._tracks = [track for track, _ in out]
        return out

    def _smooth(self, track: _Track, face: Any, t: float) -> Any:
        """The face One-Euro-filtered (landmarks and box) by its track's filter."""
        if self.smoothing is None:
            return face
        if track.filter is None:
            track.filter = FaceFilter(self.smoothing, self.fps)
        return track.filter(face, t)


def track_frames(stream: Any, tracker: LandmarkTracker) -> Iterator[VideoFrame]:
    """Yield a video.VideoFrame for every frame of `stream` (a video.VideoStream), one frame in memory at a
    time, with the faces `tracker` finds. DataError (naming the file) for a bad frame or a video with no
    readable frame."""
    index = -1
    for index, image in enumerate(stream.frames()):
        t = index / stream.fps
        try:
            faces = tracker.update(image, t)
        except DataError as exc:
            raise DataError(f"{stream.path}: {exc}") from None
        yield VideoFrame(index, t, image, [f.face for f in faces], [f.track for f in faces])
    if index < 0:
        raise DataError(f"{stream.path}: no readable frames in this video")
