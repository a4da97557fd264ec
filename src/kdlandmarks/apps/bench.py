"""Speed benchmark on this machine: per-face latency and throughput of student, teacher and face detector.

Rows: the student (torch, onnxruntime fp32, onnxruntime int8) and the teacher (torch, onnxruntime) at
batch 1 and a larger batch for each input size; the student with flip test (onnxruntime fp32 and int8:
each face and its mirror in one network batch, plus the mirroring, decoding and averaging, per face);
the face detector per photo; and dlib / mediapipe / face_alignment landmark latency when those
packages are importable. Latency is the median over the timed repeats after warm-up; "best" is the
fastest repeat (closest to an unloaded machine).

On the default install (no torch, no onnx) the onnxruntime rows of the student's own .onnx file (a
shipped model's export, or an .onnx given as the model) at its input size, its flip-test rows and the
detector are measured; torch, int8, other input sizes and the teacher need the `train` extra and are
listed as skipped, with the pip command.
"""
from __future__ import annotations

import dataclasses
import functools
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

STUDENT_ARCH = "mobilenetv2_100"
CPU_INPUT_SIZE = 128  # the shipped CPU recipe's input size
PAPER_INPUT_SIZE = 224
TARGET_MS_PER_FACE = 2.0  # student, onnxruntime fp32, batch 1, at the shipped input size
NEEDS_TRAIN = f"skipped: needs the training extra ({TRAIN_INSTALL})"


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

    def find(self, model: str, runtime: str, input_size: int, batch: int) -> BenchRow | None:
        return next((r for r in self.rows if r.model == model and r.runtime == runtime
                     and r.input_size == input_size and r.batch == batch), None)


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


def _onnx_student(model: str | Path | None) -> tuple[None, Any, str, Path]:
    """(None, info, label, .onnx path): the student as an ONNX file, run without torch: an exported .onnx
    given as the model, or a shipped model's own export (the default one for None)."""
    from kdlandmarks.inference.runtime import OnnxRegressor
    from kdlandmarks.models.zoo import SHIPPED, resolve_model

    name = DEFAULT_STUDENT if model is None else model
    if str(name) in SHIPPED:
        path = resolve_model(name, backend="onnx")
        label = f"shipped {name} ({{arch}}, {path})"
    else:
        path = resolve_model(name)
        if path.suffix.lower() != ".onnx":
            raise MissingExtraError(f"kdlandmarks bench with a PyTorch model file ({path.name}) needs the training "
                                    f"extra (torch is not installed): {TRAIN_INSTALL}; or give an exported .onnx")
        label = f"{{arch}} from {path}"
    info = OnnxRegressor(path).info
    return None, info, label.format(arch=info.arch), path


def _student(model: str | Path | None) -> tuple[Any, Any, str]:
    """(net, info, label): the given model, else the shipped student, else a fresh MobileNetV2."""
    from kdlandmarks.export.onnx import resolve_network
    from kdlandmarks.models.backbones import ModelInfo, create_model

    if model is not None:
        net, info, label = resolve_network(model)
        return net, info, f"{info.arch} from {label}"
    try:
        net, info, label = resolve_network(DEFAULT_STUDENT)
        return net, info, f"shipped {DEFAULT_STUDENT} ({info.arch}, {label})"
    except (KDLandmarksError, ImportError, OSError):
        info = ModelInfo(STUDENT_ARCH, 68, CPU_INPUT_SIZE)
        net = create_model(STUDENT_ARCH, 68).eval()
        return net, info, (f"fresh random {STUDENT_ARCH} (no shipped {DEFAULT_STUDENT} yet; "
                           "speed does not depend on the weights)")


def _bench_network(rows: list[BenchRow], name: str, net: Any, info: Any, size: int, batches: Sequence[int],
                   timer: Timer, threads: int | None, workdir: Path, int8: bool, crops: list[np.ndarray],
                   flip_test: bool = False, onnx_file: Path | None = None) -> None:
    """Rows of one network at one input size: torch, then its ONNX export on onnxruntime (fp32, int8).
    Without a torch network (`net` None: the default install) the rows of `onnx_file`, an exported model
    at its own input size; torch and int8 rows are listed as skipped, with the pip command."""
    from kdlandmarks.inference.runtime import OnnxRegressor

    sized = dataclasses.replace(info, input_size=size)
    rng = np.random.default_rng(0)
    inputs = {b: rng.random((b, 3, size, size), dtype=np.float32) for b in batches}
    if net is None:
        torch_ok = _has_torch()
        rows.append(BenchRow(name, "torch", size, 0,
                             note="skipped: the model is an exported .onnx" if torch_ok else NEEDS_TRAIN))
        if onnx_file is None or size != info.input_size:
            why = (f"the .onnx file is exported at {info.input_size} px" if torch_ok else
                   f"exporting at {size} px needs the training extra ({TRAIN_INSTALL})")
            rows.append(BenchRow(name, "onnxruntime", size, 0, note=f"skipped: {why}"))
            return
        onnx_path = onnx_file
    else:
        import torch

        from kdlandmarks.export.onnx import export_onnx

        with torch.inference_mode():
            for b in batches:
                x = torch.from_numpy(inputs[b])
                rows.append(_row(name, "torch", size, b, *timer(lambda: net(x))))
        onnx_path = workdir / f"{name.replace(' ', '_')}_{size}.onnx"
        try:
            export_onnx((net, sized), onnx_path, check_images=crops[:2])
        except KDLandmarksError as exc:
            rows.append(BenchRow(name, "onnxruntime", size, 0, note=f"skipped: {exc}"))
            return
    runners = [("onnxruntime", OnnxRegressor(onnx_path, threads=threads), "")]
    no_int8 = int8 and missing(["onnx"])  # quantising needs the onnx package (train extra)
    if int8 and not no_int8:
        from kdlandmarks.export.onnx import quantize_int8

        q_path = workdir / f"{name.replace(' ', '_')}_{size}_int8.onnx"
        try:
            quantize_int8(onnx_path, q_path, crops)
            runners.append(("onnxruntime int8", OnnxRegressor(q_path, threads=threads),
                            f"static QDQ, fp32 head, {len(crops)} calibration faces"))
        except KDLandmarksError as exc:
            rows.append(BenchRow(name, "onnxruntime int8", size, 0, note=f"skipped: {exc}"))
    for runtime, runner, note in runners:
        for b in batches:
            x = inputs[b]
            rows.append(_row(name, runtime, size, b, *timer(lambda: runner(x)), note))
    if no_int8:
        rows.append(BenchRow(name, "onnxruntime int8", size, 0, note=NEEDS_TRAIN))
    if flip_test:
        _bench_flip_test(rows, name, sized, runners, inputs, batches, timer)


def _bench_flip_test(rows: list[BenchRow], name: str, info: Any, runners: Sequence[tuple[str, Any, str]],
                     inputs: dict[int, np.ndarray], batches: Sequence[int], timer: Timer) -> None:
    """Rows "<name> (flip test)" per onnxruntime runner (fp32, int8) and batch: ms per face of the path
    LandmarkDetector(flip_test=True) runs (inference.run_flip_test): the batch and its mirrors in one
    network call of 2B images, decoding, mirroring back, relabelling and averaging."""
    from kdlandmarks.data.codec import LandmarkCodec
    from kdlandmarks.inference.detector import flip_scheme, run_flip_test

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


def _bench_others(rows: list[BenchRow], photo: np.ndarray | None, box: np.ndarray | None,
                  timer: Timer) -> None:
    """dlib / mediapipe / face_alignment landmark latency on the same face, when importable."""
    if photo is None or box is None:
        return
    x0, y0, x1, y1 = (int(round(v)) for v in box)

    def dlib_fn() -> Callable[[], Any]:
        import dlib

        model = os.environ.get("KDLANDMARKS_DLIB_PREDICTOR", "shape_predictor_68_face_landmarks.dat")
        if not Path(model).is_file():
            raise FileNotFoundError(f"no predictor file {model} (set KDLANDMARKS_DLIB_PREDICTOR)")
        predictor = dlib.shape_predictor(model)
        rect = dlib.rectangle(x0, y0, x1, y1)
        return lambda: predictor(photo, rect)

    def mediapipe_fn() -> Callable[[], Any]:
        import mediapipe as mp

        # Tracking mode on a still image: after the first frame only the landmark network runs.
        mesh = mp.solutions.face_mesh.FaceMesh(static_image_mode=False, max_num_faces=1)
        face = np.ascontiguousarray(photo[max(y0, 0):y1, max(x0, 0):x1])
        return lambda: mesh.process(face)

    def face_alignment_fn() -> Callable[[], Any]:
        import face_alignment

        kind = getattr(face_alignment.LandmarksType, "TWO_D", None) or face_alignment.LandmarksType._2D
        fa = face_alignment.FaceAlignment(kind, device="cpu")
        return lambda: fa.get_landmarks(photo, detected_faces=[(x0, y0, x1, y1)])

    for name, make in (("dlib 68-pt", dlib_fn), ("mediapipe face mesh", mediapipe_fn),
                       ("face_alignment FAN", face_alignment_fn)):
        try:
            fn = make()
            median, best = timer(fn, warmup=1)
        except ImportError:
            rows.append(BenchRow(name, "-", "-", 1, note="skipped: not installed"))
            continue
        except Exception as exc:  # missing model files, no network for weights, ...
            rows.append(BenchRow(name, "-", "-", 1, note=f"skipped: {_reason(exc)}"))
            continue
        rows.append(_row(name, "-", f"{x1 - x0}px face", 1, median, best, "landmarks only (given box)"))


def _photo() -> tuple[np.ndarray | None, np.ndarray | None]:
    """A real photo and its face's landmark box, from the bundled sample or the shared 300-W."""
    from kdlandmarks.data.crop import landmark_box
    from kdlandmarks.data.datasets.pts import read_pts
    from kdlandmarks.data.datasets.record import read_image
    from kdlandmarks.data.sample_faces import face_folders, full_lfpw_test, sample_folder

    for root in (sample_folder(), full_lfpw_test()):
        for folder in face_folders(root):
            for pts in sorted(folder.glob("*.pts")):
                image = pts.with_suffix(".jpg")
                if image.is_file():
                    try:
                        return read_image(image), landmark_box(read_pts(pts))
                    except KDLandmarksError:
                        continue
    return None, None


def run_bench(model: str | Path | None = None, teacher_arch: str | None = "efficientnet_b3",
              input_sizes: Sequence[int] | None = None, batches: Sequence[int] = (1, 32), repeats: int = 100,
              threads: int | None = None, int8: bool = True, detector: bool = True, others: bool = True,
              budget_s: float = 5.0, progress: Callable[[str], None] | None = None,
              min_seconds: float = 2.0, flip_test: bool = True) -> BenchReport:
    """Measure everything the table shows; `threads` sets torch's and onnxruntime's intra-op threads.

    `model`: a zoo name, a model file, an in-memory (model, ModelInfo) pair, or None for the shipped
    student (a fresh MobileNetV2 while none is shipped; the report says which). `flip_test`: also time
    the student with flip test (onnxruntime fp32 and int8 rows, "student (flip test)").
    """
    timer = functools.partial(time_call, repeats=repeats, budget_s=budget_s, min_seconds=min_seconds)
    say = progress or (lambda msg: None)
    if not _has_torch():  # the default install: onnxruntime rows only
        return _run(model, teacher_arch, input_sizes, batches, timer, threads, int8, detector, others, say, flip_test)
    import torch

    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(int(threads))
    try:
        return _run(model, teacher_arch, input_sizes, batches, timer, threads, int8, detector, others, say, flip_test)
    finally:
        torch.set_num_threads(previous_threads)


def _run(model: Any, teacher_arch: str | None, input_sizes: Sequence[int] | None, batches: Sequence[int],
         timer: Timer, threads: int | None, int8: bool, detector: bool, others: bool,
         say: Callable[[str], None], flip_test: bool = True) -> BenchReport:
    from kdlandmarks.data.sample_faces import face_crops

    report = BenchReport(machine=machine_info())
    onnx_file = None
    if isinstance(model, (str, Path)) and str(model).lower().endswith(".onnx") or not _has_torch():
        net, info, report.student, onnx_file = _onnx_student(model)
    else:
        net, info, report.student = _student(model)
    if input_sizes is None:
        input_sizes = [info.input_size] + ([PAPER_INPUT_SIZE] if info.input_size != PAPER_INPUT_SIZE else [])
    rows = report.rows
    with tempfile.TemporaryDirectory(prefix="kdl-bench-") as tmp:
        for size in input_sizes:
            crops = face_crops(size, 32, info.crop_margin)[0]
            say(f"student at {size} px")
            _bench_network(rows, "student", net, info, size, batches, timer, threads, Path(tmp), int8, crops,
                           flip_test, onnx_file)
            if teacher_arch and teacher_arch.lower() != "none":
                if not _has_torch():
                    rows.append(BenchRow(f"teacher {teacher_arch}", "torch", size, 0, note=NEEDS_TRAIN))
                    continue
                from kdlandmarks.models.backbones import create_model

                say(f"teacher {teacher_arch} at {size} px")
                teacher = create_model(teacher_arch, info.num_points).eval()
                teacher_info = dataclasses.replace(info, arch=teacher_arch)
                _bench_network(rows, f"teacher {teacher_arch}", teacher, teacher_info, size, batches, timer,
                               threads, Path(tmp), False, crops)
                del teacher
    photo, box = _photo() if (detector or others) else (None, None)
    if detector:
        say("face detector")
        _bench_detector(rows, photo, timer)
    if others:
        _bench_others(rows, photo, box, timer)
    report.targets = _targets(report, info.input_size)
    report.peak_rss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return report


def _targets(report: BenchReport, size: int) -> list[str]:
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
