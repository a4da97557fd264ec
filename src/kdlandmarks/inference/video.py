"""Temporal smoothing of landmarks in video: a One-Euro filter per coordinate, and an IoU tracker that
keeps face identities across frames so that each face (track) is smoothed by its own filter.

The One-Euro filter (Casiez, Roussel & Vogel, CHI 2012) is a low-pass filter whose cutoff rises with
speed: still faces lose their frame-to-frame jitter, moving faces keep up with little lag. The
smoother filters coordinates in units of the track's face size (box side at its first frame), so
`beta` means the same for small and large faces.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

import numpy as np

from kdlandmarks.inference.detection import box_iou
from kdlandmarks.errors import ConfigError


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
    """Tracks faces across frames and One-Euro-filters each track's landmarks and box.

    Parameters are in face-size units: beta=5 lets the cutoff reach ~6 Hz at one face size per second.
    """

    def __init__(self, min_cutoff: float = 1.0, beta: float = 5.0, d_cutoff: float = 1.0, fps: float = 30.0,
                 iou_threshold: float = 0.3, max_missed: int = 10) -> None:
        self.params = {"min_cutoff": min_cutoff, "beta": beta, "d_cutoff": d_cutoff, "freq": fps}
        OneEuroFilter(**self.params)  # validate now, not at the first face
        self.tracker = IoUTracker(iou_threshold, max_missed)

    def update(self, faces: Sequence[Any], t: float | None = None) -> list[tuple[int, Any]]:
        """(track id, smoothed face) for each face of one frame; faces have .box and .landmarks."""
        tracks = self.tracker.update([f.box for f in faces])
        out = []
        for face, track in zip(faces, tracks):
            if "filter" not in track.state:
                x0, y0, x1, y1 = face.box
                track.state["scale"] = max(math.sqrt(max(x1 - x0, 1e-6) * max(y1 - y0, 1e-6)), 1e-6)
                track.state["filter"] = OneEuroFilter(**self.params)
            scale = track.state["scale"]
            signal = np.concatenate([np.asarray(face.landmarks, dtype=np.float64).ravel(),
                                     np.asarray(face.box, dtype=np.float64)]) / scale
            smooth = track.state["filter"](signal, t) * scale
            n = len(smooth) - 4
            out.append((track.id, replace(face, landmarks=smooth[:n].reshape(-1, 2), box=smooth[n:])))
        return out


# --------------------------------------------------------------------------------------------------
# Reading a video and running a LandmarkDetector over its frames (LandmarkDetector.detect_video,
# predict.predict_video and `kdlandmarks predict VIDEO` all go through here)
# --------------------------------------------------------------------------------------------------

DEFAULT_FPS = 30.0  # assumed when the container gives no usable frame rate


class VideoStream:
    """An opened video file read in batches of RGB frames. `fps` (the container's, or DEFAULT_FPS when
    it gives none) and `total` (frame count, or None when unknown). DataError when it cannot be opened.
    Use it as a context manager, or call close()."""

    def __init__(self, path: Any) -> None:
        import os

        import cv2

        from kdlandmarks.errors import DataError

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

    def batches(self, size: int) -> Any:
        """Yield lists of up to `size` RGB uint8 frames until the video ends."""
        import cv2

        while True:
            batch = []
            while len(batch) < size:
                ok, frame = self._cap.read()
                if not ok:
                    break
                batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            if not batch:
                return
            yield batch

    def close(self) -> None:
        self._cap.release()

    def __enter__(self) -> "VideoStream":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@dataclass
class VideoFrame:
    """One frame of LandmarkDetector.detect_video: its index, time (s), the RGB image, its faces (smoothed
    when smoothing is on) and each face's track id (None for all faces when smoothing is off)."""

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


def track_frames(detector: Any, stream: VideoStream, boxes: Any = None, box_source: str | None = None,
                 smooth: bool = True, batch_size: int | None = None,
                 smoother: LandmarkSmoother | None = None) -> Any:
    """Yield a VideoFrame for every frame of `stream`: faces found by `detector` (a LandmarkDetector) in
    batches of `batch_size` frames (default: the detector's), tracked and One-Euro-smoothed when `smooth`
    (a LandmarkSmoother at the stream's fps, or the one given). `boxes`: the same face boxes for every
    frame instead of the face detector, of the convention `box_source`. DataError when the video has no
    readable frame."""
    from kdlandmarks.errors import DataError

    if smooth and smoother is None:
        smoother = LandmarkSmoother(fps=stream.fps)
    if not smooth:
        smoother = None
    index = 0
    for batch in stream.batches(int(batch_size or detector.batch_size)):
        results = detector.detect_batch(batch, [boxes] * len(batch), box_source=box_source)
        for image, faces in zip(batch, results):
            t = index / stream.fps
            tracked = smoother.update(faces, t) if smoother else [(None, f) for f in faces]
            yield VideoFrame(index, t, image, [f for _, f in tracked], [tid for tid, _ in tracked])
            index += 1
    if index == 0:
        raise DataError(f"{stream.path}: no readable frames in this video")
