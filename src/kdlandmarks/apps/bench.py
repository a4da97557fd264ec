"""Speed benchmark on this machine: the whole per-face pipeline, the networks alone, and the peers.

Rows:
- the pipeline users run: ``LandmarkDetector.detect(photo, boxes=[box])`` per face with a given box (crop,
  network, landmarks back in image pixels) on real photos (LFPW test when a 300-W copy is found, else the
  bundled sample), on one face padded out to a 0.4 MP and to a 12 MP photo, and ten faces on the 12 MP photo;
- dlib's 68-point shape predictor on the same photos and boxes, and MediaPipe Face Mesh (tracking mode)
  and face_alignment, when those packages are importable (MediaPipe 0.10 needs numpy < 2: see the README's
  peers environment);
- the student network alone (torch, onnxruntime fp32, onnxruntime int8) and the teacher (torch,
  onnxruntime) at batch 1 and a larger batch for each input size, the student with flip test, and the face
  detector per photo.
Latency is the median over the timed repeats after warm-up; "best" is the fastest repeat (closest to an
unloaded machine).

On the default install (no torch, no onnx) the onnxruntime rows of the student's own .onnx file, its
flip-test rows, the pipeline and the detector are measured; torch, int8 quantisation, other input sizes and
the teacher need the `train` extra and are listed as skipped, with the pip command.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import os
import platform
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kdlandmarks.errors import KDLandmarksError, MissingExtraError
from kdlandmarks.extras import TRAIN_INSTALL, missing
from kdlandmarks.models.zoo import DEFAULT_MODEL as DEFAULT_STUDENT

DEFAULT_TEACHER = "resnet18"  # the shipped teachers' backbone
PAPER_INPUT_SIZE = 224
TARGET_MS_PER_FACE = 2.0  # student, onnxruntime fp32, batch 1, at the shipped input size
NEEDS_TRAIN = f"skipped: needs the training extra ({TRAIN_INSTALL})"
SMALL_PHOTO = (730, 548)  # about 0.4 MP
LARGE_PHOTO = (4000, 3000)  # 12 MP
LARGE_PHOTO_FACES = 10
PIPELINE = "pipeline: detect(), given box"


@dataclass
class BenchOptions:
    """What `kdlandmarks bench` measures, and for how long.

    model: a zoo name, a model file, an in-memory (model, ModelInfo) pair, or None for the default shipped
    student. teacher_arch: a backbone with random weights ("none" or None skips it). input_sizes: None for
    the student's and the paper's. threads: torch's and onnxruntime's intra-op threads (None: theirs).
    photos: a folder of .jpg + .pts faces for the pipeline and peer rows (None: LFPW test when a 300-W copy
    is found, else the bundled sample); max_photos: how many of them. The switches turn row groups off.
    """

    model: Any = None
    teacher_arch: str | None = DEFAULT_TEACHER
    input_sizes: Sequence[int] | None = None
    batches: Sequence[int] = (1, 32)
    repeats: int = 100
    threads: int | None = None
    budget_s: float = 5.0
    min_seconds: float = 2.0
    photos: str | Path | None = None
    max_photos: int = 50
    int8: bool = True
    flip_test: bool = True
    pipeline: bool = True
    detector: bool = True
    others: bool = True


@dataclass
class BenchRow:
    model: str
    runtime: str
    input_size: int | str
    batch: int
    ms_per_face: float | None = None  # median
    best_ms_per_face: float | None = None
    faces_per_s: float | None = None
    note: str = ""


@dataclass
class BenchReport:
    rows: list[BenchRow] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    student: str = ""
    targets: list[str] = field(default_factory=list)
    peak_rss_mib: float = 0.0

    def find(self, model: str, runtime: str, input_size: int | str, batch: int) -> BenchRow | None:
        return next((r for r in self.rows if r.model == model and r.runtime == runtime
                     and r.input_size == input_size and r.batch == batch), None)


@dataclass
class _Network:
    """A network to time: `net` (torch; None on the default install) or `onnx_file` (an exported model, fp32)."""

    name: str
    net: Any
    info: Any
    onnx_file: Path | None = None
    int8_file: Path | None = None  # a shipped student's own int8 export (at its input size)


@dataclass
class _Session:
    """One bench run's shared state: its options, timer, scratch folder and rows."""

    options: BenchOptions
    timer: Callable[..., tuple[float, float]]  # time_call with the run's repeats, budget and minimum time bound
    workdir: Path
    rows: list[BenchRow]
    say: Callable[[str], None]


@dataclass
class _Face:
    """A photo and one face's box (x0, y0, x1, y1) on it (the tight box around its landmarks)."""

    image: np.ndarray
    box: np.ndarray


def _has_torch() -> bool:
    return not missing(["torch", "timm"])


def machine_info() -> dict[str, Any]:
    import onnxruntime as ort

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    torch_version, torch_threads = None, None
    if _has_torch():
        import torch

        torch_version, torch_threads = torch.__version__, torch.get_num_threads()
    return {"cpu": cpu, "cores": os.cpu_count(), "usable_cores": usable,
            "load_avg_1min": round(load[0], 2) if load else None, "python": platform.python_version(),
            "torch": torch_version, "torch_threads": torch_threads,
            "onnxruntime": ort.__version__, "ort_providers": ",".join(ort.get_available_providers())}


def time_call(fn: Callable[[], Any], repeats: int, warmup: int = 2, budget_s: float = 5.0,
              min_seconds: float = 2.0) -> tuple[float, float]:
    """(median, best) seconds of `fn` after `warmup` calls.

    It runs at least `repeats` times and, for fast calls, keeps sampling for `min_seconds`: on a shared
    machine other tenants' bursts last up to a second or so, and a median over a 0.2 s window can land
    inside one. It stops early past `budget_s`, keeping at least 3 samples (the teacher at a large batch).
    """
    for _ in range(max(warmup, 0)):
        fn()
    times: list[float] = []
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        elapsed = time.perf_counter() - start
        if len(times) >= 3 and elapsed > budget_s:
            break
        if len(times) >= max(repeats, 1) and elapsed >= min_seconds:
            break
    return float(np.median(times)), float(np.min(times))


# time_call with the run's repeats, budget and minimum sampling time bound: (fn, warmup=...) -> (median, best)
Timer = Callable[..., tuple[float, float]]


def _row(model: str, runtime: str, size: int | str, batch: int, median: float, best: float, note: str = "") -> BenchRow:
    return BenchRow(model, runtime, size, batch, median * 1e3 / batch, best * 1e3 / batch, batch / median, note)


def _onnx_student(model: str | Path | None) -> tuple[_Network, str]:
    """The student as an ONNX file, run without torch: an exported .onnx given as the model, or a shipped
    model's own export (the default one for None); and its label."""
    from kdlandmarks.inference.runtime import OnnxRegressor
    from kdlandmarks.models.zoo import SHIPPED, resolve_model

    name = DEFAULT_STUDENT if model is None else model
    if str(name) in SHIPPED:
        path = resolve_model(f"{name}:fp32", backend="onnx")
        label = f"shipped {name} ({{arch}}, {path})"
    else:
        path = resolve_model(name)
        if path.suffix.lower() != ".onnx":
            raise MissingExtraError(f"kdlandmarks bench with a PyTorch model file ({path.name}) needs the training "
                                    f"extra (torch is not installed): {TRAIN_INSTALL}; or give an exported .onnx")
        label = f"{{arch}} from {path}"
    info = OnnxRegressor(path).info
    return _Network("student", None, info, path, _shipped_int8(name)), label.format(arch=info.arch)


def _shipped_int8(model: Any) -> Path | None:
    """A shipped student's int8 export (None for anything else), timed as it is rather than quantised anew."""
    from kdlandmarks.models.zoo import SHIPPED, has_onnx, resolve_model

    if not isinstance(model, str) or model not in SHIPPED or not has_onnx(model):
        return None
    return resolve_model(f"{model}:int8", backend="onnx")


def _student(model: Any) -> tuple[_Network, str]:
    """The student to time and its label: an exported .onnx (or any model without torch) as it is, else
    the torch network of the given model or the default shipped student."""
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx") or not _has_torch():
        return _onnx_student(model)
    from kdlandmarks.export.onnx import resolve_network

    name = DEFAULT_STUDENT if model is None else model
    net, info, label = resolve_network(name)
    network = _Network("student", net, info, int8_file=_shipped_int8(name))
    return network, (f"shipped {name} ({info.arch}, {label})" if network.int8_file else f"{info.arch} from {label}")


def _onnx_for(session: _Session, network: _Network, size: int, crops: list[np.ndarray]) -> Path | None:
    """The network's ONNX file at `size` px: exported now from torch, or its own file; None (and a
    skipped row) when there is none."""
    name, info = network.name, network.info
    if network.net is None:
        torch_ok = _has_torch()
        session.rows.append(BenchRow(name, "torch", size, 0,
                                     note="skipped: the model is an exported .onnx" if torch_ok else NEEDS_TRAIN))
        if network.onnx_file is not None and size == info.input_size:
            return network.onnx_file
        why = (f"the .onnx file is exported at {info.input_size} px" if torch_ok else
               f"exporting at {size} px needs the training extra ({TRAIN_INSTALL})")
        session.rows.append(BenchRow(name, "onnxruntime", size, 0, note=f"skipped: {why}"))
        return None
    import torch

    from kdlandmarks.export.onnx import export_onnx

    rng = np.random.default_rng(0)
    with torch.inference_mode():
        for b in session.options.batches:
            x = torch.from_numpy(rng.random((b, 3, size, size), dtype=np.float32))
            session.rows.append(_row(name, "torch", size, b, *session.timer(lambda: network.net(x))))
    path = session.workdir / f"{name.replace(' ', '_')}_{size}.onnx"
    try:
        export_onnx((network.net, dataclasses.replace(info, input_size=size)), path, check_images=crops[:2])
    except KDLandmarksError as exc:
        session.rows.append(BenchRow(name, "onnxruntime", size, 0, note=f"skipped: {exc}"))
        return None
    return path


def _int8_runner(session: _Session, network: _Network, onnx_path: Path, size: int,
                 crops: list[np.ndarray]) -> tuple[str, Any, str] | None:
    """("onnxruntime int8", runner, note) for a shipped student's int8 export, else the network quantised now;
    None with a skipped row when it cannot be."""
    from kdlandmarks.inference.runtime import OnnxRegressor

    name, threads = network.name, session.options.threads
    if network.int8_file is not None and size == network.info.input_size:
        runner = OnnxRegressor(network.int8_file, threads=threads)
        return "onnxruntime int8", runner, f"shipped {network.int8_file.name}"
    if missing(["onnx"]):  # quantising needs the onnx package (train extra)
        session.rows.append(BenchRow(name, "onnxruntime int8", size, 0, note=NEEDS_TRAIN))
        return None
    from kdlandmarks.export.onnx import quantize_int8

    q_path = session.workdir / f"{name.replace(' ', '_')}_{size}_int8.onnx"
    try:
        quantize_int8(onnx_path, q_path, crops)
    except KDLandmarksError as exc:
        session.rows.append(BenchRow(name, "onnxruntime int8", size, 0, note=f"skipped: {exc}"))
        return None
    note = f"static QDQ, fp32 head, {len(crops)} calibration faces"
    return "onnxruntime int8", OnnxRegressor(q_path, threads=threads), note


def _bench_network(session: _Session, network: _Network, size: int, crops: list[np.ndarray],
                   int8: bool, flip_test: bool) -> None:
    """Rows of one network at one input size: torch, then its ONNX export on onnxruntime (fp32, int8), then
    with flip test. Without a torch network (the default install) the rows of its own .onnx file at its
    input size; torch and int8 rows are listed as skipped, with the pip command."""
    from kdlandmarks.inference.runtime import OnnxRegressor

    onnx_path = _onnx_for(session, network, size, crops)
    if onnx_path is None:
        return
    runner = OnnxRegressor(onnx_path, threads=session.options.threads)
    runners = [("onnxruntime int8" if runner.quantization else "onnxruntime", runner, "")]
    if int8 and runner.quantization is None:
        quantised = _int8_runner(session, network, onnx_path, size, crops)
        runners += [quantised] if quantised else []
    rng = np.random.default_rng(0)
    inputs = {b: rng.random((b, 3, size, size), dtype=np.float32) for b in session.options.batches}
    for runtime, run, note in runners:
        for b in session.options.batches:
            x = inputs[b]
            session.rows.append(_row(network.name, runtime, size, b, *session.timer(lambda: run(x)), note))
    if flip_test:
        _bench_flip_test(session.rows, network.name, dataclasses.replace(network.info, input_size=size), runners,
                         inputs, session.options.batches, session.timer)


def _bench_flip_test(rows: list[BenchRow], name: str, info: Any, runners: Sequence[tuple[str, Any, str]],
                     inputs: dict[int, np.ndarray], batches: Sequence[int], timer: Timer) -> None:
    """Rows "<name> (flip test)" per onnxruntime runner (fp32, int8) and batch: ms per face of the path
    LandmarkDetector(flip_test=True) runs (data.flip.run_flip_test): the batch and its mirrors in one
    network call of 2B images, decoding, mirroring back, relabelling and averaging."""
    from kdlandmarks.data.codec import LandmarkCodec
    from kdlandmarks.data.flip import flip_scheme, run_flip_test

    label = f"{name} (flip test)"
    try:
        scheme = flip_scheme(info)
    except KDLandmarksError as exc:
        rows.append(BenchRow(label, "onnxruntime", info.input_size, 0, note=f"skipped: {exc}"))
        return
    codec = LandmarkCodec(info.input_size, info.space)
    for runtime, runner, note in runners:
        for b in batches:
            x = inputs[b]
            extra = f"face + mirror in one batch of {2 * b}" + (f"; {note}" if note else "")
            rows.append(_row(label, runtime, info.input_size, b,
                             *timer(lambda: run_flip_test(runner, x, codec, scheme)), extra))


def _bench_detector(rows: list[BenchRow], photo: np.ndarray | None, timer: Timer) -> None:
    from kdlandmarks.inference.detection import create_detector

    if photo is None:
        rows.append(BenchRow("face detector", "-", "-", 1, note="skipped: no real photo found"))
        return
    try:
        detector = create_detector("auto")
        found = detector.detect(photo)
        median, best = timer(lambda: detector.detect(photo), warmup=1)
    except Exception as exc:  # any detector backend failure is reported, not fatal
        rows.append(BenchRow("face detector", "-", "-", 1, note=f"skipped: {_reason(exc)}"))
        return
    name = getattr(detector, "name", type(detector).__name__)
    h, w = photo.shape[:2]
    rows.append(_row(f"face detector ({name})", "-", f"{w}x{h}", 1, median, best,
                     f"per photo, {len(found)} face(s) found"))


def _reason(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:160]


def _photo_faces(folder: str | Path | None, limit: int) -> list[_Face]:
    """Up to `limit` real photos with one face's landmark box each: `folder` (.jpg + .pts), else the full
    LFPW test set when a 300-W copy is found, else the bundled sample."""
    from kdlandmarks.data.crop import landmark_box
    from kdlandmarks.data.datasets.pts import read_pts
    from kdlandmarks.data.datasets.record import read_image
    from kdlandmarks.data.sample_faces import face_folders, full_lfpw_test, sample_folder

    roots = [Path(folder)] if folder is not None else [full_lfpw_test(), sample_folder()]
    for root in roots:
        faces = []
        for pts in (p for f in face_folders(root) for p in sorted(f.glob("*.pts"))):
            image_path = next((p for p in (pts.with_suffix(".jpg"), pts.with_suffix(".png")) if p.is_file()), None)
            if image_path is None:
                continue
            try:
                faces.append(_Face(read_image(image_path), landmark_box(read_pts(pts))))
            except KDLandmarksError:
                continue
            if len(faces) >= limit:
                break
        if faces:
            return faces
    return []


def tiled_photo(face: _Face, size: tuple[int, int], count: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """A (width, height) photo made by tiling a real one (each tile a whole copy: the face keeps its size),
    and the face's box in the first `count` tiles, (count, 4)."""
    h, w = face.image.shape[:2]
    reps = (-(-size[1] // h), -(-size[0] // w), 1)
    photo = np.ascontiguousarray(np.tile(face.image, reps)[:size[1], :size[0]])
    tiles = [(tx, ty) for ty in range(size[1] // h) for tx in range(size[0] // w)]
    boxes = np.array([face.box + [tx * w, ty * h, tx * w, ty * h] for tx, ty in tiles[:count]])
    return photo, boxes


def _pipeline_detector(model: Any, threads: int | None) -> Any:
    """The LandmarkDetector users get for the benchmarked model (no face detector: boxes are given), with
    `threads` onnxruntime threads when given."""
    from kdlandmarks.inference.detector import LandmarkDetector
    from kdlandmarks.inference.runtime import OnnxRegressor

    if isinstance(model, tuple):
        return LandmarkDetector.from_model(*model, detector=lambda image: [])
    detector = LandmarkDetector(model, detector=lambda image: [])
    if threads and detector.backend == "onnx":
        detector.set_network(OnnxRegressor(detector.model_path, threads=threads))
    return detector


def _pipeline_cases(faces: list[_Face]) -> list[tuple[str, list[tuple[np.ndarray, np.ndarray]]]]:
    """(label, [(photo, boxes)]) for each pipeline row: the real photos in turn, one face padded (tiled)
    out to about 0.4 MP and to 12 MP, and ten faces on the 12 MP photo."""
    pixels = np.median([f.image.shape[0] * f.image.shape[1] for f in faces]) / 1e6
    small, small_box = tiled_photo(faces[0], SMALL_PHOTO)
    large, large_boxes = tiled_photo(faces[0], LARGE_PHOTO, LARGE_PHOTO_FACES)
    return [(f"{len(faces)} photos, ~{pixels:.2f} MP", [(f.image, f.box[None]) for f in faces]),
            ("1 face, {}x{} (0.4 MP)".format(*SMALL_PHOTO), [(small, small_box)]),
            ("1 face, {}x{} (12 MP)".format(*LARGE_PHOTO), [(large, large_boxes[:1])]),
            (f"{len(large_boxes)} faces, 12 MP", [(large, large_boxes)])]


def _bench_pipeline(session: _Session, faces: list[_Face]) -> None:
    """Rows "pipeline: detect(), given box": ms per face of LandmarkDetector.detect(photo, boxes) as users
    call it (crop, network, landmarks in image pixels), for each case of _pipeline_cases."""
    try:
        detector = _pipeline_detector(session.options.model, session.options.threads)
    except KDLandmarksError as exc:
        session.rows.append(BenchRow(PIPELINE, "-", "-", 1, note=f"skipped: {exc}"))
        return
    runtime = detector.backend + (" int8" if detector.quantization else "")
    for label, calls in _pipeline_cases(faces):
        per_call = len(calls[0][1])
        cycle = itertools.cycle(calls)

        def one_call() -> None:
            photo, boxes = next(cycle)
            detector.detect(photo, boxes=boxes, box_source="landmarks")

        session.rows.append(_row(PIPELINE, runtime, label, per_call, *session.timer(one_call),
                                 "per face: crop + network + points in the photo"))


def _dlib_predictor() -> Any:
    """dlib's 68-point shape predictor: $KDLANDMARKS_DLIB_PREDICTOR, else face-recognition-models' copy."""
    import dlib

    model = os.environ.get("KDLANDMARKS_DLIB_PREDICTOR")
    if model is None:
        try:
            import face_recognition_models

            model = face_recognition_models.pose_predictor_model_location()
        except ImportError:
            model = "shape_predictor_68_face_landmarks.dat"
    if not Path(model).is_file():
        raise FileNotFoundError(f"no predictor file {model} (pip install face-recognition-models, or set "
                                "KDLANDMARKS_DLIB_PREDICTOR)")
    return dlib.shape_predictor(str(model))


def _bench_dlib(session: _Session, faces: list[_Face]) -> None:
    """dlib 68-point rows on the pipeline's photos and boxes: the real photos, and one face on 12 MP."""
    import dlib

    predictor = _dlib_predictor()

    def calls_for(items: list[tuple[np.ndarray, np.ndarray]]) -> Callable[[], Any]:
        cycle = itertools.cycle([(image, dlib.rectangle(*(int(round(v)) for v in box))) for image, box in items])
        return lambda: predictor(*next(cycle))

    large, large_box = tiled_photo(faces[0], LARGE_PHOTO)
    pixels = np.median([f.image.shape[0] * f.image.shape[1] for f in faces]) / 1e6
    for label, items in ((f"{len(faces)} photos, ~{pixels:.2f} MP", [(f.image, f.box) for f in faces]),
                         ("1 face, {}x{} (12 MP)".format(*LARGE_PHOTO), [(large, large_box[0])])):
        session.rows.append(_row("dlib 68-pt", "-", label, 1, *session.timer(calls_for(items), warmup=1),
                                 "landmarks only (given box)"))


def _bench_mediapipe(session: _Session, faces: list[_Face]) -> None:
    """MediaPipe Face Mesh on the first photo's face region, in tracking mode: after the first frame only
    its landmark network runs (its fastest use; it takes no box)."""
    import mediapipe as mp

    x0, y0, x1, y1 = (int(round(v)) for v in faces[0].box)
    mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1)
    side = max(x1 - x0, y1 - y0) // 4  # some context around the landmarks, as a face detector's box has
    face = np.ascontiguousarray(faces[0].image[max(y0 - side, 0):y1 + side, max(x0 - side, 0):x1 + side])
    session.rows.append(_row("mediapipe face mesh", "-", f"{face.shape[1]}x{face.shape[0]} face region", 1,
                             *session.timer(lambda: mesh.process(face), warmup=1), "tracking mode, one face"))


def _bench_face_alignment(session: _Session, faces: list[_Face]) -> None:
    import face_alignment

    kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
    fa = face_alignment.FaceAlignment(kind, device="cpu")
    face = faces[0]
    session.rows.append(_row("face_alignment FAN", "-", "1 photo", 1,
                             *session.timer(lambda: fa.get_landmarks(face.image, detected_faces=[face.box]),
                                            warmup=1), "landmarks only (given box)"))


def _bench_others(session: _Session, faces: list[_Face]) -> None:
    """dlib / mediapipe / face_alignment rows on the same faces, each when importable (else a skipped row)."""
    for name, bench in (("dlib 68-pt", _bench_dlib), ("mediapipe face mesh", _bench_mediapipe),
                        ("face_alignment FAN", _bench_face_alignment)):
        try:
            bench(session, faces)
        except ImportError:
            session.rows.append(BenchRow(name, "-", "-", 1, note="skipped: not installed"))
        except Exception as exc:  # missing model files, no network for weights, ...
            session.rows.append(BenchRow(name, "-", "-", 1, note=f"skipped: {_reason(exc)}"))


def run_bench(options: BenchOptions | None = None, progress: Callable[[str], None] | None = None) -> BenchReport:
    """Measure everything the table shows (BenchOptions says what); `progress` gets a line per step."""
    options = options or BenchOptions()
    timer = functools.partial(time_call, repeats=options.repeats, budget_s=options.budget_s,
                              min_seconds=options.min_seconds)
    say = progress or (lambda msg: None)
    if not _has_torch():  # the default install: onnxruntime rows only
        return _run(options, timer, say)
    import torch

    previous_threads = torch.get_num_threads()
    if options.threads:
        torch.set_num_threads(int(options.threads))
    try:
        return _run(options, timer, say)
    finally:
        torch.set_num_threads(previous_threads)


def _run(options: BenchOptions, timer: Timer, say: Callable[[str], None]) -> BenchReport:
    report = BenchReport(machine=machine_info())
    student, report.student = _student(options.model)
    with tempfile.TemporaryDirectory(prefix="kdl-bench-") as tmp:
        session = _Session(options, timer, Path(tmp), report.rows, say)
        _bench_networks(session, student)
    faces = _photo_faces(options.photos, options.max_photos) if (options.pipeline or options.detector
                                                                 or options.others) else []
    if not faces and (options.pipeline or options.others):
        report.rows.append(BenchRow(PIPELINE, "-", "-", 1, note="skipped: no real photo with a .pts file found"))
    elif faces:
        if options.pipeline:
            say("pipeline: detect() with given boxes")
            _bench_pipeline(session, faces)
        if options.others:
            say("other landmark libraries")
            _bench_others(session, faces)
    if options.detector:
        say("face detector")
        _bench_detector(report.rows, faces[0].image if faces else None, timer)
    report.targets = _targets(report, student.info.input_size)
    report.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return report


def _bench_networks(session: _Session, student: _Network) -> None:
    """The student (and the teacher, random weights) at each input size."""
    from kdlandmarks.data.sample_faces import face_crops

    options, info = session.options, student.info
    sizes = options.input_sizes or sorted({info.input_size, PAPER_INPUT_SIZE}, key=lambda s: s != info.input_size)
    teacher = options.teacher_arch if options.teacher_arch and options.teacher_arch.lower() != "none" else None
    for size in sizes:
        crops = face_crops(size, 32, info.crop_margin)[0]
        session.say(f"student at {size} px")
        _bench_network(session, student, size, crops, options.int8, options.flip_test)
        if teacher is None:
            continue
        if not _has_torch():
            session.rows.append(BenchRow(f"teacher {teacher}", "torch", size, 0, note=NEEDS_TRAIN))
            continue
        from kdlandmarks.models.backbones import create_model

        session.say(f"teacher {teacher} at {size} px")
        net = create_model(teacher, info.num_points).eval()
        _bench_network(session, _Network(f"teacher {teacher}", net, dataclasses.replace(info, arch=teacher)),
                       size, crops, False, False)


def _targets(report: BenchReport, size: int) -> list[str]:
    out = _network_targets(report, size)
    pipeline = [r for r in report.rows if r.model == PIPELINE and r.ms_per_face is not None]
    dlib = [r for r in report.rows if r.model == "dlib 68-pt" and r.ms_per_face is not None]
    if pipeline and dlib and pipeline[0].input_size == dlib[0].input_size:
        ours, theirs = pipeline[0].ms_per_face, dlib[0].ms_per_face
        out.append(f"pipeline per face with a given box on {pipeline[0].input_size}: <= dlib's ms -> "
                   f"{'met' if ours <= theirs else 'NOT met'} (median {ours:.2f} vs dlib {theirs:.2f} ms)")
    by_label = {r.input_size: r for r in pipeline}
    small = by_label.get("1 face, {}x{} (0.4 MP)".format(*SMALL_PHOTO))
    large = by_label.get("1 face, {}x{} (12 MP)".format(*LARGE_PHOTO))
    if small and large:
        ratio = large.ms_per_face / small.ms_per_face
        out.append(f"pipeline: a face on a 12 MP photo <= 2x the same face on 0.4 MP -> "
                   f"{'met' if ratio <= 2 else 'NOT met'} ({large.ms_per_face:.2f} vs {small.ms_per_face:.2f} ms, "
                   f"{ratio:.2f}x)")
    return out


def _network_targets(report: BenchReport, size: int) -> list[str]:
    out = []
    fp32 = report.find("student", "onnxruntime", size, 1)
    int8 = report.find("student", "onnxruntime int8", size, 1)
    if fp32 and fp32.ms_per_face is not None:
        verdict = "met" if fp32.ms_per_face <= TARGET_MS_PER_FACE else "NOT met"
        out.append(f"student onnxruntime fp32, batch 1, {size} px: <= {TARGET_MS_PER_FACE:g} ms/face -> {verdict} "
                   f"(median {fp32.ms_per_face:.2f}, best {fp32.best_ms_per_face:.2f} ms)")
    if fp32 and int8 and int8.ms_per_face is not None and fp32.ms_per_face is not None:
        verdict = "met" if int8.ms_per_face < fp32.ms_per_face else "NOT met"
        out.append(f"student onnxruntime int8, batch 1, {size} px: faster than fp32 -> {verdict} "
                   f"(median {int8.ms_per_face:.2f} vs {fp32.ms_per_face:.2f} ms)")
    for runtime in ("onnxruntime", "onnxruntime int8"):
        plain = report.find("student", runtime, size, 1)
        flip = report.find("student (flip test)", runtime, size, 1)
        if plain and flip and plain.ms_per_face and flip.ms_per_face is not None:
            out.append(f"student {runtime} with flip test, batch 1, {size} px (no target): median "
                       f"{flip.ms_per_face:.2f} vs {plain.ms_per_face:.2f} ms single pass "
                       f"({flip.ms_per_face / plain.ms_per_face:.2f}x)")
    paper = report.find("student", "onnxruntime", PAPER_INPUT_SIZE, 1)
    if paper and paper.ms_per_face is not None and size != PAPER_INPUT_SIZE:
        out.append(f"student onnxruntime fp32, batch 1, {PAPER_INPUT_SIZE} px (the paper's input; no target): "
                   f"median {paper.ms_per_face:.2f}, best {paper.best_ms_per_face:.2f} ms")
    return out


def format_report(report: BenchReport) -> str:
    m = report.machine
    torch_text = (f"torch {m.get('torch')} ({m.get('torch_threads')} threads)" if m.get("torch")
                  else "torch not installed")
    lines = [f"machine: {m.get('cpu')}, {m.get('usable_cores')}/{m.get('cores')} cores usable, "
             f"load {m.get('load_avg_1min')}, python {m.get('python')}, {torch_text}, "
             f"onnxruntime {m.get('onnxruntime')}",
             f"student: {report.student}"]
    load, usable = m.get("load_avg_1min"), m.get("usable_cores")
    if load is not None and usable and load > usable:
        lines.append(f"warning: load average {load} exceeds the {usable} usable cores; other processes share the "
                     "CPU, so latencies are pessimistic (see 'best')")
    lines.append("")
    header = ("model", "runtime", "input", "batch", "ms/face", "best ms/face", "faces/s", "note")
    table = [header]
    for r in report.rows:
        fmt = (lambda v, d=2: "-" if v is None else f"{v:.{d}f}")
        table.append((r.model, r.runtime, str(r.input_size), str(r.batch) if r.batch else "-",
                      fmt(r.ms_per_face), fmt(r.best_ms_per_face), fmt(r.faces_per_s, 1), r.note))
    widths = [max(len(row[i]) for row in table) for i in range(len(header) - 1)]
    for row in table:
        lines.append("  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     + ("  " + row[-1] if row[-1] else ""))
    lines.append("")
    lines.append("ms/face: median over repeats after warm-up (per photo for the detector); best: fastest repeat")
    lines += [f"target: {t}" for t in report.targets]
    lines.append(f"peak memory (max RSS): {report.peak_rss_mib:.0f} MiB")
    return "\n".join(lines)
