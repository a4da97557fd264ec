"""Landmark schemes in one place: point groups, horizontal-flip pairs and normalising pairs.

Flip pairs follow docs/method.md#schemes (the WFLW contour uses the correct i <-> 32-i mapping, not the
original code's duplicated index 8). Inter-ocular pairs are the outer eye corners; inter-pupil uses
the pupil points where a scheme has them and eye-contour centroids otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from kdlandmarks.errors import ConfigError


@dataclass(frozen=True)
class LandmarkScheme:
    name: str
    num_points: int
    flip_pairs: tuple[tuple[int, int], ...]
    inter_ocular: tuple[int, int]
    # Each pupil is the centroid of a group of points (a single point where the scheme annotates pupils).
    pupils: tuple[tuple[int, ...], tuple[int, ...]]
    groups: Mapping[str, tuple[int, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        seen: set[int] = set()
        for a, b in self.flip_pairs:
            for i in (a, b):
                if not 0 <= i < self.num_points:
                    raise ConfigError(f"scheme {self.name}: flip index {i} outside 0..{self.num_points - 1}")
                if i in seen:
                    raise ConfigError(f"scheme {self.name}: point {i} appears in two flip pairs")
                seen.add(i)
        for i in (*self.inter_ocular, *self.pupils[0], *self.pupils[1]):
            if not 0 <= i < self.num_points:
                raise ConfigError(f"scheme {self.name}: normalising index {i} outside 0..{self.num_points - 1}")

    @property
    def flip_index(self) -> np.ndarray:
        """Permutation p such that flipped[i] = mirrored(original[p[i]])."""
        perm = np.arange(self.num_points)
        for a, b in self.flip_pairs:
            perm[a], perm[b] = b, a
        return perm

    def flip(self, landmarks: Any, width: float) -> Any:
        """Mirror (..., N, 2) pixel-centre landmarks in an image `width` pixels wide and relabel them: a new
        float64 numpy array, or for a torch tensor a new tensor of its dtype on its device (the training
        loop's flip test uses this, without this module importing torch)."""
        if not hasattr(landmarks, "new_tensor"):
            landmarks = np.asarray(landmarks, dtype=np.float64)
        out = landmarks[..., self.flip_index.tolist(), :]  # advanced indexing copies, in numpy and torch alike
        out[..., 0] = (width - 1) - out[..., 0]
        return out

    def interocular_distance(self, landmarks: np.ndarray) -> np.ndarray:
        a, b = self.inter_ocular
        return np.linalg.norm(landmarks[..., a, :] - landmarks[..., b, :], axis=-1)

    def interpupil_distance(self, landmarks: np.ndarray) -> np.ndarray:
        left = landmarks[..., list(self.pupils[0]), :].mean(axis=-2)
        right = landmarks[..., list(self.pupils[1]), :].mean(axis=-2)
        return np.linalg.norm(left - right, axis=-1)


def _mirror(left: Sequence[int], right: Sequence[int]) -> list[tuple[int, int]]:
    return list(zip(left, right))


W300 = LandmarkScheme(
    name="300w",
    num_points=68,
    flip_pairs=tuple(
        _mirror(range(0, 8), range(16, 8, -1))
        + _mirror(range(17, 22), range(26, 21, -1))
        + [(31, 35), (32, 34)]
        + [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]
        + [(48, 54), (49, 53), (50, 52), (60, 64), (61, 63), (67, 65), (59, 55), (58, 56)]
    ),
    inter_ocular=(36, 45),
    pupils=(tuple(range(36, 42)), tuple(range(42, 48))),
    groups={
        "jaw": tuple(range(0, 17)),
        "right_brow": tuple(range(17, 22)),
        "left_brow": tuple(range(22, 27)),
        "nose_bridge": tuple(range(27, 31)),
        "nose_base": tuple(range(31, 36)),
        "right_eye": tuple(range(36, 42)),
        "left_eye": tuple(range(42, 48)),
        "outer_lip": tuple(range(48, 60)),
        "inner_lip": tuple(range(60, 68)),
    },
)

COFW = LandmarkScheme(
    name="cofw",
    num_points=29,
    flip_pairs=((0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)),
    inter_ocular=(8, 9),
    pupils=((16,), (17,)),
    groups={
        "brows": tuple(range(0, 8)),
        "eyes": tuple(range(8, 16)),
        "pupils": (16, 17),
        "nose": (18, 19, 20, 21),
        "mouth": tuple(range(22, 28)),
        "chin": (28,),
    },
)

WFLW = LandmarkScheme(
    name="wflw",
    num_points=98,
    flip_pairs=tuple(
        _mirror(range(0, 16), range(32, 16, -1))
        + [(33, 46), (34, 45), (35, 44), (36, 43), (37, 42), (38, 50), (39, 49), (40, 48), (41, 47)]
        + [(60, 72), (61, 71), (62, 70), (63, 69), (64, 68), (65, 75), (66, 74), (67, 73)]
        + [(96, 97)]
        + [(55, 59), (56, 58)]
        + [(76, 82), (77, 81), (78, 80), (88, 92), (89, 91), (95, 93), (87, 83), (86, 84)]
    ),
    inter_ocular=(60, 72),
    pupils=((96,), (97,)),
    groups={
        "contour": tuple(range(0, 33)),
        "right_brow": tuple(range(33, 42)),
        "left_brow": tuple(range(42, 51)),
        "nose": tuple(range(51, 60)),
        "right_eye": tuple(range(60, 68)),
        "left_eye": tuple(range(68, 76)),
        "outer_lip": tuple(range(76, 88)),
        "inner_lip": tuple(range(88, 96)),
        "pupils": (96, 97),
    },
)

SCHEMES: dict[str, LandmarkScheme] = {s.name: s for s in (W300, COFW, WFLW)}
SCHEME_FILE_SUFFIXES = (".yaml", ".yml", ".json")


def get_scheme(name_or_path: str | Path) -> LandmarkScheme:
    """A built-in scheme by name (300w, cofw, wflw) or a custom one from a YAML/JSON scheme file."""
    key = str(name_or_path).lower()
    if key in SCHEMES:
        return SCHEMES[key]
    path = Path(name_or_path)
    if path.suffix.lower() in SCHEME_FILE_SUFFIXES:
        return load_scheme_file(path)
    raise ConfigError(f"unknown landmark scheme {name_or_path!r}: use one of {sorted(SCHEMES)} or a scheme file")


def scheme_for_points(num_points: int) -> LandmarkScheme:
    for scheme in SCHEMES.values():
        if scheme.num_points == num_points:
            return scheme
    raise ConfigError(f"no built-in scheme has {num_points} points: pass a scheme file")


def load_scheme_file(path: str | Path) -> LandmarkScheme:
    """Read a custom scheme: num_points, flip_pairs, inter_ocular, optional pupils, groups and name.

    Example (YAML)::

        name: my5
        num_points: 5
        flip_pairs: [[0, 1], [3, 4]]
        inter_ocular: [0, 1]
        pupils: [[0], [1]]        # optional; defaults to the inter-ocular points
    """
    import yaml

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: scheme file not found")
    try:
        spec = yaml.safe_load(path.read_text())
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a YAML/JSON text file") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML/JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"{path}: a scheme file must be a mapping")
    known = {"name", "num_points", "flip_pairs", "inter_ocular", "pupils", "groups"}
    unknown = set(spec) - known
    if unknown:
        raise ConfigError(f"{path}: unknown scheme key(s) {sorted(unknown)}; known: {sorted(known)}")
    try:
        num_points = int(spec["num_points"])
        inter_ocular = tuple(int(i) for i in spec["inter_ocular"])
        flip_pairs = tuple((int(a), int(b)) for a, b in spec.get("flip_pairs") or [])
        pupils_spec = spec.get("pupils") or [[inter_ocular[0]], [inter_ocular[1]]]
        pupils = (tuple(int(i) for i in pupils_spec[0]), tuple(int(i) for i in pupils_spec[1]))
        groups = {str(k): tuple(int(i) for i in v) for k, v in (spec.get("groups") or {}).items()}
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ConfigError(f"{path}: malformed scheme ({type(exc).__name__}: {exc})") from None
    if len(inter_ocular) != 2:
        raise ConfigError(f"{path}: inter_ocular must name two points")
    return LandmarkScheme(
        name=str(spec.get("name", path.stem)),
        num_points=num_points,
        flip_pairs=flip_pairs,
        inter_ocular=inter_ocular,  # type: ignore[arg-type]
        pupils=pupils,
        groups=groups,
    )
