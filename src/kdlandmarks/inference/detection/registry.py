"""The registry of face detectors by name: what is installed, `create_detector` and `register_detector`."""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable

from kdlandmarks.errors import ConfigError
from kdlandmarks.inference.detection.base import FaceDetector, as_detector
from kdlandmarks.inference.detection.blazeface import MediaPipeDetector, mediapipe_unavailable
from kdlandmarks.inference.detection.dlib_hog import DlibDetector, dlib_unavailable
from kdlandmarks.inference.detection.haar import HaarDetector, haar_unavailable
from kdlandmarks.inference.detection.retinaface import RetinaFaceDetector, retinaface_unavailable

AUTO_ORDER = ("retinaface", "haar")  # best first


@dataclass
class _Entry:
    factory: Callable[..., Any]
    unavailable: Callable[[], str | None]  # None when usable, else why not


DETECTORS: dict[str, _Entry] = {
    "retinaface": _Entry(RetinaFaceDetector, retinaface_unavailable),
    "haar": _Entry(HaarDetector, haar_unavailable),
    "dlib": _Entry(DlibDetector, dlib_unavailable),
    "mediapipe": _Entry(MediaPipeDetector, mediapipe_unavailable),
    "mediapipe-full": _Entry(lambda **options: MediaPipeDetector(model="full", **options), mediapipe_unavailable),
}


def register_detector(name: str, factory: Callable[..., Any],
                      unavailable: Callable[[], str | None] | None = None) -> None:
    """Add a detector under `name`; `factory(**options)` returns a FaceDetector or a callable."""
    DETECTORS[name] = _Entry(factory, unavailable or (lambda: None))


def detector_status() -> dict[str, str | None]:
    """Each registered detector's name -> None when installed, else the reason it is not."""
    return {name: entry.unavailable() for name, entry in DETECTORS.items()}


def available_detectors() -> list[str]:
    return [name for name, reason in detector_status().items() if reason is None]


def check_detector_name(name: str) -> str:
    """`name` when it can make a detector here ('auto', an installed registry name or 'module:callable');
    ConfigError saying what brings a registered detector that is not installed, or what names exist."""
    if name == "auto" or (":" in name and name not in DETECTORS):
        return name
    entry = DETECTORS.get(name)
    if entry is None:
        raise ConfigError(f"unknown face detector {name!r}: choose auto, {', '.join(available_detectors())} "
                          "or module:callable")
    reason = entry.unavailable()
    if reason is not None:
        raise ConfigError(f"face detector {name!r} {reason}")
    return name


def resolve_detector_name(name: str) -> str:
    """'auto' -> the best installed detector's name; ConfigError when none is installed."""
    if name != "auto":
        return name
    status = detector_status()
    order = list(AUTO_ORDER) + [n for n in DETECTORS if n not in AUTO_ORDER]
    for candidate in order:
        if status.get(candidate) is None:
            return candidate
    raise ConfigError("no face detector is installed (" + "; ".join(f"{n}: {r}" for n, r in status.items())
                      + "); pass face boxes instead")


def create_detector(name: str | Any = "auto", **options: Any) -> FaceDetector:
    """A detector by registry name, 'auto' (best installed), 'module:attribute' or an object/callable."""
    if not isinstance(name, str):
        return as_detector(name)
    if ":" in name and name not in DETECTORS:
        module, _, attr = name.partition(":")
        try:
            obj = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError) as exc:
            raise ConfigError(f"face detector {name!r}: cannot import it ({exc})") from None
        obj = obj(**options) if isinstance(obj, type) else obj
        return as_detector(obj, getattr(obj, "name", None) or name)
    resolved = resolve_detector_name(check_detector_name(name))
    return as_detector(DETECTORS[resolved].factory(**options), resolved)
