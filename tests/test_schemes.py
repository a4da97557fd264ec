"""Landmark schemes: flip tables (docs/method.md#schemes), normalising distances and custom scheme files."""
from __future__ import annotations

import json

import numpy as np
import pytest

from kdlandmarks.errors import ConfigError
from kdlandmarks.data.schemes import COFW, SCHEMES, W300, WFLW, get_scheme, load_scheme_file, scheme_for_points


def _pairs_from_table(perm: np.ndarray) -> set[tuple[int, int]]:
    return {(min(i, j), max(i, j)) for i, j in enumerate(perm) if i != j}


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_flip_index_is_an_involution(name):
    perm = SCHEMES[name].flip_index
    assert sorted(perm.tolist()) == list(range(SCHEMES[name].num_points))
    np.testing.assert_array_equal(perm[perm], np.arange(len(perm)))


@pytest.mark.parametrize("name", sorted(SCHEMES))
def test_flipping_twice_gives_the_face_back(name):
    scheme = SCHEMES[name]
    pts = np.random.default_rng(0).uniform(0, 100, size=(3, scheme.num_points, 2))
    once = scheme.flip(pts, width=101)
    assert not np.allclose(once, pts)
    np.testing.assert_allclose(scheme.flip(once, width=101), pts)


def test_300w_table_matches_the_spec():
    expected = set()
    expected |= {(i, 16 - i) for i in range(8)}
    expected |= {(17 + i, 26 - i) for i in range(5)}
    expected |= {(31, 35), (32, 34), (36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)}
    expected |= {(48, 54), (49, 53), (50, 52), (60, 64), (61, 63), (65, 67), (55, 59), (56, 58)}
    assert _pairs_from_table(W300.flip_index) == expected


def test_cofw_table_matches_the_spec():
    expected = {(0, 1), (2, 3), (4, 6), (5, 7), (8, 9), (10, 11), (12, 14), (13, 15), (16, 17), (18, 19), (22, 23)}
    assert _pairs_from_table(COFW.flip_index) == expected


def test_wflw_contour_uses_the_correct_mapping():
    perm = WFLW.flip_index
    # The original code's duplicated index 8 swapped 8 <-> 23 and never moved 9.
    assert perm[9] == 23 and perm[23] == 9
    assert perm[8] == 24 and perm[24] == 8
    assert all(perm[i] == 32 - i for i in range(33))
    assert perm[16] == 16
    assert perm[96] == 97 and perm[60] == 72 and perm[76] == 82


def _synthetic_300w_face() -> np.ndarray:
    """A frontal 68-point face in a 200-px image: the subject's right side (points 0-8, 17-21, 36-41) on the image left."""
    pts = np.zeros((68, 2))
    pts[0:17, 0] = np.linspace(30, 170, 17)
    pts[0:17, 1] = 100 + 60 * np.sin(np.linspace(0, np.pi, 17))
    pts[17:22, 0], pts[22:27, 0] = np.linspace(45, 90, 5), np.linspace(110, 155, 5)
    pts[17:27, 1] = 60
    pts[27:31] = np.c_[np.full(4, 100.0), np.linspace(70, 110, 4)]
    pts[31:36] = np.c_[np.linspace(85, 115, 5), np.full(5, 120.0)]
    pts[36:42] = np.c_[[55, 62, 72, 80, 72, 62], [80, 76, 76, 80, 84, 84]]
    pts[42:48] = np.c_[[120, 128, 138, 145, 138, 128], [80, 76, 76, 80, 84, 84]]
    pts[48:60, 0] = 100 + 30 * np.cos(np.linspace(np.pi, -np.pi, 12, endpoint=False))
    pts[48:60, 1] = 150 + 10 * np.sin(np.linspace(np.pi, -np.pi, 12, endpoint=False))
    pts[60:68, 0] = 100 + 20 * np.cos(np.linspace(np.pi, -np.pi, 8, endpoint=False))
    pts[60:68, 1] = 150 + 4 * np.sin(np.linspace(np.pi, -np.pi, 8, endpoint=False))
    return pts


def _sample_300w_face() -> np.ndarray:
    from kdlandmarks.data.datasets import sample_root
    from kdlandmarks.data.datasets.w300 import read_300w

    return read_300w(sample_root(), "lfpw/testset")[0].landmarks


@pytest.mark.parametrize("face", [_synthetic_300w_face, _sample_300w_face])
def test_flipped_300w_face_keeps_anatomical_sides(face):
    pts = face()
    width = 220
    left_eye, right_eye = list(W300.groups["left_eye"]), list(W300.groups["right_eye"])
    # In an upright frontal face the subject's left eye is on the image right.
    assert pts[left_eye, 0].mean() > pts[right_eye, 0].mean()
    flipped = W300.flip(pts, width)
    assert flipped[left_eye, 0].mean() > flipped[right_eye, 0].mean()
    assert flipped[16, 0] > flipped[0, 0] and flipped[54, 0] > flipped[48, 0]
    # Relabelled point 36 (right eye, outer) is the mirror image of the old 45 (left eye, outer).
    np.testing.assert_allclose(flipped[36], [width - 1 - pts[45, 0], pts[45, 1]])
    np.testing.assert_allclose(W300.interocular_distance(flipped), W300.interocular_distance(pts))


def test_normalising_distances():
    pts = _synthetic_300w_face()
    assert W300.interocular_distance(pts) == pytest.approx(145 - 55)
    assert W300.interpupil_distance(pts) == pytest.approx((797 - 403) / 6)
    batch = np.stack([pts, pts * 2])
    np.testing.assert_allclose(W300.interocular_distance(batch), [90, 180])


def test_get_scheme_by_name_and_errors():
    assert get_scheme("300W") is W300 and get_scheme("wflw") is WFLW
    assert scheme_for_points(29) is COFW
    with pytest.raises(ConfigError, match="unknown landmark scheme"):
        get_scheme("nope")
    with pytest.raises(ConfigError, match="no built-in scheme has 5 points"):
        scheme_for_points(5)


FIVE = "name: five\nnum_points: 5\nflip_pairs: [[0, 1], [3, 4]]\ninter_ocular: [0, 1]\ngroups: {eyes: [0, 1]}\n"


def test_custom_scheme_file_yaml_and_json(tmp_path):
    path = tmp_path / "five.yaml"
    path.write_text(FIVE)
    scheme = get_scheme(path)
    assert scheme.name == "five" and scheme.num_points == 5
    np.testing.assert_array_equal(scheme.flip_index, [1, 0, 2, 4, 3])
    assert scheme.pupils == ((0,), (1,)) and scheme.groups["eyes"] == (0, 1)

    jpath = tmp_path / "five.json"
    jpath.write_text(json.dumps({"num_points": 5, "flip_pairs": [[0, 1]], "inter_ocular": [0, 1],
                                 "pupils": [[0, 2], [1, 2]]}))
    js = load_scheme_file(jpath)
    assert js.name == "five" and js.pupils == ((0, 2), (1, 2))


@pytest.mark.parametrize("text, message", [
    ("num_points: 5\nflip_pairs: [[0, 5]]\ninter_ocular: [0, 1]\n", "flip index 5 outside"),
    ("num_points: 5\nflip_pairs: [[0, 1], [1, 2]]\ninter_ocular: [0, 1]\n", "appears in two flip pairs"),
    ("num_points: 5\ninter_ocular: [0, 9]\n", "normalising index 9"),
    ("num_points: 5\ninter_ocular: [0, 1, 2]\n", "inter_ocular must name two points"),
    ("flip_pairs: []\ninter_ocular: [0, 1]\n", "malformed scheme"),
    ("num_points: five\ninter_ocular: [0, 1]\n", "malformed scheme"),
    ("num_points: 5\ninter_ocular: [0, 1]\ncolour: red\n", "unknown scheme key"),
    ("- 1\n- 2\n", "must be a mapping"),
    ("num_points: [5\n", "not valid YAML"),
])
def test_custom_scheme_file_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_scheme_file(path)


def test_missing_scheme_file(tmp_path):
    with pytest.raises(ConfigError, match="scheme file not found"):
        get_scheme(tmp_path / "absent.yaml")
