"""The optional `train` extra: what it adds, and one-line errors where it is needed but not installed.

`pip install kdlandmarks` installs what inference needs (NumPy, OpenCV, onnxruntime, PyYAML, tqdm,
h5py): the shipped models and exported .onnx files run, `predict`, `evaluate`, `models` and `bench`'s
onnxruntime rows work, and torch is never imported. `pip install 'kdlandmarks[train]'` adds PyTorch,
torchvision, timm and Lightning (training, the torch backend, .pt/.ckpt model files), onnx (export and
int8 quantisation), matplotlib (CED pictures) and SciPy (MATLAB v5 .mat files).
"""
from __future__ import annotations

import importlib.util
from typing import Iterable

from kdlandmarks.errors import MissingExtraError

# the name kdlandmarks is not on the package index yet: the extra installs from a clone (whose checkout also
# holds the shipped teachers)
TRAIN_INSTALL = "pip install -e '.[train]' in a clone of the repository"
# Top-level modules that only the train extra installs.
TRAIN_MODULES = ("torch", "torchvision", "timm", "lightning", "onnx", "onnxscript", "scipy", "matplotlib")


def missing(modules: Iterable[str]) -> list[str]:
    """Those of `modules` that cannot be imported here (not installed), without importing any."""
    gone = []
    for name in modules:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a broken install, or a module blocked in sys.modules
            found = False
        if not found:
            gone.append(name)
    return gone


def train_extra_message(what: str, gone: Iterable[str]) -> str:
    """The one line: `what` needs the training extra, which modules are missing, and the pip command."""
    gone = list(gone)
    which = f" ({', '.join(gone)} {'is' if len(gone) == 1 else 'are'} not installed)" if gone else ""
    return f"{what} needs the training extra{which}: {TRAIN_INSTALL}"


def require_train(what: str, modules: Iterable[str] = ("torch",)) -> None:
    """MissingExtraError (one line) when any of `modules` is not installed; `what` names the feature."""
    gone = missing(modules)
    if gone:
        raise MissingExtraError(train_extra_message(what, gone))


def train_module_missing(exc: BaseException) -> str | None:
    """The train-extra module an ImportError is about (its top-level name), or None for any other."""
    if not isinstance(exc, ImportError):
        return None
    name = (getattr(exc, "name", None) or "").split(".")[0]
    return name if name in TRAIN_MODULES else None
