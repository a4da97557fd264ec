"""Evaluation layer: scoring models on annotated faces.

- `metrics`: NME, failure rate, CED and AUC.
- `protocols`: `evaluate_model`, one model on one split under a crop protocol (ground truth or detector).
- `report`: side-by-side comparison of evaluations, paired face by face. `plots`: CED figures.

Depends on the data, models and inference layers.
"""
from kdlandmarks._lazy import lazy_exports

_PUBLIC = {"evaluate_model": "protocols", "EvaluationOptions": "protocols", "per_image_nme": "metrics", "summarize": "metrics"}
__all__ = list(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
