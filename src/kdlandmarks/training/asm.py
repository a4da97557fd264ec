"""Soft landmarks: a PCA shape model (ASM) that projects shapes onto its top components and clamps them.

docs/method.md#soft-landmarks: plain PCA of the interleaved (x0, y0, x1, y1, ...) vectors with the mean removed (no
Procrustes), eigenvalues = explained variance with divisor M - 1 (as sklearn's ``explained_variance_``),
k = the smallest number of components whose cumulative explained-variance ratio reaches ``variance``.
A soft landmark is ``mean + V b`` with ``b = V^T (x - mean)`` clamped to +-3 sqrt(eigenvalue).
``variance=1.0`` means Hard-landmarks: every component is kept and ``soften`` returns its input.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.fileio import atomic_path

ASM_FORMAT = "kdlandmarks-asm/1"
CLAMP_SIGMAS = 3.0


class ActiveShapeModel:
    """PCA shape model over (N, 2) landmark sets; fit once on the training shapes, then `soften`."""

    def __init__(self, variance: float = 0.95) -> None:
        variance = float(variance)
        if not 0.0 < variance <= 1.0:
            raise ConfigError(f"ASM variance must be in (0, 1], got {variance}")
        self.variance = variance
        self.mean: np.ndarray | None = None  # (2N,)
        self.components: np.ndarray | None = None  # (k, 2N), rows orthonormal
        self.eigenvalues: np.ndarray | None = None  # (k,)
        self.explained_variance_ratio: np.ndarray | None = None  # (k,)

    @property
    def fitted(self) -> bool:
        return self.mean is not None

    @property
    def n_components(self) -> int:
        self._require_fit()
        return int(self.components.shape[0])

    @property
    def num_points(self) -> int:
        self._require_fit()
        return int(self.mean.shape[0] // 2)

    def fit(self, shapes: np.ndarray) -> "ActiveShapeModel":
        """Fit on an (M, N, 2) array of landmark sets (in whatever frame the targets use)."""
        arr = np.asarray(shapes, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[2] != 2:
            raise DataError(f"ASM fit needs an (M, N, 2) array of shapes, got shape {arr.shape}")
        if arr.shape[0] < 2:
            raise DataError(f"ASM fit needs at least 2 shapes, got {arr.shape[0]}")
        if not np.isfinite(arr).all():
            raise DataError("ASM fit: shapes contain NaN or infinite values")
        x = arr.reshape(arr.shape[0], -1)
        mean = x.mean(axis=0)
        _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
        eig = s**2 / (x.shape[0] - 1)
        total = eig.sum()
        ratio = eig / total if total > 0 else np.zeros_like(eig)
        if self.variance >= 1.0:
            k = len(eig)
        else:
            # Smallest k whose cumulative ratio reaches the target. sklearn uses a strict ">", which
            # differs only on an exact tie; the tiny tolerance absorbs round-off in the cumulative sum.
            cum = np.cumsum(ratio)
            k = int(np.searchsorted(cum, self.variance - 1e-12, side="left")) + 1
            k = min(max(k, 1), len(eig))
        self.mean = mean
        self.components = vt[:k].copy()
        self.eigenvalues = eig[:k].copy()
        self.explained_variance_ratio = ratio[:k].copy()
        return self

    def project(self, shapes: np.ndarray) -> np.ndarray:
        """Shape coefficients b = V^T (x - mean), unclamped: (..., N, 2) -> (..., k)."""
        x = self._flatten(shapes)
        return (x - self.mean) @ self.components.T

    def soften(self, shapes: np.ndarray) -> np.ndarray:
        """Soft landmarks of (N, 2) or (..., N, 2) shapes, same shape out (docs/method.md#soft-landmarks)."""
        x = self._flatten(shapes)
        arr = np.asarray(shapes, dtype=np.float64)
        if self.variance >= 1.0:
            return arr.copy()
        b = (x - self.mean) @ self.components.T
        limit = CLAMP_SIGMAS * np.sqrt(self.eigenvalues)
        b = np.clip(b, -limit, limit)
        return (self.mean + b @ self.components).reshape(arr.shape)

    def save(self, path: str | Path) -> None:
        """Write the model as one small .npz, atomically."""
        self._require_fit()
        with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: np.savez adds no suffix
            np.savez(f, format=np.array(ASM_FORMAT), variance=np.array(self.variance), mean=self.mean,
                     components=self.components, eigenvalues=self.eigenvalues,
                     explained_variance_ratio=self.explained_variance_ratio)

    @classmethod
    def load(cls, path: str | Path) -> "ActiveShapeModel":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"{path}: ASM file not found")
        try:
            with np.load(path, allow_pickle=False) as data:
                if str(data["format"]) != ASM_FORMAT:
                    raise DataError(f"{path}: not a kdlandmarks ASM file (format {str(data['format'])!r})")
                model = cls(float(data["variance"]))
                model.mean = np.asarray(data["mean"], dtype=np.float64)
                model.components = np.asarray(data["components"], dtype=np.float64)
                model.eigenvalues = np.asarray(data["eigenvalues"], dtype=np.float64)
                model.explained_variance_ratio = np.asarray(data["explained_variance_ratio"], dtype=np.float64)
        except DataError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            raise DataError(f"{path}: not a readable ASM file ({type(exc).__name__})") from None
        k, dim = model.components.shape if model.components.ndim == 2 else (-1, -1)
        if model.mean.shape != (dim,) or model.eigenvalues.shape != (k,) or dim % 2:
            raise DataError(f"{path}: inconsistent ASM arrays")
        return model

    def _require_fit(self) -> None:
        if self.mean is None:
            raise ConfigError("ASM is not fitted: call fit(shapes) or ActiveShapeModel.load(path) first")

    def _flatten(self, shapes: np.ndarray) -> np.ndarray:
        self._require_fit()
        arr = np.asarray(shapes, dtype=np.float64)
        if arr.ndim < 2 or arr.shape[-1] != 2 or arr.shape[-2] != self.num_points:
            raise DataError(f"ASM expects (..., {self.num_points}, 2) shapes, got shape {arr.shape}")
        if not np.isfinite(arr).all():
            raise DataError("ASM: shapes contain NaN or infinite values")
        return arr.reshape(*arr.shape[:-2], -1)


def fit_store_asm(store_path: str | Path, variance: float = 0.95) -> dict:
    """Fit the ASM on a store's hard landmarks (input frame), write soft-landmarks and asm.npz into the store."""
    from kdlandmarks.evaluation.metrics import per_image_nme
    from kdlandmarks.data.store import FaceStore

    store = FaceStore(store_path)
    asm = ActiveShapeModel(variance).fit(store.input_frame(store.landmarks))
    soft_input = asm.soften(store.input_frame(store.landmarks))
    soft_store = store.store_frame(soft_input)  # back to store pixels, where the hard landmarks live
    hard = store.landmarks.astype(np.float64)
    dist = per_image_nme(soft_store, hard, store.scheme)  # how far the soft-landmarks moved (inter-ocular NME)
    tmp = store.path / ".asm-fit.npz"
    asm.save(tmp)
    store.write_soft_landmarks(soft_store, tmp, {"variance": variance, "n_components": asm.n_components})
    tmp.unlink(missing_ok=True)
    return {"samples": len(store), "num_points": store.num_points, "n_components": asm.n_components,
            "mean_distance_nme": float(dist.mean() * 100)}
