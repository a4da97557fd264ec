"""Lazy re-exports for the layer packages' `__init__`: naming a package's public interface must not import
its heavy modules (torch, onnxruntime, OpenCV) until a name is used."""
from __future__ import annotations

from importlib import import_module
from typing import Any, Callable


def lazy_exports(package: str, names: dict[str, str]) -> Callable[[str], Any]:
    """A module `__getattr__` that imports `package.<names[name]>` on first use of `name`."""

    def __getattr__(name: str) -> Any:
        if name in names:
            return getattr(import_module(f"{package}.{names[name]}"), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__
