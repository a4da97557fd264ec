"""Rolled faces: the quarter-turn detector search maps boxes and keypoints back exactly."""
import numpy as np
import pytest

from kdlandmarks.inference.detection.base import Detection
from kdlandmarks.inference.detection.rotations import RotationSearch, turned_back


class UprightOnly:
    """A fake detector: finds the bright marker only when the marker's arrow (bright above dim) points up."""

    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        ys, xs = np.nonzero(image[:, :, 0] == 255)
        dim_ys, _ = np.nonzero(image[:, :, 0] == 100)
        if ys.size == 0 or not ys.mean() < dim_ys.mean() or abs(ys.mean() - dim_ys.mean()) < 1:
            return []
        box = np.array([xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5])
        kps = np.array([[xs.min(), ys.min()], [xs.max(), ys.min()], [xs.mean(), ys.mean()],
                        [xs.min(), ys.max()], [xs.max(), ys.max()]], dtype=np.float64)
        return [Detection(box, 0.9, kps)]


def marked_image(turns: int) -> tuple[np.ndarray, Detection]:
    """A 30x40 image with an upright marker turned by `turns` quarter turns, and the upright detection
    mapped into it (what an exact search must return)."""
    image = np.zeros((30, 40, 3), np.uint8)
    image[5:9, 10:16] = 255  # the bright bar above ...
    image[9:14, 10:16] = 100  # ... the dim one: "up"
    upright = UprightOnly().detect(image)[0]
    turned = np.ascontiguousarray(np.rot90(image, -turns))  # the marker rolled by `turns` clockwise turns
    return turned, upright


@pytest.mark.parametrize("turns", [0, 1, 2, 3])
def test_search_finds_turned_faces_and_maps_them_back(turns):
    image, upright = marked_image(turns)
    fake = UprightOnly()
    found = RotationSearch(fake).detect(image)
    assert len(found) == 1
    # the upright image is np.rot90(image, turns): its points map back into `image` by turned_back
    want_kps = turned_back(upright.keypoints, turns, image.shape[1], image.shape[0])
    np.testing.assert_allclose(found[0].keypoints, want_kps, atol=1e-9)
    ys, xs = np.nonzero(image[:, :, 0] == 255)
    np.testing.assert_allclose(found[0].box, [xs.min() - 0.5, ys.min() - 0.5, xs.max() + 0.5, ys.max() + 0.5])
    assert fake.calls == (1 if turns == 0 else 4)  # upright first; else every turn, the best score wins


def test_turned_back_inverts_rot90():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (7, 11))
    for turns in range(4):
        turned = np.rot90(image, turns)
        ys, xs = np.mgrid[0:turned.shape[0], 0:turned.shape[1]]
        back = turned_back(np.stack([xs, ys], -1).reshape(-1, 2), turns, 11, 7).round().astype(int)
        assert (image[back[:, 1], back[:, 0]] == turned.reshape(-1)).all()


def test_no_face_anywhere_costs_every_turn_once():
    fake = UprightOnly()
    assert RotationSearch(fake).detect(np.zeros((20, 20, 3), np.uint8)) == []
    assert fake.calls == 4


def rotate_points(points: np.ndarray, angle: float, centre: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return (points - centre) @ np.array([[c, s], [-s, c]]) + centre  # each point turned by +angle (y down)


@pytest.mark.parametrize("angle", [0.0, 0.3, -0.7, np.pi / 2, 2.5, -np.pi])
def test_turned_crop_has_an_exact_inverse_and_sees_the_face_upright(angle):
    from kdlandmarks.data.crop import CropTransform, gt_crop, roll_angle
    from kdlandmarks.data.datasets import sample_root
    from kdlandmarks.data.datasets.pts import read_pts

    face = read_pts(sorted((sample_root() / "afw").glob("*.pts"))[0], 68)
    centre = face.mean(0)
    rolled = rotate_points(face, angle, centre)
    t = CropTransform.from_square(10.0, 20.0, 50.0, 64, angle)
    assert np.isclose(t.angle, np.arctan2(np.sin(angle), np.cos(angle))) and np.isclose(t.scale, 64 / 50)
    np.testing.assert_allclose(t.to_image(t.to_crop(rolled)), rolled, atol=1e-9)
    # the roll measured on the eye corners is the roll applied
    assert np.isclose(np.cos(roll_angle(rolled[36], rolled[45]) - roll_angle(face[36], face[45]) - angle), 1.0)
    # the same face rolled, cropped with its roll, lands on the same crop pixels as the upright one
    upright = gt_crop(face, 64).to_crop(face)
    np.testing.assert_allclose(gt_crop(rolled, 64, angle=angle).to_crop(rolled), upright, atol=1e-6)


def test_turned_crop_warps_the_pixels_it_maps():
    """A bright dot at a known image point lands where to_crop says, for a turned and shrinking crop."""
    from kdlandmarks.data.crop import CropTransform

    image = np.zeros((400, 500, 3), np.uint8)
    image[148:153, 298:303] = 255  # a 5x5 dot centred on (300, 150)
    for angle in (0.0, 0.6, -2.0):
        t = CropTransform.from_square(280.0, 170.0, 120.0, 48, angle)
        crop = t.warp(image)[:, :, 0].astype(float)
        ys, xs = np.mgrid[0:48, 0:48]
        found = np.array([(xs * crop).sum(), (ys * crop).sum()]) / crop.sum()
        np.testing.assert_allclose(found, t.to_crop(np.array([[300.0, 150.0]]))[0], atol=0.15)
