"""Shipped models by name: a registry of weight files in the package's weights/ folder, with their cards."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from kdlandmarks.errors import ModelError
from kdlandmarks.extras import TRAIN_INSTALL

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"

# name -> what the model is. Its scores and speed are its card's metadata (card_metadata), the one place they
# are written. Each name has its weights <name>.pt (models.save_model) and its card <name>.md in WEIGHTS_DIR;
# the students also have <name>.onnx (kdlandmarks export: onnxruntime inference without importing torch).
SHIPPED: dict[str, str] = {
    "kd-student-300w": "MobileNetV2-1.0, 68 points, 128 px",
    "kd-student-300w-lite": "MobileNetV2-0.5, 68 points, 128 px",
    "kd-teacher-300w-tough": "Tough-Teacher (hard landmarks), ResNet-34, 68 points, 160 px",
    "kd-teacher-300w-tolerant": "Tolerant-Teacher (soft landmarks), ResNet-34, 68 points, 160 px",
}
DEFAULT_MODEL = "kd-student-300w-lite"
# The teachers ship so that users can distil students of their own (`train student --tough NAME`); they are
# PyTorch-only: an ONNX copy would double their size (43 MB each) for models that are meant to teach, not to deploy.
TORCH_ONLY: frozenset[str] = frozenset({"kd-teacher-300w-tough", "kd-teacher-300w-tolerant"})
# PyTorch weights (<name>.pt) come with the source checkout (an editable install of it: the train extra installs
# from a clone), not the wheel (pyproject.toml's exclude-package-data): prediction runs the ONNX exports, and the
# .pt files would be most of the wheel (86 MB the teachers, 6 MB the students). So the teachers, which have
# nothing else, are the models a wheel lacks.
CHECKOUT_ONLY: frozenset[str] = TORCH_ONLY


# The students' ONNX exports: <name>.onnx (fp32) and <name>.int8.onnx (static int8, results/int8/quantize.py).
# A shipped name runs its int8 file on onnxruntime where it costs at most 0.10 NME on validation and on LFPW
# test (its card); "<name>:fp32" or "<name>:int8" asks for one.
PRECISIONS = ("fp32", "int8")
INT8_DEFAULT: frozenset[str] = frozenset({"kd-student-300w-lite"})


def split_precision(name: str) -> tuple[str, str | None]:
    """"kd-student-300w-lite:int8" -> ("kd-student-300w-lite", "int8"); anything else -> (name, None)."""
    base, sep, precision = str(name).rpartition(":")
    return (base, precision) if sep and base in SHIPPED and precision in PRECISIONS else (str(name), None)


def has_onnx(name: str) -> bool:
    """Whether a shipped model comes with an ONNX export (every student does; the teachers do not)."""
    name = split_precision(name)[0]
    return name in SHIPPED and name not in TORCH_ONLY


def onnx_precision(name: str) -> str:
    """The precision a shipped name's ONNX export runs in: its own suffix, else the model's default."""
    base, precision = split_precision(name)
    return precision or ("int8" if base in INT8_DEFAULT else "fp32")


def shipped_names() -> list[str]:
    return sorted(SHIPPED)


def is_installed(name: str) -> bool:
    """Whether this installation has the weights a shipped model runs with by default: a student's ONNX
    export, a teacher's PyTorch file (in a source checkout only)."""
    try:
        return resolve_model(name, backend="onnx" if has_onnx(name) else "torch").is_file()
    except ModelError:
        return False


def installed_names() -> list[str]:
    """The shipped models whose weights this installation has."""
    return [name for name in shipped_names() if is_installed(name)]


def model_card(name: str) -> Path:
    """The shipped model's card (Markdown: architecture, data, recipe, scores, licence)."""
    if name not in SHIPPED:
        raise ModelError(f"unknown shipped model {name!r}; shipped: {', '.join(shipped_names())}")
    return WEIGHTS_DIR / f"{name}.md"


def card_metadata(name: str) -> dict[str, Any]:
    """The metadata block at the top of a shipped model's card (YAML between `---` lines): `lfpw_nme` (%,
    300-W LFPW test, ground-truth crop, inter-ocular) and `runtime` (speed, or what runs it)."""
    import yaml

    text = model_card(name).read_text(encoding="utf-8")
    head, sep, _ = text.removeprefix("---\n").partition("\n---\n")
    meta = yaml.safe_load(head) if text.startswith("---\n") and sep else None
    if not isinstance(meta, dict) or not {"lfpw_nme", "runtime"} <= set(meta):
        raise ModelError(f"{model_card(name)}: the card has no metadata block with lfpw_nme and runtime")
    return meta


def model_summary(name: str) -> str:
    """One line for `kdlandmarks models`: what the model is, its LFPW test NME and speed (from its card)."""
    meta = card_metadata(name)
    return f"{SHIPPED[name]}; LFPW test NME {float(meta['lfpw_nme']):.2f} %; {meta['runtime']}"


def resolve_model(name_or_path: str | Path, backend: str = "torch") -> Path:
    """The model file for a shipped model's name (for backend "onnx" its ONNX export in the precision of
    onnx_precision) or an existing path."""
    key, precision = split_precision(str(name_or_path))
    if key in SHIPPED:
        if backend == "onnx" and not has_onnx(key):
            raise ModelError(f"shipped model {key!r} has no ONNX export (it is PyTorch-only): use the torch backend")
        if precision and backend != "onnx":
            raise ModelError(f"{name_or_path}: a precision names one of the model's ONNX exports (backend onnx)")
        suffix = ("int8.onnx" if onnx_precision(str(name_or_path)) == "int8" else "onnx") if backend == "onnx" else "pt"
        path = WEIGHTS_DIR / f"{key}.{suffix}"
        if not path.is_file() and suffix == "pt":
            raise ModelError(f"shipped model {key!r}: its PyTorch weights are missing from this installation (they "
                             f"come with the source checkout, not the wheel): {TRAIN_INSTALL}, or pass a .pt file")
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
