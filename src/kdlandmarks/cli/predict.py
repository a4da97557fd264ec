"""`kdlandmarks predict`: landmarks for the faces in image files, folders of images and video files."""
from __future__ import annotations

import argparse
import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FORMATS = ("json", "pts")
NO_FACE = "no face detected"


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "predict", help="predict landmarks on images, folders and videos",
        description="Find faces and predict their landmarks. Images: writes <stem>.json (faces with box, score, "
                    "landmarks in image pixels) and/or <stem>_<face>.pts, and with --draw <stem>_landmarks.jpg. "
                    "Folders are searched recursively for images; their layout is kept under --out. Videos "
                    f"({', '.join(VIDEO_SUFFIXES)}): writes <stem>.jsonl (one line per frame, faces with track ids) "
                    "and with --draw <stem>_landmarks.mp4. Bad files are reported and skipped.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders of images, or video files")
    p.add_argument("--model", default=None, help="shipped model name, model file (.pt/.ckpt) or exported .onnx "
                                                  "(default: the shipped 300-W student)")
    p.add_argument("--out", default="predictions", help="output folder (default: ./predictions)")
    p.add_argument("--format", default="json", help="comma-separated output formats for images: json, pts (default json)")
    p.add_argument("--draw", action="store_true", help="also write pictures (videos) with the landmarks drawn")
    p.add_argument("--backend", choices=("torch", "onnx"), default=None, help="default: from the model file type")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--detector", default="auto",
                   help="face detector: auto (best installed), retinaface, haar, or module:callable (default auto)")
    p.add_argument("--boxes", default=None,
                   help="face boxes instead of a detector: 'x0,y0,x1,y1[;x0,y0,x1,y1...]' for every image/frame, "
                        "or a .json file mapping image file names to [[x0,y0,x1,y1], ...] (others are detected); "
                        "boxes are cropped like boxes of --detector (auto: retinaface)")
    p.add_argument("--smooth", action=argparse.BooleanOptionalAction, default=True,
                   help="video: track faces and smooth landmarks over time with a One-Euro filter (default on)")
    p.add_argument("--batch-size", type=int, default=16, help="images or frames per network batch (default 16)")
    p.set_defaults(func=run)


# --------------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------------

def parse_formats(text: str) -> set[str]:
    from ..errors import ConfigError

    formats = {f.strip().lower() for f in text.split(",") if f.strip()}
    bad = formats - set(FORMATS)
    if bad or not formats:
        raise ConfigError(f"--format {text!r}: choose from {', '.join(FORMATS)} (comma-separated)")
    return formats


def parse_boxes(text: str | None) -> Any:
    """None, a list of boxes for every input, or a dict file name -> boxes (from a .json file)."""
    from ..errors import ConfigError, DataError

    if text is None:
        return None
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


def collect_inputs(paths: list[str]) -> list[tuple[Path, str, str]]:
    """(file, output stem relative to --out, kind 'image'|'video') for every input; DataError for a bad PATH."""
    from ..errors import DataError

    items: list[tuple[Path, str, str]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
                           and not any(part.startswith(".") for part in p.relative_to(path).parts))
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


# --------------------------------------------------------------------------------------------------
# Outputs
# --------------------------------------------------------------------------------------------------

def _write_image_result(path: Path, stem: str, out: Path, image: Any, faces: list, formats: set[str],
                        draw: bool, meta: dict[str, Any]) -> None:
    from ..datasets.pts import write_pts
    from ..fileio import atomic_write_bytes, atomic_write_json

    base = out / stem
    if "json" in formats:
        record = {"image": str(path), "width": int(image.shape[1]), "height": int(image.shape[0]), **meta,
                  "faces": [f.to_dict() for f in faces]}
        if not faces:
            record["reason"] = NO_FACE
        atomic_write_json(base.with_name(base.name + ".json"), record)
    if "pts" in formats:
        for i, face in enumerate(faces):
            write_pts(base.with_name(f"{base.name}_{i}.pts"), face.landmarks)
    if draw:
        import cv2

        from ..inference import draw_faces

        ok, buf = cv2.imencode(".jpg", cv2.cvtColor(draw_faces(image, faces), cv2.COLOR_RGB2BGR))
        if ok:
            atomic_write_bytes(base.with_name(base.name + "_landmarks.jpg"), buf.tobytes())


def _boxes_for(boxes: Any, path: Path, stem: str) -> Any:
    if isinstance(boxes, dict):
        for key in (stem, path.name, path.stem, str(path)):
            if key in boxes:
                return boxes[key]
        return None
    return boxes


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------

def _report(message: str) -> None:
    print(f"kdlandmarks: {message}", file=sys.stderr)


def predict_images(detector: Any, items: list[tuple[Path, str]], args: argparse.Namespace, out: Path,
                   formats: set[str], boxes: Any, meta: dict[str, Any], errors: list[Exception]) -> tuple[int, int, int]:
    """Images in batches; returns (done, faces, images without a face). Bad files go to `errors`."""
    from tqdm import tqdm

    from ..datasets.record import read_image
    from ..errors import KDLandmarksError

    done = faces_total = empty = 0
    bar = tqdm(total=len(items), desc="images", unit="img", disable=None if len(items) > 1 else True)
    for start in range(0, len(items), args.batch_size):
        chunk = []
        for path, stem in items[start:start + args.batch_size]:
            try:
                chunk.append((path, stem, read_image(path)))
            except KDLandmarksError as exc:
                errors.append(exc)
                if len(items) > 1:
                    bar.write(f"kdlandmarks: skipped {exc}", file=sys.stderr)
                bar.update(1)
        if not chunk:
            continue
        results = detector.detect_batch([c[2] for c in chunk], [_boxes_for(boxes, p, s) for p, s, _ in chunk])
        for (path, stem, image), faces in zip(chunk, results):
            _write_image_result(path, stem, out, image, faces, formats, args.draw, meta)
            done += 1
            faces_total += len(faces)
            empty += not faces
            bar.update(1)
    bar.close()
    return done, faces_total, empty


def predict_video(detector: Any, path: Path, stem: str, args: argparse.Namespace, out: Path, boxes: Any,
                  meta: dict[str, Any]) -> tuple[int, int]:
    """One video: per-frame JSON lines (+ annotated mp4 with --draw); returns (frames, faces)."""
    import cv2
    from tqdm import tqdm

    from ..errors import DataError
    from ..fileio import atomic_path
    from ..inference import draw_faces
    from ..video import LandmarkSmoother

    # FFmpeg's own log lines ("moov atom not found", ...) would come before our one-line error; quiet
    # unless the user set a level. Read by OpenCV when it first opens a video.
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise DataError(f"{path}: cannot open this video (corrupt or unsupported codec)")
    fps = cap.get(cv2.CAP_PROP_FPS)
    fps = fps if fps and 0 < fps < 1000 else 30.0
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    smoother = LandmarkSmoother(fps=fps) if args.smooth else None
    frame_boxes = _boxes_for(boxes, path, stem)
    out.mkdir(parents=True, exist_ok=True)
    lines_path = out / f"{stem}.jsonl"
    video_path = out / f"{stem}_landmarks.mp4"
    writer = None
    frames = faces_total = 0
    bar = tqdm(total=total, desc=path.name, unit="frame", disable=None)
    # Both outputs appear only once the whole video is done; the mp4 (with --draw) is replaced first.
    with atomic_path(lines_path) as tmp_lines, (atomic_path(video_path) if args.draw else nullcontext()) as tmp_video:
        try:
            with open(tmp_lines, "w") as lines:
                lines.write(json.dumps({"video": str(path), "fps": fps, **meta, "smoothed": bool(args.smooth)}) + "\n")
                while True:
                    batch = []
                    while len(batch) < args.batch_size:
                        ok, frame = cap.read()
                        if not ok:
                            break
                        batch.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                    if not batch:
                        break
                    results = detector.detect_batch(batch, [frame_boxes] * len(batch))
                    for image, faces in zip(batch, results):
                        t = frames / fps
                        tracked = smoother.update(faces, t) if smoother else [(None, f) for f in faces]
                        record = {"frame": frames, "time": round(t, 4),
                                  "faces": [{"track": tid, **f.to_dict()} for tid, f in tracked]}
                        if not faces:
                            record["reason"] = NO_FACE
                        lines.write(json.dumps(record) + "\n")
                        if tmp_video is not None:
                            if writer is None:
                                h, w = image.shape[:2]
                                writer = cv2.VideoWriter(str(tmp_video), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
                                if not writer.isOpened():
                                    raise DataError(f"{video_path}: cannot write an mp4 video here (no mp4v encoder)")
                            drawn = draw_faces(image, [f for _, f in tracked],
                                               [tid for tid, _ in tracked] if smoother else None)
                            writer.write(cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                        frames += 1
                        faces_total += len(faces)
                        bar.update(1)
            if frames == 0:
                raise DataError(f"{path}: no readable frames in this video")
        finally:
            bar.close()
            cap.release()
            if writer is not None:
                writer.release()  # finishes the mp4 before atomic_path moves it into place
    return frames, faces_total


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError, DataError

    if args.batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {args.batch_size}")
    formats = parse_formats(args.format)
    boxes = parse_boxes(args.boxes)
    items = collect_inputs(args.paths)  # bad paths fail before the model loads

    from ..inference import LandmarkDetector

    detector = LandmarkDetector.from_pretrained(args.model, device=args.device, backend=args.backend,
                                                detector=args.detector, batch_size=args.batch_size)
    if boxes is None or isinstance(boxes, dict):
        _ = detector.detector  # a missing detector is one error for the whole run, not one per file
    out = Path(args.out)
    source = detector.detector_name
    if boxes is not None:
        source = f"given boxes / {source}" if isinstance(boxes, dict) else "given boxes"
    meta = {"model": str(detector.model_path or args.model), "num_points": detector.num_points, "detector": source}
    errors: list[Exception] = []
    images = [(p, s) for p, s, k in items if k == "image"]
    videos = [(p, s) for p, s, k in items if k == "video"]
    done = faces = empty = 0
    if images:
        done, faces, empty = predict_images(detector, images, args, out, formats, boxes, meta, errors)
    frames = videos_done = 0
    for path, stem in videos:
        try:
            n, f = predict_video(detector, path, stem, args, out, boxes, meta)
        except DataError as exc:
            errors.append(exc)
            if len(items) > 1:
                _report(f"skipped {exc}")
            continue
        videos_done += 1
        frames += n
        faces += f
    if done + videos_done == 0:
        if len(items) == 1 and errors:
            raise errors[0]
        raise DataError(f"none of the {len(items)} inputs could be processed")
    parts = []
    if images:
        parts.append(f"{done}/{len(images)} images" + (f" ({empty} without a face)" if empty else ""))
    if videos:
        parts.append(f"{videos_done}/{len(videos)} videos ({frames} frames)")
    bad = f", {len(errors)} skipped" if errors else ""
    print(f"predicted {faces} faces in {', '.join(parts)}{bad}; results in {out}")
    return 0
