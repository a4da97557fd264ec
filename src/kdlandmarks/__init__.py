"""kdlandmarks: lightweight facial-landmark detectors trained with knowledge distillation (KD-Loss)."""
from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["LandmarkDetector", "LandmarkTracker", "predict_paths", "__version__"]


def __getattr__(name: str):
    # Lazy so `import kdlandmarks` (and the CLI) stays fast: the detector pulls in onnxruntime and OpenCV.
    if name == "LandmarkDetector":
        from kdlandmarks.inference.detector import LandmarkDetector

        return LandmarkDetector
    if name == "LandmarkTracker":
        from kdlandmarks.inference.tracking import LandmarkTracker

        return LandmarkTracker
    if name == "predict_paths":
        from kdlandmarks.apps.predict import predict_paths

        return predict_paths
    raise AttributeError(name)
