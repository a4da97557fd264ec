"""Shipped models by name: a registry of weight files in the package's weights/ folder, with their cards."""
from __future__ import annotations

from pathlib import Path

from .errors import ModelError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"

# name -> file name in WEIGHTS_DIR (model files written by models.save_model); each has a card <name>.md.
SHIPPED: dict[str, str] = {
    # MobileNetV2-1.0 student, KD-Loss, 300-W 68 points, 128 px: the more accurate one
    "kd-student-300w": "kd-student-300w.pt",
    # MobileNetV2-0.5 student, KD-Loss, 300-W 68 points, 128 px: the one that meets the 2 ms/face CPU target
    "kd-student-300w-lite": "kd-student-300w-lite.pt",
}
# The same models exported to ONNX (kdlandmarks export): onnxruntime inference without importing torch.
SHIPPED_ONNX: dict[str, str] = {"kd-student-300w": "kd-student-300w.onnx",
                                "kd-student-300w-lite": "kd-student-300w-lite.onnx"}
# One line each for `kdlandmarks models`; the figures come from the cards (LFPW test, gt crop, inter-ocular).
SUMMARIES: dict[str, str] = {
    "kd-student-300w": "MobileNetV2-1.0, 68 points, 128 px; LFPW test NME 4.84 %; ~4 ms/face on 2 CPU cores",
    "kd-student-300w-lite": "MobileNetV2-0.5, 68 points, 128 px; LFPW test NME 5.38 %; "
                            "~1.3 ms/face on 2 CPU cores",
}
DEFAULT_MODEL = "kd-student-300w-lite"


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
