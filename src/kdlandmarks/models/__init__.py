"""Models layer: what a network is and which ones ship.

- `info`: `ModelInfo`, everything a model file says about its network (torch-free).
- `zoo`: the registry of shipped models, their files and cards (torch-free).
- `backbones`: `create_model` (timm backbone + regression head), `save_model` / `load_model` (torch).
- `losses`: L2/L1/wing and the paper's `KDLoss` (torch).

Depends on the data layer only.
"""
from kdlandmarks._lazy import lazy_exports

_PUBLIC = {"ModelInfo": "info", "create_model": "backbones", "load_model": "backbones", "save_model": "backbones",
           "KDLoss": "losses", "resolve_model": "zoo", "shipped_names": "zoo", "DEFAULT_MODEL": "zoo"}
__all__ = list(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
