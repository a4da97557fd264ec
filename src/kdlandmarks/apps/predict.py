"""Landmarks for image files, folders of images and video files, written to output files: what
`kdlandmarks predict` does, callable from Python.

    from kdlandmarks.apps.predict import predict_paths
    summary = predict_paths(["photos/", "clip.mp4"], out="predictions", formats="json,pts", draw=True)
    print(summary.faces, summary.errors)

Images give <stem>.json (faces with box, score and landmarks in image pixels) and/or <stem>_<face>.pts,
and with `draw` <stem>_landmarks.jpg; folders are searched recursively and their layout is kept under
`out`. Videos give <stem>.jsonl (one line per frame, faces with track ids) and with `draw`
<stem>_landmarks.mp4. An input file is never overwritten, and earlier drawings are not read as inputs.
For frames in memory rather than files, see LandmarkDetector.detect_video.
"""
from __future__ import annotations

import json
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from kdlandmarks.errors import ConfigError, DataError, KDLandmarksError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FORMATS = ("json", "pts")
NO_FACE = "no face detected"
# The JPEG comment (COM segment) that marks a drawn picture, so that a folder run never takes its own
# earlier drawings for photos (`predict DIR --out DIR`, or --out inside DIR).
DRAWING_MARK = b"kdlandmarks predict --draw"
DRAW_KEEP_PIXELS = 16_000_000  # draw: full-size pixels held for one batch's drawings before it runs early


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

def parse_formats(text: str | Sequence[str]) -> set[str]:
    """{"json", "pts"} or a subset from "json,pts" (or a list of names); ConfigError otherwise."""
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = {f.strip().lower() for f in items if f.strip()}
    bad = formats - set(FORMATS)
    if bad or not formats:
        raise ConfigError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    return formats


def parse_boxes(text: Any) -> Any:
    """None, a list of boxes for every input, or a dict file name -> boxes (from a .json file).

    `text`: None, 'x0,y0,x1,y1[;x0,y0,x1,y1...]', the path of a .json file mapping image file names to
    [[x0,y0,x1,y1], ...], or (from Python) such a list or dict itself, which is returned as it is.
    """
    if text is None or isinstance(text, (list, tuple, dict)):
        return text
    text = str(text)
    if text.lower().endswith(".json"):
        path = Path(text)
        if not path.is_file():
            raise DataError(f"{path}: boxes file not found")
        try:
            mapping = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError) as exc:
            raise DataError(f"{path}: not a JSON boxes file ({exc})") from None
        if not isinstance(mapping, dict):
            raise DataError(f"{path}: expected a JSON object mapping image names to box lists")
        return mapping
    boxes = []
    for part in text.split(";"):
        if not part.strip():
            continue
        try:
            vals = [float(v) for v in part.replace(" ", "").split(",")]
        except ValueError:
            raise ConfigError(f"--boxes {text!r}: expected numbers 'x0,y0,x1,y1[;...]'") from None
        if len(vals) not in (4, 5) or vals[2] <= vals[0] or vals[3] <= vals[1]:
            raise ConfigError(f"--boxes {part!r}: expected x0,y0,x1,y1 with x1 > x0 and y1 > y0")
        boxes.append(vals)
    if not boxes:
        raise ConfigError("--boxes: no box given")
    return boxes


def collect_inputs(paths: Sequence[str | Path]) -> list[tuple[Path, str, str]]:
    """(file, output stem relative to the output folder, kind 'image'|'video') for every input;
    DataError for a bad path."""
    items: list[tuple[Path, str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts)
                           and not is_drawing(p))  # an earlier run's drawing, not a photo
            if not found:
                raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder")
            items.extend((p, p.relative_to(path).with_suffix("").as_posix(), "image") for p in found)
        elif path.is_file():
            kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
            items.append((path, path.stem, kind))
        else:
            raise DataError(f"{path}: no such file or folder")
    # Two inputs with the same stem (a.jpg beside a.png, or from different arguments) must not overwrite
    # each other, nor may a renamed one take the stem of a later input (a.png -> a_1 beside a_1.jpg).
    used: set[str] = set()
    unique = []
    for path, stem, kind in items:
        out_stem, n = stem, 0
        while out_stem in used:
            n += 1
            out_stem = f"{stem}_{n}"
        used.add(out_stem)
        unique.append((path, out_stem, kind))
    return unique


def boxes_for(boxes: Any, path: Path, stem: str) -> Any:
    """The given boxes of one input: its entry of a file-name mapping (None: detect), or the boxes for all."""
    if isinstance(boxes, dict):
        for key in (stem, path.name, path.stem, str(path)):
            if key in boxes:
                return boxes[key]
        return None
    return boxes


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------

def mark_drawing(jpeg: bytes) -> bytes:
    """A JPEG with DRAWING_MARK as a comment segment after its JFIF header (or right after SOI)."""
    at = 2
    if jpeg[2:4] == b"\xff\xe0":  # APP0 (JFIF) stays first
        at = 4 + int.from_bytes(jpeg[4:6], "big")
    com = b"\xff\xfe" + (len(DRAWING_MARK) + 2).to_bytes(2, "big") + DRAWING_MARK
    return jpeg[:at] + com + jpeg[at:]


def is_drawing(path: Path) -> bool:
    """Whether `path` is a picture that a drawing run wrote (it carries DRAWING_MARK near its start)."""
    if path.suffix.lower() not in (".jpg", ".jpeg"):
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(128)
    except OSError:
        return False
    return head[:2] == b"\xff\xd8" and DRAWING_MARK in head


def _not_an_input(path: Path, inputs: set[Path]) -> Path:
    """`path`, or `<stem>-<k><suffix>` beside it when `path` is one of this run's input files (output
    folder in or equal to an input folder): an output never overwrites an input."""
    candidate, k = path, 0
    while candidate.resolve() in inputs:
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return candidate


def write_image_result(path: Path, stem: str, out: Path, size: tuple[int, int], image: Any, faces: list,
                       formats: set[str], draw: bool, meta: dict[str, Any], inputs: set[Path]) -> None:
    """One image's outputs. A re-run replaces the whole set: `<stem>_<k>.pts` files of faces an earlier run
    found beyond this run's count are removed. `image` (full size) is needed only for `draw`."""
    from kdlandmarks.data.datasets.pts import write_pts
    from kdlandmarks.fileio import atomic_write_bytes, atomic_write_json

    base = out / stem
    if "json" in formats:
        record = {"image": str(path), "width": int(size[0]), "height": int(size[1]), **meta,
                  "faces": [f.to_dict() for f in faces]}
        if not faces:
            record["reason"] = NO_FACE
        atomic_write_json(_not_an_input(base.with_name(base.name + ".json"), inputs), record)
    if "pts" in formats:
        for i, face in enumerate(faces):
            write_pts(_not_an_input(base.with_name(f"{base.name}_{i}.pts"), inputs), face.landmarks)
        k = len(faces)  # earlier runs wrote _0 .. _{n-1}: remove from this run's count up to the first gap
        while (stale := base.with_name(f"{base.name}_{k}.pts")).is_file() and stale.resolve() not in inputs:
            stale.unlink()
            k += 1
    if draw:
        import cv2

        from kdlandmarks.inference.detector import draw_faces

        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(draw_faces(image, faces), cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(_not_an_input(base.with_name(base.name + "_landmarks.jpg"), inputs),
                               mark_drawing(buf.tobytes()))


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------

@dataclass
class RunOptions:
    """How predict_images / predict_video handle their inputs (the options of predict_paths)."""

    formats: set[str] = field(default_factory=lambda: {"json"})
    draw: bool = False
    box_source: str | None = None
    smooth: bool = True
    batch_size: int = 16
    max_megapixels: float | None = 50.0
    progress: bool = True


def predict_images(detector: Any, items: list[tuple[Path, str]], out: Path, options: RunOptions, boxes: Any,
                   meta: dict[str, Any], errors: list[Exception], inputs: set[Path] | None = None,
                   on_skip: Callable[[Exception], None] | None = None) -> tuple[int, int, int]:
    """Images in batches; returns (done, faces, images without a face). Bad files go to `errors` (and to
    `on_skip` when there is more than one image).

    Each image is checked on its own (size from its header, decoding, its boxes entry) and skipped by
    name when bad. Its faces are cropped as soon as it is read, and the full-size image is freed then
    (kept only for drawing, up to DRAW_KEEP_PIXELS per batch), so memory does not grow with the batch.
    """
    from tqdm import tqdm

    from kdlandmarks.data.datasets.record import read_image

    inputs = inputs or set()
    megapixels = options.max_megapixels
    max_pixels = None if megapixels is None or megapixels <= 0 else int(megapixels * 1e6)
    done = faces_total = empty = 0
    bar = tqdm(total=len(items), desc="images", unit="img",
               disable=None if (len(items) > 1 and options.progress) else True)
    pending: list[tuple[Path, str, Any, tuple[int, int], Any]] = []  # path, stem, FaceCrops, (w, h), image

    def run_batch() -> None:
        nonlocal done, faces_total, empty
        results = detector.faces_from_crops([item[2] for item in pending])
        for (path, stem, _, size, image), faces in zip(pending, results):
            write_image_result(path, stem, out, size, image, faces, options.formats, options.draw, meta, inputs)
            done += 1
            faces_total += len(faces)
            empty += not faces
            bar.update(1)
        pending.clear()

    for path, stem in items:
        try:
            image = read_image(path, max_pixels)
            crops = detector.crop_faces(image, boxes_for(boxes, path, stem), options.box_source, name=str(path))
        except KDLandmarksError as exc:
            errors.append(exc)
            if len(items) > 1 and on_skip is not None:
                on_skip(exc)
            bar.update(1)
            continue
        size = (image.shape[1], image.shape[0])
        pending.append((path, stem, crops, size, image if options.draw else None))
        del image
        held = sum(item[3][0] * item[3][1] for item in pending if item[4] is not None)
        if len(pending) >= options.batch_size or held > DRAW_KEEP_PIXELS:
            run_batch()
    if pending:
        run_batch()
    bar.close()
    return done, faces_total, empty


def predict_video(detector: Any, path: Path, stem: str, out: Path, options: RunOptions, boxes: Any,
                  meta: dict[str, Any], inputs: set[Path] | None = None) -> tuple[int, int]:
    """One video: per-frame JSON lines (+ annotated mp4 when drawing); returns (frames, faces)."""
    import cv2
    from tqdm import tqdm

    from kdlandmarks.fileio import atomic_path
    from kdlandmarks.inference.detector import draw_faces
    from kdlandmarks.inference.video import VideoStream, track_frames

    stream = VideoStream(path)
    out.mkdir(parents=True, exist_ok=True)
    lines_path = _not_an_input(out / f"{stem}.jsonl", inputs or set())
    video_path = _not_an_input(out / f"{stem}_landmarks.mp4", inputs or set())
    writer = None
    frames = faces_total = 0
    bar = tqdm(total=stream.total, desc=path.name, unit="frame", disable=None if options.progress else True)
    # Both outputs appear only once the whole video is done; the mp4 (when drawing) is replaced first.
    with atomic_path(lines_path) as tmp_lines, (atomic_path(video_path) if options.draw else nullcontext()) as tmp_video:
        try:
            with open(tmp_lines, "w") as lines:
                lines.write(json.dumps({"video": str(path), "fps": stream.fps, **meta,
                                        "smoothed": bool(options.smooth)}) + "\n")
                for frame in track_frames(detector, stream, boxes_for(boxes, path, stem), options.box_source,
                                          options.smooth, options.batch_size):
                    lines.write(json.dumps(frame.to_dict()) + "\n")
                    if tmp_video is not None:
                        if writer is None:
                            h, w = frame.image.shape[:2]
                            writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), stream.fps, (w, h))
                            if not writer.isOpened():
                                raise DataError(f"{video_path}: cannot write an mp4 video here (no mp4v encoder)")
                        drawn = draw_faces(frame.image, frame.faces, frame.tracks if options.smooth else None)
                        writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                    frames += 1
                    faces_total += len(frame.faces)
                    bar.update(1)
        finally:
            bar.close()
            stream.close()
            if writer is not None:
                writer.release()  # finishes the mp4 before atomic_path moves it into place
    return frames, faces_total


@dataclass
class PredictSummary:
    """What predict_paths did: counts per kind of input, and the inputs it skipped (their errors)."""

    out: Path
    images: int = 0
    images_done: int = 0
    images_without_face: int = 0
    videos: int = 0
    videos_done: int = 0
    frames: int = 0
    faces: int = 0
    errors: list[Exception] = field(default_factory=list)

    def describe(self) -> str:
        """One line, as `kdlandmarks predict` prints it."""
        parts = []
        if self.images:
            parts.append(f"{self.images_done}/{self.images} images"
                         + (f" ({self.images_without_face} without a face)" if self.images_without_face else ""))
        if self.videos:
            parts.append(f"{self.videos_done}/{self.videos} videos ({self.frames} frames)")
        bad = f", {len(self.errors)} skipped" if self.errors else ""
        return f"predicted {self.faces} faces in {', '.join(parts)}{bad}; results in {self.out}"


def predict_paths(paths: Sequence[str | Path], out: str | Path = "predictions", *, detector: Any = None,
                  model: str | Path | None = None, device: str = "cpu", backend: str | None = None,
                  face_detector: Any = "auto", formats: str | Sequence[str] = "json", draw: bool = False,
                  boxes: Any = None, box_source: str | None = None, smooth: bool = True, batch_size: int = 16,
                  max_megapixels: float | None = 50.0, flip_test: bool = False, progress: bool = True,
                  on_skip: Callable[[Exception], None] | None = None) -> PredictSummary:
    """Find faces and their landmarks in image files, folders of images and video files, and write the
    output files under `out` (see the module docstring). Returns a PredictSummary.

    detector: a LandmarkDetector to use; else one is loaded from `model` (a shipped name, a model file or
    an .onnx; None: the default) with `device`, `backend`, `face_detector`, `batch_size` and `flip_test`.
    boxes: face boxes instead of the face detector (see parse_boxes), of the convention `box_source`.
    Bad inputs are skipped (passed to `on_skip` when there are several) and listed in summary.errors; when
    none could be processed, the single input's error (or a DataError) is raised. Bad paths and options
    fail before the model loads.
    """
    from kdlandmarks.fileio import output_folder

    if batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    options = RunOptions(parse_formats(formats), bool(draw), box_source, bool(smooth), int(batch_size),
                         max_megapixels, progress)
    boxes = parse_boxes(boxes)
    items = collect_inputs(paths)  # bad paths fail before the model loads
    output_folder(out, create=False)  # out taken by a file: one line now, not after the first batch
    inputs = {p.resolve() for p, _, _ in items}  # never overwritten, whatever out is
    if detector is None:
        from kdlandmarks.inference.detector import LandmarkDetector

        detector = LandmarkDetector.from_pretrained(model, device=device, backend=backend, detector=face_detector,
                                                    batch_size=batch_size, flip_test=flip_test)
    meta = _run_meta(detector, model, boxes, box_source)
    out = Path(out)
    summary = PredictSummary(out)
    images = [(p, s) for p, s, k in items if k == "image"]
    videos = [(p, s) for p, s, k in items if k == "video"]
    summary.images, summary.videos = len(images), len(videos)
    if images:
        summary.images_done, summary.faces, summary.images_without_face = predict_images(
            detector, images, out, options, boxes, meta, summary.errors, inputs, on_skip)
    for path, stem in videos:
        try:
            n, f = predict_video(detector, path, stem, out, options, boxes, meta, inputs)
        except DataError as exc:
            summary.errors.append(exc)
            if len(items) > 1 and on_skip is not None:
                on_skip(exc)
            continue
        summary.videos_done += 1
        summary.frames += n
        summary.faces += f
    if summary.images_done + summary.videos_done == 0:
        if len(items) == 1 and summary.errors:
            raise summary.errors[0]
        raise DataError(f"none of the {len(items)} inputs could be processed")
    return summary


def _run_meta(detector: Any, model: Any, boxes: Any, box_source: str | None) -> dict[str, Any]:
    """Check the box options against the detector and return the fields every output file carries."""
    if box_source is not None:
        if boxes is None:
            raise ConfigError("--box-source names the convention of --boxes: give --boxes too")
        detector.calibration_for(box_source)  # an unknown name: one error before any file is read
    if boxes is None or isinstance(boxes, dict):
        _ = detector.face_detector  # a missing detector is one error for the whole run, not one per file
    source = detector.detector_name
    if boxes is not None:
        source = f"given boxes / {source}" if isinstance(boxes, dict) else "given boxes"
    meta = {"model": str(detector.model_path or model), "num_points": detector.num_points, "detector": source,
            "flip_test": bool(detector.flip_test)}
    if boxes is not None:
        meta["box_source"] = box_source or detector.given_box_source()
    return meta
