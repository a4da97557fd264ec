"""Temporal smoothing of landmarks in video, and reading video files frame by frame.

The One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) is a low-pass filter whose cutoff rises with
speed: still faces lose their frame-to-frame jitter, moving faces keep up with little lag. Landmarks
are filtered in units of the track's face size (box side at its first frame), so `beta` means the same
for small and large faces. SmoothingOptions holds the settings (DEFAULT_SMOOTHING: what `predict`, the
LandmarkTracker and the web app use); tracking.LandmarkTracker does the tracking.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterator, Sequence

import numpy as np

from kdlandmarks.data.images import too_small
from kdlandmarks.inference.detection import box_iou
from kdlandmarks.errors import ConfigError, DataError

DEFAULT_FPS = 30.0  # assumed when the container gives no usable frame rate


class OneEuroFilter:
    """One-Euro filter over an array of any shape (each element filtered independently).

    min_cutoff (Hz): cutoff at rest; lower = smoother when still. beta: how fast the cutoff rises
    with speed (units of the signal per second); higher = less lag when moving. d_cutoff (Hz): cutoff
    of the speed estimate. freq: the sample rate assumed when no timestamps are given.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 0.0, d_cutoff: float = 1.0, freq: float = 30.0) -> None:
        if min_cutoff <= 0 or d_cutoff <= 0 or freq <= 0 or beta < 0:
            raise ConfigError("One-Euro filter needs min_cutoff, d_cutoff, freq > 0 and beta >= 0")
        self.min_cutoff, self.beta, self.d_cutoff, self.freq = float(min_cutoff), float(beta), float(d_cutoff), float(freq)
        self.reset()

    def reset(self) -> None:
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None
        self._t: float | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray | float:
        tau = 1.0 / (2 * math.pi * cutoff)
        return 1.0 / (1.0 + tau / dt)

    def __call__(self, x: np.ndarray, t: float | None = None) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if self._x is None or self._x.shape != x.shape:
            self._x, self._dx, self._t = x.copy(), np.zeros_like(x), t
            return x.copy()
        dt = 1.0 / self.freq
        if t is not None and self._t is not None and t > self._t:
            dt = t - self._t
        self._t = t
        dx = (x - self._x) / dt
        self._dx = self._dx + self._alpha(self.d_cutoff, dt) * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx)
        self._x = self._x + self._alpha(cutoff, dt) * (x - self._x)
        return self._x.copy()


@dataclass(frozen=True)
class SmoothingOptions:
    """One-Euro settings of the landmark smoothing (FaceFilter), in face-size units: min_cutoff (Hz), the
    cutoff of a still face (lower: less jitter); beta, how fast the cutoff rises with the face's speed
    (per face size per second; higher: less lag); d_cutoff (Hz), the cutoff of the speed estimate."""

    min_cutoff: float = 0.1
    beta: float = 50.0
    d_cutoff: float = 1.0

    def __post_init__(self) -> None:
        values = (self.min_cutoff, self.beta, self.d_cutoff)
        if not all(math.isfinite(v) for v in values) or self.min_cutoff <= 0 or self.d_cutoff <= 0 or self.beta < 0:
            raise ConfigError(f"smoothing needs min_cutoff, d_cutoff > 0 and beta >= 0 (finite), got {self}")

    def to_dict(self) -> dict[str, float]:
        return {k: float(v) for k, v in asdict(self).items()}


# Chosen with `benchmarks/video_tracking.py --tune` (4 held-out 300-W train faces, 90 frames per path): the
# lowest NME under motion among the settings whose still face jitters <= 0.10 % of the inter-ocular
# distance per frame (motion NME 4.245 against 4.161 for detect() on every frame; jitter 0.094 %).
DEFAULT_SMOOTHING = SmoothingOptions()


class FaceFilter:
    """One-Euro filter of one face's landmarks and box over time, with one cutoff for the whole face,
    driven by the face's speed rather than each coordinate's own.

    Units are the face's size at its first frame (sqrt of its box's area), so the settings mean the same
    for small and large faces. The speed is the norm of the low-passed (d_cutoff) rate of change of
    three numbers: the centre (mean) of the points and their spread (RMS distance from the centre),
    measured from the filtered face of the last frame. Noise of single points averages out in those, so
    a still face keeps a low cutoff (little jitter) while a moving or zooming face raises it for every
    point at once (little lag).
    """

    def __init__(self, smoothing: SmoothingOptions = DEFAULT_SMOOTHING, fps: float = DEFAULT_FPS) -> None:
        if not (fps > 0 and math.isfinite(fps)):
            raise ConfigError(f"frame rate must be a positive number, got {fps}")
        self.options = smoothing
        self.fps = float(fps)
        self.scale: float | None = None
        self._x: np.ndarray | None = None
        self._rate = np.zeros(3)
        self._t: float | None = None

    @staticmethod
    def motion(signal: np.ndarray, points: int) -> np.ndarray:
        """Centre x, centre y and spread of the first `points` points of a flat x, y, x, y... signal."""
        pts = signal[:2 * points].reshape(-1, 2)
        centre = pts.mean(axis=0)
        return np.array([centre[0], centre[1], math.sqrt(float(((pts - centre) ** 2).sum(axis=1).mean()))])

    def __call__(self, face: Any, t: float | None = None) -> Any:
        """The face (any dataclass with .box and .landmarks) with its landmarks and box filtered."""
        box = np.asarray(face.box, dtype=np.float64)
        landmarks = np.asarray(face.landmarks, dtype=np.float64)
        if self.scale is None:
            x0, y0, x1, y1 = box
            self.scale = max(math.sqrt(max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)), 1e-6)
        signal = np.concatenate([landmarks.ravel(), box]) / self.scale
        if self._x is None or self._x.shape != signal.shape:
            self._x, self._rate, self._t = signal, np.zeros(3), t
            return replace(face, landmarks=landmarks.copy(), box=box.copy())
        dt = 1.0 / self.fps
        if t is not None and self._t is not None and t > self._t:
            dt = t - self._t
        self._t = t
        n = len(landmarks)
        rate = (self.motion(signal, n) - self.motion(self._x, n)) / dt
        self._rate = self._rate + OneEuroFilter._alpha(self.options.d_cutoff, dt) * (rate - self._rate)
        cutoff = self.options.min_cutoff + self.options.beta * float(np.linalg.norm(self._rate))
        self._x = self._x + OneEuroFilter._alpha(cutoff, dt) * (signal - self._x)
        smooth = self._x * self.scale
        return replace(face, landmarks=smooth[:2 * n].reshape(-1, 2), box=smooth[2 * n:])


@dataclass
class Track:
    id: int
    box: np.ndarray
    missed: int = 0
    age: int = 0
    state: dict[str, Any] = field(default_factory=dict)  # per-track data, e.g. its filters


class IoUTracker:
    """Greedy IoU matching of each frame's boxes to the live tracks; a track that goes unmatched for
    more than `max_missed` frames ends, and an unmatched box starts a new track (new id)."""

    def __init__(self, iou_threshold: float = 0.3, max_missed: int = 10) -> None:
        self.iou_threshold = float(iou_threshold)
        self.max_missed = int(max_missed)
        self.tracks: dict[int, Track] = {}
        self._next_id = 0

    def update(self, boxes: Sequence[Sequence[float]] | np.ndarray) -> list[Track]:
        """The track of each box, in order."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        ids = list(self.tracks)
        pairs = []
        for j, tid in enumerate(ids):
            ious = box_iou(self.tracks[tid].box, boxes) if len(boxes) else np.zeros(0)
            pairs.extend((float(iou), j, i) for i, iou in enumerate(ious) if iou >= self.iou_threshold)
        pairs.sort(key=lambda p: -p[0])
        assigned: dict[int, Track] = {}
        used: set[int] = set()
        for _, j, i in pairs:
            if i in assigned or j in used:
                continue
            assigned[i], used = self.tracks[ids[j]], used | {j}
        for j, tid in enumerate(ids):
            if j not in used:
                self.tracks[tid].missed += 1
                if self.tracks[tid].missed > self.max_missed:
                    del self.tracks[tid]
        out = []
        for i, box in enumerate(boxes):
            track = assigned.get(i)
            if track is None:
                track = Track(self._next_id, box.copy())
                self.tracks[track.id] = track
                self._next_id += 1
            else:
                track.box, track.missed, track.age = box.copy(), 0, track.age + 1
            out.append(track)
        return out


class LandmarkSmoother:
    """Smoothing of per-frame detections: an IoU tracker gives faces their ids, and a One-Euro filter per
    track smooths its landmarks and box (SmoothingOptions, face-size units). For video, prefer
    tracking.LandmarkTracker, which also crops each face from its last landmarks."""

    def __init__(self, smoothing: SmoothingOptions = DEFAULT_SMOOTHING, fps: float = DEFAULT_FPS,
                 iou_threshold: float = 0.3, max_missed: int = 10) -> None:
        self.smoothing = smoothing
        self.params = {**smoothing.to_dict(), "freq": fps}
        OneEuroFilter(**self.params)  # validate now, not at the first face
        self.tracker = IoUTracker(iou_threshold, max_missed)

    def update(self, faces: Sequence[Any], t: float | None = None) -> list[tuple[int, Any]]:
        """(track id, smoothed face) for each face of one frame; faces have .box and .landmarks."""
        tracks = self.tracker.update([f.box for f in faces])
        out = []
        for face, track in zip(faces, tracks):
            if "filter" not in track.state:
                track.state["filter"] = FaceFilter(self.smoothing, self.params["freq"])
            out.append((track.id, track.state["filter"](face, t)))
        return out


# --------------------------------------------------------------------------------------------------
# Reading a video file (LandmarkDetector.detect_video and `kdlandmarks predict VIDEO` go through here)
# --------------------------------------------------------------------------------------------------

class VideoStream:
    """An opened video file read one RGB frame at a time, so that memory holds one decoded frame whatever
    the video's length. `fps` (the container's, or DEFAULT_FPS when it gives none), `total` (frame count,
    or None when unknown), `size` (width, height). `max_pixels`: refuse frames larger than this (checked
    from the container before decoding). DataError when it cannot be opened or is refused. Use it as a
    context manager, or call close()."""

    def __init__(self, path: Any, max_pixels: int | None = None) -> None:
        import os

        import cv2

        # FFmpeg's own log lines ("moov atom not found", ...) would come before our one-line error; quiet
        # unless the user set a level. Read by OpenCV when it first opens a video.
        os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
        self.path = path
        self._cap = cv2.VideoCapture(str(path))
        if not self._cap.isOpened():
            raise DataError(f"{path}: cannot open this video (corrupt or unsupported codec)")
        fps = self._cap.get(cv2.CAP_PROP_FPS)
        self.fps = float(fps) if fps and 0 < fps < 1000 else DEFAULT_FPS
        self.total = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
        self.size = (int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
        if max_pixels is not None and self.size[0] * self.size[1] > max_pixels:
            self.close()
            raise DataError(f"{path}: video frames are {self.size[0]}x{self.size[1]} "
                            f"({self.size[0] * self.size[1] / 1e6:.1f} megapixels), over the limit of "
                            f"{max_pixels / 1e6:g} megapixels")
        small = too_small(*self.size) if min(self.size) > 0 else None  # 0x0: unknown until decoded
        if small:
            self.close()
            raise DataError(f"{path}: video frames: {small}")

    def frames(self) -> Iterator[np.ndarray]:
        """Yield the RGB uint8 frames until the video ends; DataError if the stream was closed."""
        import cv2

        while True:
            if not self._cap.isOpened():
                raise DataError(f"{self.path}: the video stream is closed")
            ok, frame = self._cap.read()
            if not ok:
                return
            yield cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)  # (in place is slower); the BGR frame is freed here

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class VideoFrame:
    """One frame of LandmarkDetector.detect_video: its index, time (s), the RGB image, its faces (smoothed
    when smoothing is on) and each face's track id."""

    index: int
    time: float
    image: np.ndarray
    faces: list
    tracks: list

    def to_dict(self) -> dict[str, Any]:
        """The frame's JSON line as `kdlandmarks predict` writes it (faces with track ids; "reason" when
        no face was found)."""
        record: dict[str, Any] = {"frame": self.index, "time": round(self.time, 4),
                                  "faces": [{"track": tid, **f.to_dict()} for tid, f in zip(self.tracks, self.faces)]}
        if not self.faces:
            record["reason"] = "no face detected"
        return record
