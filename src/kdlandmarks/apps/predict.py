"""Landmarks for image files, folders of images and video files, written to output files: what
`kdlandmarks predict` does, callable from Python.

    from kdlandmarks.apps.predict import RunOptions, predict_paths
    summary = predict_paths(["photos/", "clip.mp4"], "predictions", RunOptions(formats="json,pts", draw=True))
    print(summary.faces, summary.errors)

Images give <stem>.json (faces with box, score and landmarks in image pixels) and/or <stem>_<face>.pts,
and with `draw` <stem>_landmarks.jpg; folders are searched recursively and their layout is kept under
`out`. Videos give <stem>.jsonl (one line per frame, faces with track ids) and with `draw`
<stem>_landmarks.mp4. An input file is never overwritten, and earlier drawings are not read as inputs.
For frames in memory rather than files, see LandmarkDetector.detect_video.

Ownership of the output folder: an image run replaces or removes only files that it can tell it wrote.
Each file it writes is recorded (name, size, modification time) in the folder's ledger, OUTPUT_LEDGER;
a file in the way that the ledger does not vouch for (the user's own a.json or a_0.pts, or one changed
since) is never replaced: the output is written beside it (a-1.json) and the summary says so. A re-run
replaces an image's outputs and removes its own earlier .json / .pts files that this run did not
write again (fewer faces, another --format).
"""
from __future__ import annotations

import json
import math
import os
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

from kdlandmarks.errors import ConfigError, DataError, KDLandmarksError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".gif")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FORMATS = ("json", "pts")
NO_FACE = "no face detected"
# The JPEG comment (COM segment) that marks a drawn picture, so that a folder run never takes its own
# earlier drawings for photos (`predict DIR --out DIR`, or --out inside DIR).
DRAWING_MARK = b"kdlandmarks predict --draw"
DRAW_KEEP_PIXELS = 16_000_000  # draw: full-size pixels held for one batch's drawings before it runs early
OUTPUT_LEDGER = ".kdlandmarks-predict.jsonl"  # in the output folder: the files image runs wrote there
STALE_SUFFIXES = (".json", ".pts")  # an image's earlier outputs that a re-run removes when it does not rewrite them


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

def parse_formats(text: str | Sequence[str]) -> set[str]:
    """{"json", "pts"} or a subset from "json,pts" (or a list of names); ConfigError otherwise."""
    items = text.split(",") if isinstance(text, str) else list(text)
    formats = {f.strip().lower() for f in items if f.strip()}
    bad = formats - set(FORMATS)
    if bad or not formats:
        raise ConfigError(f"{{formats}} {text!r}: choose from {', '.join(FORMATS)} (comma-separated)",
                          parameters=("formats",))
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
        except RecursionError:  # [[[[...]]]] nested deeper than Python's parser goes
            raise DataError(f"{path}: not a boxes file (JSON nested too deeply)") from None
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
            raise ConfigError(f"{{boxes}} {text!r}: expected numbers 'x0,y0,x1,y1[;...]'",
                              parameters=("boxes",)) from None
        if len(vals) not in (4, 5) or vals[2] <= vals[0] or vals[3] <= vals[1]:
            raise ConfigError(f"{{boxes}} {part!r}: expected x0,y0,x1,y1 with x1 > x0 and y1 > y0",
                              parameters=("boxes",))
        boxes.append(vals)
    if not boxes:
        raise ConfigError("{boxes}: no box given", parameters=("boxes",))
    return boxes


def collect_inputs(paths: Sequence[str | Path],
                   drawings: list[Path] | None = None) -> list[tuple[Path, str, str]]:
    """(file, output stem relative to the output folder, kind 'image'|'video') for every input;
    DataError for a bad path. The pictures in folders that carry DRAWING_MARK (earlier drawings) are
    not inputs; they are added to `drawings` when it is given."""
    items: list[tuple[Path, str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = []
            for p in sorted(path.rglob("*")):
                if (not p.is_file() or p.suffix.lower() not in IMAGE_SUFFIXES
                        or any(part.startswith(".") for part in p.relative_to(path).parts)):
                    continue
                if is_drawing(p):  # an earlier run's drawing, not a photo
                    if drawings is not None:
                        drawings.append(p)
                    continue
                found.append(p)
            if not found:
                raise DataError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)}) in this folder"
                                + (f" (only {len(drawings or [])} earlier drawings)" if drawings else ""))
            items.extend((p, p.relative_to(path).with_suffix("").as_posix(), "image") for p in found)
        elif path.is_file():
            kind = "video" if path.suffix.lower() in VIDEO_SUFFIXES else "image"
            items.append((path, path.stem, kind))
        elif path.exists():  # a FIFO, socket or device: reading it could block or never end
            raise DataError(f"{path}: not a regular file or folder")
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


def _first_free(path: Path, taken: Callable[[Path], bool]) -> Path:
    """`path`, or the first `<stem>-<k><suffix>` beside it (k = 1, 2, ...) that is not `taken`."""
    candidate, k = path, 0
    while taken(candidate):
        k += 1
        candidate = path.with_name(f"{path.stem}-{k}{path.suffix}")
    return candidate


def _not_an_input(path: Path, inputs: set[Path]) -> Path:
    """`path`, or `<stem>-<k><suffix>` beside it when `path` is one of this run's input files (output
    folder in or equal to an input folder): an output never overwrites an input."""
    return _first_free(path, lambda candidate: candidate.resolve() in inputs)


class OutputLedger:
    """The files that image runs wrote into one output folder (OUTPUT_LEDGER there, one JSON line per write
    or removal), so that a run replaces or removes only its own files: a file counts as this project's
    while its size and modification time are those recorded when it was written.

    `beside` lists (wanted, written) pairs of outputs that went beside a file of someone else's."""

    def __init__(self, out: Path, inputs: set[Path] | None = None) -> None:
        self.out = Path(out)
        self.inputs = inputs or set()
        self.beside: list[tuple[Path, Path]] = []
        self._files: dict[str, dict[str, Any]] = {}  # relative path -> {"stem", "size", "mtime_ns"}
        self._stems: dict[str, set[str]] = {}  # output stem -> its relative paths
        try:
            text = (self.out / OUTPUT_LEDGER).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            text = ""
        self._cut_short = bool(text) and not text.endswith("\n")  # killed mid-line: end that line first
        lines = text.splitlines()
        for line in lines:
            try:
                entry = json.loads(line)
            except (ValueError, RecursionError):
                continue  # a line cut short by a kill: it vouches for nothing
            if isinstance(entry, dict) and isinstance(entry.get("path"), str):
                self._remember(entry)
        if len(lines) > 2 * len(self._files) + 1000:  # re-runs append: keep the file to what is still true
            from kdlandmarks.fileio import atomic_write_text

            atomic_write_text(self.out / OUTPUT_LEDGER, "".join(json.dumps(e) + "\n" for e in self._files.values()))
            self._cut_short = False

    def _remember(self, entry: dict[str, Any]) -> None:
        name = entry["path"]
        old = self._files.pop(name, None)
        if old is not None:
            self._stems.get(old.get("stem"), set()).discard(name)
        if not entry.get("removed"):
            self._files[name] = entry
            self._stems.setdefault(entry.get("stem"), set()).add(name)

    def _key(self, path: Path) -> str:
        return path.relative_to(self.out).as_posix()

    def owns(self, path: Path) -> bool:
        """Whether `path` is a file this project wrote and nobody changed since."""
        entry = self._files.get(self._key(path))
        try:
            st = path.lstat()
        except OSError:
            return False
        return entry is not None and entry.get("size") == st.st_size and entry.get("mtime_ns") == st.st_mtime_ns

    def target(self, path: Path) -> Path:
        """Where an output meant for `path` goes: `path` itself when it is free or ours, else the first free
        (or ours) `<stem>-<k><suffix>` beside it. An input of the run is never a target."""
        candidate = _first_free(path, lambda c: c.resolve() in self.inputs or (os.path.lexists(c) and not self.owns(c)))
        if candidate != path:
            self.beside.append((path, candidate))
        return candidate

    def _record(self, entry: dict[str, Any]) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / OUTPUT_LEDGER, "a", encoding="utf-8") as f:  # one short line: appended whole
            f.write(("\n" if self._cut_short else "") + json.dumps(entry) + "\n")
        self._cut_short = False

    def wrote(self, path: Path, stem: str) -> None:
        """Record a file just written for the input of output stem `stem`."""
        st = path.stat()
        entry = {"path": self._key(path), "stem": stem, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        self._remember(entry)
        self._record(entry)

    def remove_stale(self, stem: str, keep: set[Path]) -> None:
        """Remove this project's earlier STALE_SUFFIXES outputs of `stem` that are not in `keep`."""
        for name in sorted(self._stems.get(stem, ())):
            path = self.out / name
            if path in keep or path.suffix not in STALE_SUFFIXES or path.resolve() in self.inputs or not self.owns(path):
                continue
            path.unlink()
            entry = {"path": name, "removed": True}
            self._remember(entry)
            self._record(entry)


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------

def pixel_limit(megapixels: float | None) -> int | None:
    """The pixel count `max_megapixels` allows (None or 0: no limit); ConfigError for NaN, infinity or a
    negative number, which would otherwise lift the limit without saying so."""
    if megapixels is None or megapixels == 0:
        return None
    if not (isinstance(megapixels, (int, float)) and math.isfinite(megapixels) and megapixels > 0):
        raise ConfigError(f"{{max_megapixels}} must be a number > 0 (0: no limit), got {megapixels!r}",
                          parameters=("max_megapixels",))
    return int(megapixels * 1e6)


@dataclass
class RunOptions:
    """What predict_paths does with its inputs (and predict_images / predict_video with theirs).

    formats: "json,pts" or a set of them; draw: also write drawings; boxes: face boxes instead of the face
    detector (see parse_boxes), of the convention box_source; smoothing (video): True (video's
    DEFAULT_SMOOTHING), False/None (off) or a SmoothingOptions; batch_size: images per network batch (and
    of the loaded detector); max_megapixels: refuse larger images and video frames (None or 0: no limit).
    """

    formats: Any = field(default_factory=lambda: {"json"})
    draw: bool = False
    boxes: Any = None
    box_source: str | None = None
    smoothing: Any = True
    batch_size: int = 16
    max_megapixels: float | None = 50.0
    progress: bool = True

    def checked(self) -> "RunOptions":
        """A copy with the formats as a set and the boxes parsed; ConfigError/DataError for bad values."""
        if int(self.batch_size) < 1:
            raise ConfigError(f"{{batch_size}} must be at least 1, got {self.batch_size}", parameters=("batch_size",))
        pixel_limit(self.max_megapixels)
        return replace(self, formats=parse_formats(self.formats), boxes=parse_boxes(self.boxes),
                       batch_size=int(self.batch_size))


@dataclass
class LoadOptions:
    """How predict_paths loads its LandmarkDetector when it is given none: model (a shipped name, a model
    file or an .onnx; None: the default), device, backend, face_detector (a registry name or callable)
    and flip_test."""

    model: str | Path | None = None
    device: str = "cpu"
    backend: str | None = None
    face_detector: Any = "auto"
    flip_test: bool = False

    def load(self, batch_size: int) -> Any:
        from kdlandmarks.inference.detector import LandmarkDetector

        return LandmarkDetector.from_pretrained(self.model, device=self.device, backend=self.backend,
                                                detector=self.face_detector, batch_size=batch_size,
                                                flip_test=self.flip_test)


@dataclass
class ImageRun:
    """What the images of one run share: the output folder's ledger, the fields every .json carries (meta),
    and the inputs skipped so far (errors; each also goes to on_skip when the run has more than one image)."""

    ledger: OutputLedger
    meta: dict[str, Any] = field(default_factory=dict)
    errors: list[Exception] = field(default_factory=list)
    on_skip: Callable[[Exception], None] | None = None

    def write(self, path: Path, stem: str, size: tuple[int, int], image: Any, faces: list,
              options: RunOptions) -> None:
        """One image's outputs (options.formats, drawn with options.draw) under ledger.out, each where
        ledger.target puts it. A re-run replaces the whole set: this project's earlier .json / .pts files of
        the image that this run does not write again are removed (fewer faces, another format). `image`
        (full size) is needed only for drawing."""
        from kdlandmarks.data.datasets.pts import write_pts
        from kdlandmarks.fileio import atomic_write_bytes, atomic_write_json

        ledger = self.ledger
        base = ledger.out / stem
        written: set[Path] = set()

        def put(name: str, writer: Callable[[Path], Any]) -> None:
            target = ledger.target(base.with_name(name))
            writer(target)
            ledger.wrote(target, stem)  # recorded at once: a kill later on leaves no file unvouched for
            written.add(target)

        if "json" in options.formats:
            record = {"image": str(path), "width": int(size[0]), "height": int(size[1]), **self.meta,
                      "faces": [f.to_dict() for f in faces]}
            if not faces:
                record["reason"] = NO_FACE
            put(base.name + ".json", lambda target: atomic_write_json(target, record))
        if "pts" in options.formats:
            for i, face in enumerate(faces):
                put(f"{base.name}_{i}.pts", lambda target, points=face.landmarks: write_pts(target, points))
        if options.draw:
            import cv2

            from kdlandmarks.inference.detector import draw_faces

            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(draw_faces(image, faces), cv2.COLOR_RGB2BGR))
            if ok:
                put(base.name + "_landmarks.jpg",
                    lambda target: atomic_write_bytes(target, mark_drawing(buf.tobytes())))
        ledger.remove_stale(stem, written)


def predict_images(detector: Any, items: list[tuple[Path, str]], run: ImageRun, options: RunOptions,
                   boxes: Any) -> tuple[int, int, int]:
    """Images in batches, written by `run`; returns (done, faces, images without a face). Bad files go to
    run.errors (and to run.on_skip when there is more than one image).

    Each image is checked on its own (size from its header, decoding, its boxes entry) and skipped by
    name when bad. Its faces are cropped as soon as it is read, and the full-size image is freed then
    (kept only for drawing, up to DRAW_KEEP_PIXELS per batch), so memory does not grow with the batch.
    """
    from tqdm import tqdm

    from kdlandmarks.data.datasets.record import read_image

    max_pixels = pixel_limit(options.max_megapixels)
    done = faces_total = empty = 0
    bar = tqdm(total=len(items), desc="images", unit="img",
               disable=None if (len(items) > 1 and options.progress) else True)
    pending: list[tuple[Path, str, Any, tuple[int, int], Any]] = []  # path, stem, FaceCrops, (w, h), image

    def run_batch() -> None:
        nonlocal done, faces_total, empty
        results = detector.faces_from_crops([item[2] for item in pending])
        for (path, stem, _, size, image), faces in zip(pending, results):
            run.write(path, stem, size, image, faces, options)
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
            run.errors.append(exc)
            if len(items) > 1 and run.on_skip is not None:
                run.on_skip(exc)
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
    """One video, tracked frame by frame (one decoded frame in memory at a time): per-frame JSON lines
    (+ annotated mp4 when drawing); returns (frames, faces). Videos with frames over the
    max_megapixels limit are refused (DataError) before any frame is decoded."""
    from tqdm import tqdm

    from kdlandmarks.fileio import atomic_path
    from kdlandmarks.inference.tracking import LandmarkTracker, track_frames
    from kdlandmarks.inference.video import VideoStream

    smoothing = _video_smoothing(options.smoothing)
    with VideoStream(path, pixel_limit(options.max_megapixels)) as stream:
        tracker = LandmarkTracker(detector, smoothing=smoothing, boxes=boxes_for(boxes, path, stem),
                                  box_source=options.box_source, fps=stream.fps)
        out.mkdir(parents=True, exist_ok=True)
        lines_path = _not_an_input(out / f"{stem}.jsonl", inputs or set())
        video_path = _not_an_input(out / f"{stem}_landmarks.mp4", inputs or set())
        header = {"video": str(path), "fps": stream.fps, **meta, "smoothed": smoothing is not None,
                  **({"smoothing": smoothing.to_dict()} if smoothing is not None else {})}
        frames = faces_total = 0
        # Both outputs appear only once the whole video is done; the mp4 (when drawing) is replaced first.
        with tqdm(total=stream.total, desc=path.name, unit="frame", disable=None if options.progress else True) as bar, \
                atomic_path(lines_path) as tmp_lines, \
                (atomic_path(video_path) if options.draw else nullcontext()) as tmp_video, \
                _DrawnVideo(tmp_video, video_path, stream.fps) as drawn, open(tmp_lines, "w") as lines:
            lines.write(json.dumps(header) + "\n")
            for frame in track_frames(stream, tracker):
                lines.write(json.dumps(frame.to_dict()) + "\n")
                drawn.add(frame)
                frames += 1
                faces_total += len(frame.faces)
                bar.update(1)
    return frames, faces_total


def _video_smoothing(smoothing: Any) -> Any:
    """RunOptions.smoothing as a SmoothingOptions, or None for off."""
    from kdlandmarks.inference.video import DEFAULT_SMOOTHING

    if smoothing is True:
        return DEFAULT_SMOOTHING
    return smoothing or None


class _DrawnVideo:
    """The annotated mp4 of a video run, written frame by frame to `tmp` (nothing when tmp is None)."""

    def __init__(self, tmp: Path | None, target: Path, fps: float) -> None:
        self.tmp, self.target, self.fps, self.writer = tmp, target, fps, None

    def add(self, frame: Any) -> None:
        import cv2

        from kdlandmarks.inference.detector import draw_faces

        if self.tmp is None:
            return
        if self.writer is None:
            h, w = frame.image.shape[:2]
            self.writer = cv2.VideoWriter(str(self.tmp), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
            if not self.writer.isOpened():
                raise DataError(f"{self.target}: cannot write an mp4 video here (no mp4v encoder)")
        drawn = draw_faces(frame.image, frame.faces, frame.tracks)
        self.writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR, dst=drawn))

    def __enter__(self) -> "_DrawnVideo":
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.writer is not None:
            self.writer.release()  # finishes the mp4 before atomic_path moves it into place


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
    drawings: list[Path] = field(default_factory=list)  # pictures in input folders left out as earlier drawings
    beside: list[tuple[Path, Path]] = field(default_factory=list)  # (wanted, written): a file not ours was there

    def describe(self) -> str:
        """One line, as `kdlandmarks predict` prints it."""
        parts = []
        if self.images:
            parts.append(f"{self.images_done}/{self.images} images"
                         + (f" ({self.images_without_face} without a face)" if self.images_without_face else ""))
        if self.videos:
            parts.append(f"{self.videos_done}/{self.videos} videos ({self.frames} frames)")
        bad = f", {len(self.errors)} skipped" if self.errors else ""
        if self.drawings:
            bad += (f", {len(self.drawings)} earlier drawing(s) not read (they carry the "
                    f"'{DRAWING_MARK.decode()}' mark, e.g. {self.drawings[0]})")
        if self.beside:
            wanted, written = self.beside[0]
            bad += (f", {len(self.beside)} output(s) written beside a file not written by kdlandmarks "
                    f"(e.g. {written.name} beside {wanted.name}, which was left as it was)")
        return f"predicted {self.faces} faces in {', '.join(parts)}{bad}; results in {self.out}"


def predict_paths(paths: Sequence[str | Path], out: str | Path = "predictions", options: RunOptions | None = None,
                  *, detector: Any = None, load: LoadOptions | None = None,
                  on_skip: Callable[[Exception], None] | None = None) -> PredictSummary:
    """Find faces and their landmarks in image files, folders of images and video files, and write the
    output files under `out` (see the module docstring). Returns a PredictSummary.

        predict_paths(["photos/", "clip.mp4"], "out", RunOptions(formats="json,pts", draw=True))

    options: a RunOptions (default: JSON only, the face detector). detector: a LandmarkDetector to use;
    else one is loaded as `load` (a LoadOptions; default: the default model) says.
    Bad inputs are skipped (passed to `on_skip` when there are several) and listed in summary.errors; when
    none could be processed, the single input's error (or a DataError) is raised. Bad paths and options
    fail before the model loads.
    """
    from kdlandmarks.fileio import output_folder

    options = (options or RunOptions()).checked()
    load = load or LoadOptions()
    boxes, box_source, model = options.boxes, options.box_source, load.model
    drawings: list[Path] = []
    items = collect_inputs(paths, drawings)  # bad paths fail before the model loads
    output_folder(out, create=False)  # out taken by a file: one line now, not after the first batch
    inputs = {p.resolve() for p, _, _ in items}  # never overwritten, whatever out is
    if detector is None:
        detector = load.load(options.batch_size)
    meta = _run_meta(detector, model, boxes, box_source)
    out = Path(out)
    summary = PredictSummary(out, drawings=drawings)
    images = [(p, s) for p, s, k in items if k == "image"]
    videos = [(p, s) for p, s, k in items if k == "video"]
    summary.images, summary.videos = len(images), len(videos)
    if images:
        ledger = OutputLedger(out, inputs)
        summary.beside = ledger.beside
        summary.images_done, summary.faces, summary.images_without_face = predict_images(
            detector, images, ImageRun(ledger, meta, summary.errors, on_skip), options, boxes)
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
            raise ConfigError("{box_source} names the convention of {boxes}: give {boxes} too",
                              parameters=("box_source", "boxes"))
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
