"""Shipped models by name: a registry of weight files in the package's weights/ folder."""
from __future__ import annotations

from pathlib import Path

from .errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# name -> file name in WEIGHTS_DIR (model files written by models.save_model).
SHIPPED: dict[str, str] = {
    # MobileNetV2 student trained with KD-Loss on 300-W (68 points, 128 px); card: weights/kd-student-300w.md
    "kd-student-300w": "kd-student-300w.pt",
}
# The same models exported to ONNX (kdlandmarks export): onnxruntime inference without importing torch.
SHIPPED_ONNX: dict[str, str] = {"kd-student-300w": "kd-student-300w.onnx"}
DEFAULT_MODEL = "kd-student-300w"


def shipped_names() -> list[str]:
    return sorted(SHIPPED)


def resolve_model(name_or_path: str | Path, backend: str = "torch") -> Path:
    """The model file for a shipped model's name (its .onnx export for backend "onnx") or an existing path."""
    key = str(name_or_path)
    if key in SHIPPED:
        path = WEIGHTS_DIR / (SHIPPED_ONNX[key] if backend == "onnx" and key in SHIPPED_ONNX else SHIPPED[key])
        if not path.is_file():
            raise ModelError(f"shipped model {key!r}: its weight file {path} is missing from the installation")
        return path
    path = Path(name_or_path).expanduser()
    if path.is_file():
        return path
    if path.is_dir():
        raise ModelError(f"{path}: is a folder, not a model file")
    shipped = ", ".join(shipped_names()) or "none"
    raise ModelError(f"unknown model {key!r}: no such file and not a shipped model name; shipped: {shipped}")
