"""kdlandmarks: lightweight facial-landmark detectors trained with knowledge distillation (KD-Loss)."""
from __future__ import annotations

from kdlandmarks._lazy import lazy_exports

__version__ = "0.1.0"

# Lazy so `import kdlandmarks` (and the CLI) stays fast: the detector pulls in onnxruntime and OpenCV.
_PUBLIC = {"LandmarkDetector": "inference.detector", "LandmarkTracker": "inference.tracking",
           "predict_paths": "apps.predict"}
__all__ = [*_PUBLIC, "__version__"]
__getattr__ = lazy_exports(__name__, _PUBLIC)
