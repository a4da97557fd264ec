"""Inference layer: from an image or a video to landmarks, torch-free on the default install.

- `runtime`: one place to run a network (onnxruntime or torch) on a batch of crops.
- `detection`: face detectors behind one protocol (one module per detector) and their registry.
- `calibration`: box conventions and the box-to-crop calibrations, one resolver for all callers.
- `detector`: `LandmarkDetector` (detect or take boxes, crop, run, map back).
- `video`: reading video files frame by frame, and One-Euro smoothing (`SmoothingOptions`, `FaceFilter`).
- `tracking`: `LandmarkTracker` (faces followed from their previous landmarks, one frame at a time).

Depends on the data and models layers.
"""
from kdlandmarks._lazy import lazy_exports

_PUBLIC = {"LandmarkDetector": "detector", "Face": "detector", "create_detector": "detection",
           "Detection": "detection", "load_runner": "runtime", "LandmarkTracker": "tracking"}
__all__ = list(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
