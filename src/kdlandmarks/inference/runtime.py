"""Running a landmark network: face crops -> network input, and the network itself on onnxruntime or torch.

The one place that turns crops into the network's input (`to_batch`; `fill_input` writes one crop into a
slot of a batch, e.g. a thread's reused `InputBuffers`) and runs a network (`OnnxRegressor`,
`torch_runner`, `load_runner`); inference (LandmarkDetector), evaluation, export (parity checks, int8)
and bench share it.

The network's contract: input ``images`` float32 (B, 3, S, S), RGB in [0, 1]; output ``landmarks``
(B, 2N) in the model's coordinate space (codec.py). An exported .onnx file carries its ModelInfo as JSON
in ``metadata_props["kdlandmarks"]``, so the file alone is enough to crop, run and decode.

The onnxruntime path imports neither torch nor onnx: it is what the default install (no extras) runs.
PyTorch model files (.pt, .ckpt) need the `train` extra; without it they fail with one line naming the
pip command (MissingExtraError).
"""
from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from kdlandmarks.errors import ConfigError, DataError, ModelError
from kdlandmarks.extras import missing, require_train
from kdlandmarks.models.info import ModelInfo

METADATA_KEY = "kdlandmarks"
QUANT_KEY = "kdlandmarks.quantization"
INPUT_NAME = "images"
OUTPUT_NAME = "landmarks"
BACKENDS = ("torch", "onnx")

Runner = Callable[[np.ndarray], np.ndarray]  # (B, 3, S, S) float32 in [0, 1] -> (B, 2N)
# Batches of at most this many faces (one face of a photo, a video frame's tracks) may run on a session of
# its own with one intra-op thread: for the smallest networks, waking a second thread costs more than it
# saves (lite int8, batch 1, with a pipeline's work between calls: 0.37 ms on one thread, 0.48 on two; the
# full-width student gains from two). Which is faster is measured on the first such batch; the outputs of
# both sessions are bit-identical, so the choice never changes a result.
SMALL_BATCH = 2
CPU_COUNT = os.cpu_count() or 1
# Largest |output| taken for a landmark coordinate, in any coordinate space: 1e4 crop widths (normalised)
# or pixels of an input of at most a few hundred; beyond it the network has diverged or the file is broken.
MAX_ABS_OUTPUT = 1e4


def check_network_output(output: np.ndarray, model: Any) -> np.ndarray:
    """`output` (B, 2N) as it is, or ModelError naming `model` when any value is NaN, infinite or absurdly
    large (> MAX_ABS_OUTPUT): the one check that keeps a broken model's numbers out of every result file
    (predict, evaluate and video all run networks through LandmarkDetector, which calls this per batch)."""
    worst = float(np.abs(output).max(initial=0.0))  # NaN propagates: one pass over the batch
    if not worst <= MAX_ABS_OUTPUT:
        what = "NaN or infinite values" if not np.isfinite(worst) else f"a value of {worst:.3g}"
        raise ModelError(f"{model}: the network output holds {what} (a diverged or broken model); "
                         "no landmarks were written from it")
    return output


def to_batch(crops: Sequence[np.ndarray], size: int) -> np.ndarray:
    """RGB crops (H, W, 3; uint8 0-255 or float 0-1; any size) -> the network input, float32
    (B, 3, size, size) in [0, 1]. A crop of another size is resized (area filter when shrinking,
    bilinear when enlarging), anisotropically as in the paper."""
    out = np.empty((len(crops), 3, size, size), dtype=np.float32)
    for i, crop in enumerate(crops):
        fill_input(out[i], crop, f"crop {i}")
    return out


def fill_input(slot: np.ndarray, crop: np.ndarray, name: str = "crop") -> None:
    """Write one RGB crop (H, W, 3; uint8 0-255 or float 0-1) into `slot`, one (3, S, S) float32 image of
    a network input: the layout change and the scaling in one pass, resized first if it is not S x S."""
    crop = np.asarray(crop)
    if crop.ndim != 3 or crop.shape[2] != 3:
        raise DataError(f"{name}: expected an RGB (H, W, 3) image, got shape {crop.shape}")
    size = slot.shape[-1]
    if crop.shape[:2] != (size, size):
        import cv2

        interp = cv2.INTER_AREA if min(crop.shape[:2]) > size else cv2.INTER_LINEAR
        crop = cv2.resize(crop, (size, size), interpolation=interp)
    if crop.dtype == np.uint8:
        np.divide(crop.transpose(2, 0, 1), np.float32(255.0), out=slot, dtype=np.float32)
    else:
        slot[...] = crop.transpose(2, 0, 1)


class InputBuffers(threading.local):
    """Each thread's reusable network input, (B, 3, S, S) float32, so that a face costs no fresh
    allocation: a thread never sees another's, and a nested call in the same thread (e.g. from a custom
    face detector) finds the buffer taken and allocates its own."""

    def __init__(self) -> None:
        self.free: np.ndarray | None = None

    def take(self, count: int, size: int) -> np.ndarray:
        """A (count, 3, size, size) float32 batch for this thread's sole use until give_back()."""
        buffer, self.free = self.free, None
        if buffer is None or buffer.shape[0] < count or buffer.shape[2] != size:
            buffer = np.empty((count, 3, size, size), dtype=np.float32)
        return buffer[:count]

    def give_back(self, batch: np.ndarray) -> None:
        self.free = batch if batch.base is None else batch.base


# --------------------------------------------------------------------------------------------------
# onnxruntime
# --------------------------------------------------------------------------------------------------

def session_options(threads: int | None = None) -> Any:
    """CPU-tuned onnxruntime options: all graph optimisations (Conv+BN/activation fusion, NCHWc layout)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
    return opts


def onnx_providers(device: str) -> list[str]:
    """onnxruntime execution providers for a user's device string; ConfigError when not available."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device.startswith("cuda"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ConfigError(f"device {device!r}: this onnxruntime has no CUDA provider "
                              "(install onnxruntime-gpu); use {device}=cpu", parameters=("device",))
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    raise ConfigError(f"device {device!r} is not supported by the onnx backend: use cpu or cuda")


class OnnxRegressor:
    """Runs an exported landmark model with onnxruntime: (B, 3, S, S) float32 in [0, 1] -> (B, 2N)."""

    def __init__(self, path: str | Path, providers: list[str] | None = None, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: ONNX model file not found")
        try:
            self.session = ort.InferenceSession(str(self.path), session_options(threads),
                                                providers=providers or ["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own pybind types for corrupt files
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise ModelError(f"{self.path}: not a loadable ONNX model ({msg[:200]})") from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if METADATA_KEY not in meta:
            raise ModelError(f"{self.path}: ONNX model has no kdlandmarks metadata "
                             "(export it with `kdlandmarks export`)")
        try:
            self.info = ModelInfo(**json.loads(meta[METADATA_KEY]))
        except (TypeError, ValueError) as exc:
            raise ModelError(f"{self.path}: unreadable kdlandmarks metadata ({exc})") from None
        self.quantization = json.loads(meta[QUANT_KEY]) if QUANT_KEY in meta else None
        inputs = self.session.get_inputs()
        if len(inputs) != 1 or len(inputs[0].shape) != 4:
            raise ModelError(f"{self.path}: expected one (B, 3, S, S) input, found "
                             f"{[(i.name, i.shape) for i in inputs]}")
        size = int(self.info.input_size)
        if any(isinstance(d, int) and d != want for d, want in zip(inputs[0].shape[1:], (3, size, size))):
            raise ModelError(f"{self.path}: its graph takes {inputs[0].shape[1:]} inputs, but its kdlandmarks "
                             f"metadata says (3, {size}, {size}): the file was altered after export")
        self._input = inputs[0].name
        self._threads = threads
        self._cpu_only = self.session.get_providers() == ["CPUExecutionProvider"]
        self._small_session: Any = None  # chosen on the first small batch (_session_for)
        self.small_batch_threads: int | None = None  # 1 once small batches were found faster on one thread
        self._small_lock = threading.Lock()
        batch_dim = inputs[0].shape[0]
        # A static-batch export runs larger batches one image at a time.
        self.fixed_batch = batch_dim if isinstance(batch_dim, int) else None

    @property
    def input_size(self) -> int:
        return int(self.info.input_size)

    @property
    def num_points(self) -> int:
        return int(self.info.num_points)

    @property
    def providers(self) -> list[str]:
        return self.session.get_providers()

    def __call__(self, images: Any) -> np.ndarray:
        if hasattr(images, "detach"):  # a torch tensor (parity checks); never imports torch itself
            images = images.detach().cpu().numpy()
        x = np.ascontiguousarray(images, dtype=np.float32)
        s = self.input_size
        if x.ndim != 4 or x.shape[1:] != (3, s, s):
            raise ModelError(f"{self.path}: input must be (B, 3, {s}, {s}) float32, got shape {tuple(x.shape)}")
        if self.fixed_batch is not None and x.shape[0] != self.fixed_batch:
            n = self.fixed_batch
            if x.shape[0] % n:
                raise ModelError(f"{self.path}: exported with a fixed batch of {n}; got {x.shape[0]} images")
            return np.concatenate([self.session.run(None, {self._input: x[i:i + n]})[0]
                                   for i in range(0, x.shape[0], n)])
        return self._session_for(x).run(None, {self._input: x})[0]

    def _session_for(self, x: np.ndarray) -> Any:
        """The session to run `x` on: small batches on the faster of this session and a one-thread one
        (SMALL_BATCH), unless the caller fixed the thread count or the work runs on a GPU."""
        if self._threads is not None or not self._cpu_only or len(x) > SMALL_BATCH or CPU_COUNT < 2:
            return self.session
        if self._small_session is None:
            with self._small_lock:  # one detector may serve many threads: measure once
                if self._small_session is None:
                    self._small_session = self._faster_session(x)
        return self._small_session

    def _faster_session(self, x: np.ndarray, calls: int = 15, gap_s: float = 5e-4) -> Any:
        """This session or a new one-thread session of the same file, whichever runs `x` faster (median of
        `calls` interleaved calls each, after two warm-ups). Calls are `gap_s` apart, busy, as a pipeline's
        cropping keeps them: back to back, a second thread is still awake and looks cheaper than it is."""
        import onnxruntime as ort

        single = ort.InferenceSession(str(self.path), session_options(1), providers=["CPUExecutionProvider"])
        times: dict[int, list[float]] = {0: [], 1: []}
        for i in range(2 + calls):
            for k, session in enumerate((self.session, single)):
                start = time.perf_counter()
                while time.perf_counter() - start < gap_s:
                    pass
                start = time.perf_counter()
                session.run(None, {self._input: x})
                if i >= 2:
                    times[k].append(time.perf_counter() - start)
        self.small_batch_threads = 1 if np.median(times[1]) < np.median(times[0]) else None
        return single if self.small_batch_threads == 1 else self.session


# --------------------------------------------------------------------------------------------------
# torch (the train extra)
# --------------------------------------------------------------------------------------------------

def torch_device(device: str) -> Any:
    """A torch.device for a user's device string; ConfigError when it is malformed or not present."""
    require_train("the torch backend", ("torch",))
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"invalid device {device!r} ({exc})") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} requested but CUDA is not available; use {{device}}=cpu",
                          parameters=("device",))
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"device {device!r} requested but MPS is not available; use {{device}}=cpu",
                          parameters=("device",))
    return dev


def torch_runner(model: Any, device: str, bf16: bool = False) -> tuple[Runner, str]:
    """(run, device name) for an in-memory torch network: numpy batch in, numpy (B, 2N) float32 out. `bf16`:
    under bf16 autocast (the run function's `autocast` attribute says "bf16"; None when it runs as stored)."""
    import torch

    dev = torch_device(device)
    model = model.to(dev).eval()

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), torch.autocast(device_type=dev.type, dtype=torch.bfloat16, enabled=bf16):
            return model(torch.from_numpy(batch).to(dev)).float().cpu().numpy()

    run.autocast = "bf16" if bf16 else None  # type: ignore[attr-defined]
    return run, str(dev)


# --------------------------------------------------------------------------------------------------
# Model files
# --------------------------------------------------------------------------------------------------

def resolve_model_path(model: str | Path, backend: str | None) -> Path:
    """The file to run for a shipped name or a path. A shipped name resolves to its ONNX export when
    onnxruntime is installed (fast start, small memory, no torch), unless backend "torch" is asked for or the
    model ships without one (the teachers)."""
    from kdlandmarks.models.zoo import has_onnx, resolve_model

    if backend is None and has_onnx(str(model)) and not missing(["onnxruntime"]):
        backend = "onnx"
    return Path(resolve_model(model, backend=backend or "torch"))


def load_runner(model: str | Path, backend: str | None = None, device: str = "cpu",
                threads: int | None = None) -> tuple[Runner, ModelInfo, Path, str, str]:
    """A network ready to run: (run, info, path, backend, device) for a shipped name, a model file
    (.pt, .ckpt: torch) or an exported .onnx (onnxruntime). `backend` None: from the file type (for a
    shipped name, onnx when onnxruntime is installed). `threads`: onnxruntime's intra-op threads."""
    if backend is not None and backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}: choose torch or onnx")
    path = resolve_model_path(model, backend)
    kind = "onnx" if path.suffix.lower() == ".onnx" else "torch"
    backend = backend or kind
    if backend != kind:
        if kind == "onnx":
            raise ModelError(f"{path}: an exported ONNX model runs with backend 'onnx', not 'torch'")
        raise ModelError(f"{path}: backend 'onnx' needs an exported .onnx file (kdlandmarks export)")
    if backend == "onnx":
        regressor = OnnxRegressor(path, providers=onnx_providers(device), threads=threads)
        return regressor, regressor.info, path, backend, device
    # shipped models and exported .onnx files run without it
    require_train(f"running {path.name} with torch", ("torch", "timm"))
    from kdlandmarks.models.backbones import bf16_pays, load_model

    net, info = load_model(path)
    # a teacher (ResNet) runs under bf16 autocast where that is faster: 1.9x here, NME within 0.005 on average
    # (docs/benchmarks.md, bf16 section); the students are depthwise networks, which bf16 does not speed up
    teacher = info.metadata.get("role") == "teacher"
    run, dev = torch_runner(net, device, bf16=teacher and bf16_pays(info.arch, torch_device(device)))
    return run, info, path, backend, dev
