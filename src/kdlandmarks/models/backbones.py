"""Model factory: timm backbones with a landmark regression head, and the portable model file.

One factory (`create_model`) with per-architecture configs, as timm does. Teachers default to
EfficientNet-B3 (global pool, dropout 0.5, linear 2N), the student to MobileNetV2-1.0 (global pool,
linear 2N, no dropout); any timm backbone works by name. Weights start random (the paper's choice);
a local weight file can initialise the backbone.

A model file (`.pt`) holds everything needed to use the network without its training run: the
architecture, point count, input size, coordinate space, landmark scheme and crop settings.
`load_model` reads model files and Lightning checkpoints with `torch.load(weights_only=True)`: tensors
and plain values only, never code; a file that holds anything else is refused (ModelError).
"""
from __future__ import annotations

import functools
import os

import pickle
import re
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from kdlandmarks.errors import ModelError
from kdlandmarks.fileio import atomic_path
from kdlandmarks.models.info import MODEL_FORMAT, ModelInfo

# Per-architecture defaults; other timm names use `dropout=0`.
ARCH_CONFIGS: dict[str, dict[str, Any]] = {
    "efficientnet_b3": {"dropout": 0.5},  # the teachers' default
    "mobilenetv2_100": {"dropout": 0.0},  # the student's default
}


# Depthwise-separable backbones: bf16 autocast gains them nothing on a CPU (measured: MobileNetV2 0.75-1.0x,
# EfficientNet-B3 0.8-0.9x), while ordinary convolutions run on the CPU's bf16 instructions (ResNet-18/34/50:
# 2.1-2.4x training on AMX-BF16, 1.5-1.8x on AVX512-BF16; inference 1.8-1.9x there).
_DEPTHWISE_PREFIXES = ("mobilenet", "efficientnet", "mnasnet", "ghostnet", "lcnet", "fbnet", "tinynet")
# /proc/cpuinfo flags of the instruction sets oneDNN runs bf16 convolutions on: Intel AMX, AVX512-BF16 (Intel
# Cooper Lake and later, AMD Zen 4 and later)
_FAST_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def bf16_pays(arch: str, device: str | torch.device = "cpu") -> bool:
    """Whether running `arch` under bf16 autocast on `device` is faster: always on CUDA, and on a CPU only
    with bf16 instructions (AMX-BF16 or AVX512-BF16) and for a backbone of ordinary convolutions (not a
    depthwise one)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return True
    if kind != "cpu" or arch.startswith(_DEPTHWISE_PREFIXES):
        return False
    return _cpu_has_fast_bf16()


@functools.lru_cache(maxsize=2)
def _cpu_has_fast_bf16(cpuinfo: str = "/proc/cpuinfo") -> bool:
    return bool(set(_cpuinfo_field(cpuinfo, "flags").split()) & set(_FAST_BF16_FLAGS))


def _cpuinfo_field(cpuinfo: str, name: str) -> str:
    """The first `name` line's value in /proc/cpuinfo; "" where there is none (not Linux: no cheap way to tell)."""
    try:
        with open(cpuinfo) as fh:
            for line in fh:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return ""


def cpu_description(cpuinfo: str = "/proc/cpuinfo") -> str:
    """The CPU a run used, for the records that compare times across machines: its model name, the cores this
    process may use, and its bf16 instructions ("AMD EPYC, 2 cores, bf16: avx512_bf16"; "none": bf16 emulated)."""
    flags = set(_cpuinfo_field(cpuinfo, "flags").split())
    bf16 = ", ".join(f for f in _FAST_BF16_FLAGS if f in flags) or "none"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{_cpuinfo_field(cpuinfo, 'model name') or 'unknown CPU'}, {cores} core{'s' * (cores != 1)}, bf16: {bf16}"


def teacher_autocast(arch: str, device: str | torch.device):
    """The autocast context a frozen teacher runs under: bf16 where `bf16_pays`, else a no-op."""
    kind = torch.device(device).type
    return torch.autocast(device_type=kind, dtype=torch.bfloat16, enabled=bf16_pays(arch, device))


class LandmarkRegressor(nn.Module):
    """Backbone -> global average pool -> [dropout] -> linear(2N). Input: RGB in [0, 1], (B, 3, S, S)."""

    def __init__(self, arch: str, num_points: int, dropout: float = 0.0) -> None:
        super().__init__()
        import timm

        try:
            self.backbone = timm.create_model(arch, pretrained=False, num_classes=0, global_pool="avg")
        except RuntimeError as exc:  # timm raises RuntimeError for unknown names
            raise ModelError(f"unknown backbone {arch!r} ({exc})") from None
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.head = nn.Linear(self.backbone.num_features, 2 * num_points)
        self.num_points = num_points
        self.arch = arch

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.dropout(self.backbone(images)))


def create_model(arch: str, num_points: int, dropout: float | None = None,
                 backbone_weights: str | Path | None = None) -> LandmarkRegressor:
    """A LandmarkRegressor for `arch` (dropout: ARCH_CONFIGS' default when None), its backbone optionally
    initialised from a local weight file (a state_dict, or a checkpoint holding one under "state_dict")."""
    if dropout is None:
        dropout = ARCH_CONFIGS.get(arch, {}).get("dropout", 0.0)
    model = LandmarkRegressor(arch, num_points, dropout)
    if backbone_weights is not None:
        path = Path(backbone_weights)
        if not path.is_file():
            raise ModelError(f"{path}: backbone weight file not found")
        state = read_torch_file(path, what="weight file")
        state = state.get("state_dict", state) if isinstance(state, dict) else state
        if not isinstance(state, dict):
            raise ModelError(f"{path}: not a weight file (a state_dict of tensors)")
        try:
            missing, _ = model.backbone.load_state_dict(state, strict=False)
        except (RuntimeError, TypeError, AttributeError) as exc:  # shapes of another backbone, non-tensors
            raise ModelError(f"{path}: weights do not fit backbone {arch!r} "
                             f"({str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__})") from None
        if len(missing) == len(model.backbone.state_dict()):
            raise ModelError(f"{path}: no tensor matches backbone {arch!r}")
    return model


def save_model(path: str | Path, model: LandmarkRegressor, info: ModelInfo, half: bool = False) -> None:
    """Write a portable model file atomically; `half` stores fp16 weights (half the size)."""
    state = {k: (v.half() if half and v.is_floating_point() else v).cpu() for k, v in model.state_dict().items()}
    payload = {"format": MODEL_FORMAT, "info": asdict(info), "state_dict": state}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


# How a Lightning training checkpoint (training.module.LandmarkModule) carries a model. LandmarkModule's
# first constructor argument is named CHECKPOINT_INFO_KEY and holds asdict(ModelInfo), so Lightning's
# save_hyperparameters() stores it under checkpoint["hyper_parameters"][CHECKPOINT_INFO_KEY]; the network is
# its attribute `model`, so its weights are the state_dict entries under CHECKPOINT_MODEL_PREFIX. Renaming
# either there breaks reading every existing checkpoint here (tests/test_training.py checks both agree).
CHECKPOINT_INFO_KEY = "kdlandmarks"
CHECKPOINT_MODEL_PREFIX = "model."


def read_training_checkpoint(payload: dict) -> tuple[ModelInfo, dict[str, torch.Tensor]] | None:
    """(ModelInfo, the network's state_dict) from a loaded Lightning checkpoint of this project's training,
    or None when `payload` is not one. TypeError when its settings do not fit ModelInfo."""
    hparams = payload.get("hyper_parameters")
    if "state_dict" not in payload or not isinstance(hparams, dict) or CHECKPOINT_INFO_KEY not in hparams:
        return None
    n = len(CHECKPOINT_MODEL_PREFIX)
    state = {k[n:]: v for k, v in payload["state_dict"].items() if k.startswith(CHECKPOINT_MODEL_PREFIX)}
    return ModelInfo(**hparams[CHECKPOINT_INFO_KEY]), state


def read_torch_file(path: str | Path, map_location: str | torch.device = "cpu", what: str = "model file") -> Any:
    """The content of a PyTorch file (model, checkpoint, weights) read as tensors and plain values only, so
    that a file can never run code while it loads (torch.load(weights_only=True)); one ModelError naming
    the file and what is wrong with it otherwise: objects that would run code, an ONNX model, or a file
    that is truncated or not a PyTorch file at all. `what` names the kind of file expected."""
    import warnings

    path = Path(path)
    try:
        with warnings.catch_warnings():  # torch's notes on old pickle protocols say nothing to a user
            warnings.simplefilter("ignore")
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        if found:  # what weights_only refuses: an object that would run code
            raise ModelError(f"{path}: not a kdlandmarks {what}: it holds Python objects ({found[1]}), not only "
                             "weights and settings, so it was refused without loading it") from None
        reason = type(exc).__name__
    except Exception as exc:  # a truncated or foreign file: torch raises many types
        reason = type(exc).__name__
    if _looks_like_onnx(path):
        raise ModelError(f"{path}: an exported ONNX model, not a PyTorch {what}; give it a .onnx name")
    raise ModelError(f"{path}: not a readable {what}: truncated, or not a PyTorch file ({reason})")


def _looks_like_onnx(path: Path) -> bool:
    """An ONNX ModelProto starts with its ir_version (field 1, varint) and then, from any exporter we know,
    the producer name (field 2)."""
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return head[:1] == b"\x08" and any(name in head for name in (b"kdlandmarks", b"pytorch", b"onnx"))


def load_model(path: str | Path, map_location: str | torch.device = "cpu") -> tuple[LandmarkRegressor, ModelInfo]:
    """Load a model file written by save_model, or a Lightning training checkpoint (.ckpt)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: model file not found")
    if path.suffix.lower() == ".onnx":
        raise ModelError(f"{path}: an exported ONNX model; this needs the PyTorch model file (.pt or .ckpt)")
    payload = read_torch_file(path, map_location)
    if not isinstance(payload, dict):
        raise ModelError(f"{path}: not a kdlandmarks model file")
    try:
        if payload.get("format") == MODEL_FORMAT:
            info = ModelInfo(**payload["info"])
            state = payload["state_dict"]
        elif (found := read_training_checkpoint(payload)) is not None:
            info, state = found
        else:
            raise ModelError(f"{path}: not a kdlandmarks model file or training checkpoint")
    except TypeError as exc:  # settings this version does not know (a newer file) or of the wrong type
        raise ModelError(f"{path}: unreadable model settings ({exc})") from None
    model = create_model(info.arch, info.num_points, info.dropout)
    try:
        model.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit {info.arch} with {info.num_points} points "
                         f"({str(exc).splitlines()[0]})") from None
    model.eval()
    return model, info
