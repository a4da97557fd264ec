"""Data layer: from a dataset on disk to training tensors. Torch-free except `augment`.

- `schemes`: landmark schemes (point count, groups, flip pairs) for 300-W, COFW, WFLW and custom files.
- `datasets`: readers of the original layouts, each yielding `FaceRecord`s.
- `images`: image checks and the bounded resize shared by every reader and detector.
- `crop`: square crops from landmarks or boxes (`CropTransform`, exactly invertible).
- `codec`: input pixels <-> the network's target space. `flip`: the flip test (mirrored batch, merged views).
- `store`: the prepared, memory-mapped training store. `augment`: batched augmentation (torch).
- `sample_faces`: real annotated crops for parity checks, int8 calibration and benchmarks.

Depends only on `kdlandmarks.errors`, `kdlandmarks.fileio` and `kdlandmarks.extras`.
"""
from kdlandmarks._lazy import lazy_exports

_PUBLIC = {"LandmarkScheme": "schemes", "get_scheme": "schemes", "FaceRecord": "datasets", "load_dataset": "datasets",
           "read_image": "datasets", "CropTransform": "crop", "BoxCalibration": "crop", "LandmarkCodec": "codec",
           "FaceStore": "store", "prepare_store": "store"}
__all__ = list(_PUBLIC)
__getattr__ = lazy_exports(__name__, _PUBLIC)
