"""Flip test at the codec level: a network's batch and its mirror images in one pass, the mirrored
view's points mirrored back, relabelled by the scheme's flip pairs and averaged. Used by inference
(LandmarkDetector's flip_test) and training (teachers' flip-test outputs)."""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from kdlandmarks.errors import ConfigError, FlipTestError


def flip_scheme(info: Any, where: Any = None) -> Any:
    """The LandmarkScheme flip test relabels a model's points with: the model's own (ModelInfo.scheme).

    FlipTestError (one line) when it cannot be read, does not match the model's point count, or has no
    flip pairs.
    """
    from kdlandmarks.data.schemes import get_scheme

    what = f"{where}: " if where else ""
    name = getattr(info, "scheme", None)
    try:
        scheme = get_scheme(name)
    except ConfigError as exc:
        raise FlipTestError(f"{what}flip test needs the model's landmark scheme {name!r}, which cannot be read "
                            f"({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})") from None
    if scheme.num_points != int(info.num_points):
        raise FlipTestError(f"{what}flip test: landmark scheme {scheme.name!r} has {scheme.num_points} points, "
                            f"the model predicts {info.num_points}")
    if not scheme.flip_pairs:
        raise FlipTestError(f"{what}flip test needs flip pairs, and landmark scheme {scheme.name!r} has none; "
                            "run without flip test")
    return scheme


def with_mirrors(batch: np.ndarray) -> np.ndarray:
    """(B, 3, S, S) network input -> (2B, 3, S, S): the batch, then each image mirrored left-right (exactly:
    a reversal of the width axis)."""
    return np.concatenate([batch, batch[..., ::-1]])


def merge_flip_views(plain: Any, mirrored: Any, scheme: Any, size: int) -> Any:
    """The flip-test average of (..., N, 2) points in the pixels of a `size`-wide network input: `plain` on
    the input, `mirrored` on its mirror image. The mirrored view is mirrored back (x -> size - 1 - x) and
    permuted with the scheme's flip_index, so that each point returns to its own index, then averaged.
    numpy arrays (float64 out) or torch tensors (dtype and device kept: the training loop's teachers)."""
    if not hasattr(plain, "new_tensor"):
        plain = np.asarray(plain, dtype=np.float64)
    return 0.5 * (plain + scheme.flip(mirrored, size))


def run_flip_test(run: Callable[[np.ndarray], np.ndarray], batch: np.ndarray, codec: Any, scheme: Any) -> np.ndarray:
    """Flip-test landmarks (B, N, 2) in input pixels for a (B, 3, S, S) float32 batch: `run` (the network,
    (M, 3, S, S) -> (M, 2N)) is called once, on the batch and its mirrors together (2B images)."""
    b = len(batch)
    points = codec.decode(np.asarray(run(with_mirrors(batch)), dtype=np.float64))
    return merge_flip_views(points[:b], points[b:], scheme, codec.input_size)
