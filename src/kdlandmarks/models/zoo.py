"""Shipped models by name: a registry of weight files in the package's weights/ folder, with their cards."""
from __future__ import annotations

from pathlib import Path

from kdlandmarks.errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

# name -> one line for `kdlandmarks models` (figures from the card: LFPW test, gt crop, inter-ocular).
# Each name has its weights <name>.pt (models.save_model) and its card <name>.md in WEIGHTS_DIR; the students
# also have <name>.onnx (kdlandmarks export: onnxruntime inference without importing torch).
SHIPPED: dict[str, str] = {
    "kd-student-300w": "MobileNetV2-1.0, 68 points, 128 px; LFPW test NME 4.69 %; 4.2 ms/face (onnxruntime, 2 CPU cores)",
    "kd-student-300w-lite": "MobileNetV2-0.5, 68 points, 128 px; LFPW test NME 4.03 %; 1.25 ms/face (onnxruntime, 2 CPU cores)",
    "kd-teacher-300w-tough": "Tough-Teacher (hard landmarks), ResNet-18, 68 points, 128 px; LFPW test NME 3.64 %; PyTorch only",
    "kd-teacher-300w-tolerant": "Tolerant-Teacher (soft landmarks), ResNet-18, 68 points, 128 px; LFPW test NME 4.09 %; "
                                "PyTorch only",
}
DEFAULT_MODEL = "kd-student-300w-lite"
# The teachers ship so that users can distil students of their own (`train student --tough NAME`); they are
# PyTorch-only: an ONNX copy would double their size (22 MB each) for models that are meant to teach, not to deploy.
TORCH_ONLY: frozenset[str] = frozenset({"kd-teacher-300w-tough", "kd-teacher-300w-tolerant"})


def has_onnx(name: str) -> bool:
    """Whether a shipped model comes with an ONNX export (every student does; the teachers do not)."""
    return name in SHIPPED and name not in TORCH_ONLY


def shipped_names() -> list[str]:
    return sorted(SHIPPED)


def model_card(name: str) -> Path:
    """The shipped model's card (Markdown: architecture, data, recipe, scores, licence)."""
    if name not in SHIPPED:
        raise ModelError(f"unknown shipped model {name!r}; shipped: {', '.join(shipped_names())}")
    return WEIGHTS_DIR / f"{name}.md"


def resolve_model(name_or_path: str | Path, backend: str = "torch") -> Path:
    """The model file for a shipped model's name (its .onnx export for backend "onnx") or an existing path."""
    key = str(name_or_path)
    if key in SHIPPED:
        if backend == "onnx" and not has_onnx(key):
            raise ModelError(f"shipped model {key!r} has no ONNX export (it is PyTorch-only): use the torch backend")
        path = WEIGHTS_DIR / f"{key}.{'onnx' if backend == 'onnx' else 'pt'}"
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
