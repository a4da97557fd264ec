"""Export layer: a trained model to the files inference runs on.

- `onnx`: ONNX export with a parity check, int8 quantisation.
- `modelspec`: the runtime description written beside an `.onnx` for the browser app.

Depends on every layer below the applications.
"""
from kdlandmarks._lazy import lazy_exports

_PUBLIC = {"export_onnx": "onnx", "quantize_int8": "onnx", "export_onnx_int8": "onnx"}
__all__ = list(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
