"""Rolled faces: the quarter-turn detector search maps boxes and keypoints back exactly; a rolled face is found
again on a patch turned upright, whatever the detector first read, and mapped back exactly."""
import math

import numpy as np
import pytest

from kdlandmarks.data.crop import roll_angle
from kdlandmarks.inference.detection.base import Detection
from kdlandmarks.inference.detection.rotations import (DEFAULT_UPRIGHT_PATCH, RotationSearch, UprightPatch, bunched, keypoint_roll,
                                                        needs_upright_patch, patch_detection_back, patch_transform,
                                                        turned_back, upright_detection)


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


# ------------------------------------------------------------------------------------------------------
# Rolled faces found again on a patch turned upright (detection.rotations.upright_detection)
# ------------------------------------------------------------------------------------------------------

EYE = 12.0  # the synthetic face's eye distance (pixels)


def blob_face(roll_degrees: float, size: int = 160) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic face on a size x size image, centred, rolled by `roll_degrees` (y down, as data.crop.roll_angle):
    a red left eye, a green right eye and a blue mouth. The image and its true five keypoints (eyes, nose,
    mouth corners)."""
    a = math.radians(roll_degrees)
    right, down = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    centre = np.array([size / 2, size / 2])
    eyes = [centre - EYE / 2 * right - 0.4 * EYE * down, centre + EYE / 2 * right - 0.4 * EYE * down]
    mouth = centre + 0.6 * EYE * down
    image = np.zeros((size, size, 3), np.uint8)
    ys, xs = np.mgrid[0:size, 0:size]
    for channel, p in zip((0, 1, 2), (*eyes, mouth)):
        image[..., channel][(xs - p[0]) ** 2 + (ys - p[1]) ** 2 <= 3.0 ** 2] = 255
    return image, five_points(*eyes, mouth)


def five_points(left: np.ndarray, right: np.ndarray, mouth: np.ndarray) -> np.ndarray:
    across = (right - left) * 0.4
    return np.stack([left, right, ((left + right) / 2 + mouth) / 2, mouth - across, mouth + across])


class RollBlindDetector:
    """A fake RetinaFace: reads the blob face right when it is rolled by at most 50 degrees in what it sees;
    past that it misreads it as an upright face (plausible keypoints, the wrong way round) with a lower
    score, as RetinaFace does with some sideways and upside-down faces."""

    name = "fake"

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image):
        self.calls += 1
        pts = []
        for channel in range(3):
            others = np.delete(image, channel, axis=2).max(axis=2)
            ys, xs = np.nonzero((image[..., channel] > 128) & (others < 64))
            if xs.size == 0:
                return []
            pts.append(np.array([xs.mean(), ys.mean()]))
        kps = five_points(*pts)
        centre = (pts[0] + pts[1] + pts[2]) / 3
        box = np.concatenate([centre - 1.2 * EYE, centre + 1.2 * EYE])
        if abs(math.degrees(roll_angle(pts[0], pts[1]))) <= 50:
            return [Detection(box, 0.99, kps)]
        c = centre  # misread: an upright face of the right size about the same centre
        junk = five_points(c + [-EYE / 2, -0.4 * EYE], c + [EYE / 2, -0.4 * EYE], c + [0, 0.6 * EYE])
        return [Detection(box, 0.97, junk)]


def agrees_with(truth: np.ndarray):
    """A stand-in for the landmark network's check: the reading's keypoints are the true ones."""
    return lambda d: float(np.abs(d.keypoints - truth).max()) < 2.0


@pytest.mark.parametrize("roll", [0.0, 35.0, -70.0, 90.0, -100.0, 150.0, 180.0])
def test_a_rolled_face_is_found_again_upright_whatever_the_first_reading(roll):
    image, truth = blob_face(roll)
    fake = RollBlindDetector()
    first = fake.detect(image)[0]  # past 50 degrees: a misread, upright-looking face
    found = upright_detection(fake, image, first, keypoint_roll(first), check=agrees_with(truth))
    assert found is not None
    np.testing.assert_allclose(found.keypoints, truth, atol=0.5)
    assert math.isclose(math.remainder(keypoint_roll(found) - math.radians(roll), math.tau), 0.0, abs_tol=0.05)
    assert fake.calls - 1 <= DEFAULT_UPRIGHT_PATCH.tries


def test_without_the_check_an_upside_down_face_read_as_upright_is_taken():
    """Why the check: at half a turn the fake reads the face upright (wrongly) on the very first patch."""
    image, truth = blob_face(180.0)
    fake = RollBlindDetector()
    first = fake.detect(image)[0]
    wrong = upright_detection(fake, image, first, keypoint_roll(first))
    assert wrong is not None and abs(math.remainder(keypoint_roll(wrong) - math.pi, math.tau)) > 2.5  # read upright
    right = upright_detection(fake, image, first, keypoint_roll(first), check=agrees_with(truth))
    np.testing.assert_allclose(right.keypoints, truth, atol=0.5)


def test_no_face_on_any_patch_gives_none_within_the_tries():
    fake = RollBlindDetector()
    blank = np.zeros((100, 100, 3), np.uint8)
    kps = np.array([[40, 45], [60, 45], [50, 52], [43, 60], [57, 60.0]])
    start = Detection(np.array([30.0, 30.0, 70.0, 70.0]), 0.8, kps)
    assert upright_detection(fake, blank, start, 0.7) is None
    assert fake.calls == 4  # the estimate and its three other quarter turns: nothing to follow


@pytest.mark.parametrize("angle", [0.0, 0.5, -1.9, math.pi])
def test_a_patch_detection_maps_back_exactly(angle):
    """Keypoints found on a turned patch land on the same image points; the box keeps its centre and its
    size in the face's own frame."""
    kps = np.array([[40.0, 50.0], [62.0, 47.0], [52.0, 60.0], [44.0, 70.0], [60.0, 69.0]])
    det = Detection(np.array([30.0, 35.0, 74.0, 85.0]), 0.9, kps)
    t = patch_transform(det, angle)
    assert t.size == DEFAULT_UPRIGHT_PATCH.size
    assert math.isclose(t.angle, math.remainder(angle, math.tau), abs_tol=1e-12)
    centre, half = t.to_crop(np.array([[52.0, 60.0]]))[0], np.array([22.0, 25.0]) * t.scale
    on_patch = Detection(np.concatenate([centre - half, centre + half]), 0.9, t.to_crop(kps))
    back = patch_detection_back(on_patch, t)
    np.testing.assert_allclose(back.keypoints, kps, atol=1e-9)
    np.testing.assert_allclose(back.box, det.box, atol=1e-9)


def test_which_faces_are_checked_on_an_upright_patch():
    kps = np.array([[40.0, 50.0], [60.0, 50.0], [50.0, 60.0], [43.0, 70.0], [57.0, 70.0]])
    box = np.array([30.0, 30.0, 70.0, 80.0])
    threshold = math.radians(15)

    def turned(degrees: float) -> np.ndarray:
        a = math.radians(degrees)
        return (kps - 50) @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]) + 50

    assert not needs_upright_patch(Detection(box, 0.99, kps), threshold)  # upright: no work
    assert needs_upright_patch(Detection(box, 0.5, kps), threshold)  # a low score: checked (unsure=0.99)
    assert not needs_upright_patch(Detection(box, 0.5, kps), threshold, UprightPatch(unsure=0.0))  # ... unless off
    assert not needs_upright_patch(Detection(box, 0.99, turned(20)), threshold)  # tilted, read with confidence
    assert needs_upright_patch(Detection(box, 0.9, turned(20)), threshold)  # tilted, doubtful
    assert needs_upright_patch(Detection(box, 0.99, turned(-45)), threshold)  # rolled far
    squeezed = kps.copy()
    squeezed[:, 0] = 50 + (kps[:, 0] - 50) * 0.3
    assert bunched(Detection(box, 0.99, squeezed)) and needs_upright_patch(Detection(box, 0.99, squeezed), threshold)
    assert needs_upright_patch(Detection(np.array([20.0, 40.0, 80.0, 80.0]), 0.99, kps), threshold)  # squat box
    assert not needs_upright_patch(Detection(box, 0.99, None), threshold)  # no keypoints: nothing to read


# ------------------------------------------------------------------------------------------------------
# LandmarkDetector on rolled photos: RetinaFace and the shipped student on bundled 300-W sample photos
# ------------------------------------------------------------------------------------------------------

class CountingDetector:
    """A face detector that counts its runs on the small square patches of the upright search."""

    def __init__(self, inner) -> None:
        self.inner, self.name, self.patches = inner, inner.name, 0

    def detect(self, image):
        self.patches += image.shape[0] == image.shape[1] == DEFAULT_UPRIGHT_PATCH.size
        return self.inner.detect(image)


@pytest.fixture(scope="module")
def landmarker():
    from kdlandmarks.inference.detection import create_detector
    from kdlandmarks.inference.detector import LandmarkDetector

    counting = CountingDetector(create_detector("retinaface"))
    return LandmarkDetector("kd-student-300w-lite:fp32", backend="onnx", detector=counting)


def sample_photo(name: str, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """A bundled LFPW test photo rotated by `degrees` (counter-clockwise on screen) about its face on a grown
    canvas (benchmarks/roll_robustness.py's rotation), and its true landmarks."""
    import cv2

    from kdlandmarks.data.datasets import sample_root
    from kdlandmarks.data.datasets.w300 import read_annotated_folder

    record = [r for r in read_annotated_folder(sample_root() / "lfpw" / "testset", "lfpw/testset", 68)
              if r.name.endswith(name)][0]
    image, pts = record.load_image(), record.landmarks
    h, w = image.shape[:2]
    centre = (pts.min(0) + pts.max(0)) / 2
    m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0)
    corners = np.array([[0, 0, 1], [w - 1, 0, 1], [0, h - 1, 1], [w - 1, h - 1, 1]], np.float64) @ m.T
    m[:, 2] -= np.floor(corners.min(0))
    size = tuple(int(v) + 1 for v in np.ceil(corners.max(0)) - np.floor(corners.min(0)))
    return cv2.warpAffine(image, m, size, flags=cv2.INTER_LINEAR), pts @ m[:, :2].T + m[:, 2]


def nme(points: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(points - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45]) * 100)


@pytest.mark.parametrize("name, degrees", [("image_0023", 90.0), ("image_0080", -60.0), ("image_0176", 90.0)])
def test_a_rolled_photo_is_read_on_an_upright_patch_and_cropped_with_the_faces_roll(landmarker, name, degrees):
    image, truth = sample_photo(name, degrees)
    landmarker.face_detector.patches = 0
    item = landmarker.crop_faces(image)
    faces = landmarker.faces_from_crops([item])[0]
    k = min(range(len(faces)), key=lambda i: float(np.linalg.norm(faces[i].landmarks.mean(0) - truth.mean(0))))
    assert nme(faces[k].landmarks, truth) < 6.0
    true_roll = float(roll_angle(truth[36], truth[45]))
    assert abs(math.remainder(item.transforms[k].angle - true_roll, math.tau)) < math.radians(5)
    assert 1 <= landmarker.face_detector.patches <= DEFAULT_UPRIGHT_PATCH.tries


def test_upright_photos_take_no_patch_and_keep_their_landmarks(landmarker):
    for name in ("image_0001", "image_0023", "image_0099", "image_0117", "image_0214"):
        image, _ = sample_photo(name, 0.0)
        landmarker.face_detector.patches = 0
        faces = landmarker.detect(image)
        assert landmarker.face_detector.patches == 0, name
        landmarker.upright_patch = None  # the instance's own setting: never re-read
        try:
            plain = landmarker.detect(image)
        finally:
            del landmarker.upright_patch
        for a, b in zip(faces, plain, strict=True):
            np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_the_network_check_tells_an_upright_reading_from_an_upside_down_one(landmarker):
    image, _ = sample_photo("image_0023", 0.0)
    found = landmarker.face_detector.inner.detect(image)[0]
    calibration = landmarker.detector_calibration("retinaface")
    assert landmarker._network_agrees(image, found, calibration)
    centre = found.keypoints.mean(0)
    flipped = Detection(found.box, found.score, 2 * centre - found.keypoints)  # half a turn: eyes where the mouth is
    assert not landmarker._network_agrees(image, flipped, calibration)
