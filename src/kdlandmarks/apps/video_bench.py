"""Video end to end: synthetic clips of a real face moved along a known path, and the frames-per-second
benchmark of LandmarkDetector.detect_video (decode included) beside MediaPipe Face Mesh in tracking
mode when it is importable (`kdlandmarks bench`'s 720p row: bench_video).

A clip pastes one annotated face (its photo around the landmarks, feathered into an elliptical mask)
onto a fixed background and moves it along a path (FACE_PATHS: still, a slow pan, a fast pan, a zoom);
its true landmarks move with it, so accuracy under motion is measurable (benchmarks/video_tracking.py).
Each frame gets fresh sensor noise, so that a still face still jitters as it does from a camera.
"""
from __future__ import annotations

import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from kdlandmarks.errors import DataError


def _still(i: int) -> tuple[float, float, float]:
    return 0.0, 0.0, 1.0


def _slow_pan(i: int) -> tuple[float, float, float]:
    """3 pixels a frame, back and forth over 300 pixels."""
    x = (3.0 * i) % 600.0
    return (x if x < 300 else 600.0 - x) - 150.0, 0.0, 1.0


def _fast_pan(i: int) -> tuple[float, float, float]:
    """A sinusoid: up to ~17 pixels a frame across, 4 down."""
    phase = 2 * math.pi * i / 120.0
    return 320.0 * math.sin(phase), 80.0 * math.sin(2 * phase), 1.0


def _zoom(i: int) -> tuple[float, float, float]:
    """The face grows and shrinks by 35 % while it drifts."""
    return 150.0 * math.sin(2 * math.pi * i / 150.0), 40.0 * math.sin(2 * math.pi * i / 75.0), \
        1.0 + 0.35 * math.sin(2 * math.pi * i / 100.0)


# name -> frame index -> (dx, dy) pixels from the frame centre and a scale factor
FACE_PATHS: dict[str, Callable[[int], tuple[float, float, float]]] = {
    "still": _still, "slow-pan": _slow_pan, "fast-pan": _fast_pan, "zoom": _zoom}


def _background(size: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    import cv2

    w, h = size
    coarse = rng.uniform(40, 200, (9, 16, 3)).astype(np.float32)
    coarse = 0.5 * coarse + 0.5 * coarse.mean(axis=2, keepdims=True)  # muted colours
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    return np.clip(field + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)


def moving_face_frames(image: np.ndarray, landmarks: np.ndarray, path: str, frames: int,
                       size: tuple[int, int] = (1280, 720), face_side: float = 160.0, noise: float = 2.0,
                       seed: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(RGB uint8 frame, true landmarks (N, 2)) for each frame of a clip of `size` (width, height): the
    face of `image` (RGB) with `landmarks`, its landmark extent `face_side` pixels wide at scale 1,
    moved along FACE_PATHS[path] about the frame centre; `noise`: sensor noise (grey levels, s.d.)."""
    import cv2

    if path not in FACE_PATHS:
        raise DataError(f"unknown face path {path!r}: choose from {', '.join(FACE_PATHS)}")
    rng = np.random.default_rng(seed)
    pts = np.asarray(landmarks, dtype=np.float64)
    factor = face_side / float(max(pts.max(axis=0) - pts.min(axis=0)))
    # The face at its base scale, cut with room for the largest zoom: later warps only enlarge a little.
    if factor < 1:  # shrink with an area filter first (no aliasing), then only translate
        source = cv2.resize(image, None, fx=factor, fy=factor, interpolation=cv2.INTER_AREA)
        pts = (pts + 0.5) * np.array([source.shape[1] / image.shape[1], source.shape[0] / image.shape[0]]) - 0.5
        gain = 1.0
    else:
        source, gain = image, factor
    half = int(face_side * 1.05)  # the mask below is zero beyond face_side from the centre
    centre = (pts.min(axis=0) + pts.max(axis=0)) / 2 * gain
    shift = np.array([[gain, 0, half - centre[0]], [0, gain, half - centre[1]]])
    patch = cv2.warpAffine(source, shift, (2 * half, 2 * half), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    base_pts = pts * gain + (half - centre)
    yy, xx = np.mgrid[0:2 * half, 0:2 * half].astype(np.float32)
    radius = np.hypot((xx - half) / (0.85 * face_side), (yy - half) / (1.0 * face_side))
    mask = np.clip((1.0 - radius) / 0.25, 0.0, 1.0)[..., None].astype(np.float32)
    w, h = size
    background = _background(size, rng)
    for i in range(frames):
        dx, dy, k = FACE_PATHS[path](i)
        m = np.array([[k, 0, w / 2 + dx - k * half], [0, k, h / 2 + dy - k * half]])
        # Only the face's region changes from frame to frame: blend and add noise there.
        x0, y0 = (max(0, int(math.floor(v))) for v in m[:, 2])
        x1, y1 = min(w, int(math.ceil(m[0, 2] + 2 * half * k))), min(h, int(math.ceil(m[1, 2] + 2 * half * k)))
        frame = background.copy()
        if x1 > x0 and y1 > y0:
            local = m - np.array([[0, 0, x0], [0, 0, y0]])
            face = cv2.warpAffine(patch, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)
            alpha = cv2.warpAffine(mask, local, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR)[..., None]
            region = frame[y0:y1, x0:x1].astype(np.float32)
            region += alpha * (face.astype(np.float32) - region)
            region += rng.standard_normal(region.shape, dtype=np.float32) * np.float32(noise)
            frame[y0:y1, x0:x1] = np.clip(region, 0, 255).astype(np.uint8)
        yield frame, base_pts * k + m[:, 2]


def write_clip(path: str | Path, frames: Iterator[np.ndarray], fps: float = 30.0) -> Path:
    """Write RGB frames to an mp4 (mp4v); DataError when this OpenCV cannot write one."""
    import cv2

    path = Path(path)
    writer = None
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                if not writer.isOpened():
                    raise DataError(f"{path}: this OpenCV cannot write mp4v videos")
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        if writer is not None:
            writer.release()
    return path


def sample_face() -> tuple[np.ndarray, np.ndarray]:
    """One bundled 300-W sample face (RGB image, landmarks) for clips that need any real face."""
    from kdlandmarks.data.datasets import sample_root
    from kdlandmarks.data.datasets.w300 import read_annotated_folder

    record = read_annotated_folder(sample_root() / "lfpw" / "testset", "lfpw/testset", 68)[0]
    return record.load_image(), record.landmarks


@dataclass
class VideoBenchRow:
    """One end-to-end video measurement: frames per second over the clip, decode included."""

    name: str
    fps: float
    frames: int
    note: str = ""

    @property
    def ms_per_frame(self) -> float:
        return 1000.0 / self.fps if self.fps > 0 else math.inf


def _best_fps(run: Callable[[], int], repeats: int) -> tuple[float, int]:
    """The best frames per second of `repeats` runs (the least disturbed by other work), and the frames."""
    best, frames = 0.0, 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        frames = run()
        best = max(best, frames / (time.perf_counter() - t0))
    return best, frames


def _decode_only(clip: Path) -> int:
    from kdlandmarks.inference.video import VideoStream

    with VideoStream(clip) as stream:
        return sum(1 for _ in stream.frames())


def _mediapipe_run(clip: Path) -> Callable[[], int]:
    """Face Mesh in tracking mode (static_image_mode False: detection only when tracking is lost)."""
    import mediapipe as mp

    from kdlandmarks.inference.video import VideoStream

    def run() -> int:
        with mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1) as mesh, \
                VideoStream(clip) as stream:
            return sum(1 for frame in stream.frames() if mesh.process(frame) is not None)

    return run


def bench_video(model: str | Path | None = None, frames: int = 150, size: tuple[int, int] = (1280, 720),
                repeats: int = 3, detector: Any = None) -> list[VideoBenchRow]:
    """Frames per second on a synthetic clip of one moving face (`frames` frames of `size`, made on the
    fly, mp4v): decode alone, LandmarkDetector.detect_video (tracking, smoothing; `detector` or one
    loaded from `model`), and MediaPipe Face Mesh in tracking mode when importable (else a row with the
    reason). Best of `repeats` runs each, decode and RGB conversion included."""
    from kdlandmarks.inference.detector import LandmarkDetector

    detector = detector or LandmarkDetector(model)
    image, landmarks = sample_face()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        clip = write_clip(Path(tmp) / "clip.mp4", (f for f, _ in moving_face_frames(
            image, landmarks, "fast-pan", frames, size, face_side=size[1] / 4)))
        fps, n = _best_fps(lambda: _decode_only(clip), repeats)
        rows.append(VideoBenchRow("decode only (OpenCV, RGB)", fps, n))
        fps, n = _best_fps(lambda: sum(1 for _ in detector.detect_video(clip)), repeats)
        rows.append(VideoBenchRow("kdlandmarks detect_video (tracking)", fps, n))
        try:
            run = _mediapipe_run(clip)
            fps, n = _best_fps(run, repeats)
            rows.append(VideoBenchRow("mediapipe face mesh (tracking mode)", fps, n))
        except Exception as exc:  # noqa: BLE001 (an optional peer: any failure to load it is a note)
            rows.append(VideoBenchRow("mediapipe face mesh (tracking mode)", 0.0, 0,
                                      f"skipped: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}"
                                      " (needs mediapipe 0.10.x with numpy < 2: see benchmarks/video_fps.py)"))
    return rows


def format_video_rows(rows: list[VideoBenchRow], size: tuple[int, int] = (1280, 720)) -> str:
    lines = [f"video end to end, {size[0]}x{size[1]}, one face, decode included:"]
    for r in rows:
        lines.append(f"  {r.name:40s} " + (f"{r.fps:8.1f} frames/s  {r.ms_per_frame:6.2f} ms/frame  ({r.frames} frames)"
                                           if r.fps > 0 else r.note))
    return "\n".join(lines)
