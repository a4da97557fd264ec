"""Applications: whole jobs built on the library, each called by one CLI command.

- `predict`: files to files (images, folders, videos -> .json / .pts / drawings / .mp4).
- `bench`: latency of the whole pipeline beside the peers. `demo`: the method at toy scale.
- `web`: serving the browser app.
"""
from kdlandmarks._lazy import lazy_exports

_PUBLIC = {"predict_paths": "predict", "run_bench": "bench", "run_demo": "demo"}
__all__ = list(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
