"""Target encoding and decoding together: input-frame pixels <-> the normalised space networks regress.

Normalised space (all datasets by default): u = (x + 0.5) / S - 0.5 for a pixel centre x in an S x S
input, so the crop spans [-0.5, 0.5] on both axes with 0 at its centre, and the vector is interleaved
(x0, y0, x1, y1, ...). This is the paper's 300-W/WFLW scale without its sign flip ((112 - x) / 224);
the losses are symmetric under that flip, so the KD-Loss constants act identically. The paper's COFW
convention (raw 224-pixel targets) is available as ``space="pixels"``.
"""
from __future__ import annotations

from kdlandmarks.errors import ConfigError

SPACES = ("normalized", "pixels")


class LandmarkCodec:
    def __init__(self, input_size: int, space: str = "normalized") -> None:
        if space not in SPACES:
            raise ConfigError(f"unknown coordinate space {space!r}; choose one of {', '.join(SPACES)}")
        self.input_size = int(input_size)
        self.space = space

    def encode(self, points):
        """(..., N, 2) input-frame pixels -> (..., 2N) targets; numpy or torch in, same type out."""
        flat = points.reshape(*points.shape[:-2], -1)
        if self.space == "pixels":
            return flat
        return (flat + 0.5) / self.input_size - 0.5

    def decode(self, vector):
        """(..., 2N) network outputs -> (..., N, 2) input-frame pixels."""
        pts = vector.reshape(*vector.shape[:-1], -1, 2)
        if self.space == "pixels":
            return pts
        return (pts + 0.5) * self.input_size - 0.5
