"""LandmarkTracker on tilted heads (issue 29): a track's crop turns with its face's roll, read from its own
filtered eye corners, so a rolled face is tracked as well as detect() finds it on each frame; an upright
face's crops are those of a tracker whose crops never turn, bit for bit."""
import math

import cv2
import numpy as np
import pytest

from kdlandmarks.apps.video_bench import moving_face_frames, sample_face
from kdlandmarks.data.crop import BoxCalibration, CropTransform, box_crop, roll_angle
from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.inference.detector import LandmarkDetector
from kdlandmarks.inference.tracking import (ROLL_HYSTERESIS, TRACK_BOX_SOURCE, LandmarkTracker, TrackingOptions,
                                            box_for_square, crop_square)

FRAME = (720, 400)


@pytest.fixture(scope="module")
def detector():
    return LandmarkDetector("kd-student-300w-lite:fp32", backend="onnx", detector="retinaface")


class Recording:
    """A LandmarkDetector that records the crop windows a tracker cuts; everything else is the detector's
    (an attribute set on it, e.g. roll_threshold, overrides the detector's)."""

    def __init__(self, detector):
        self.detector = detector
        self.windows = []

    def __getattr__(self, name):
        return getattr(self.detector, name)

    def crop_windows(self, image, transforms, scores=None, name="image"):
        self.windows.append(list(transforms))
        return self.detector.crop_windows(image, transforms, scores, name)


def rolled_clip(path: str, rolls: list[float]) -> list[tuple[np.ndarray, np.ndarray]]:
    """A bundled face moved along `path` (video_bench.FACE_PATHS) on a small frame, frame k rolled by rolls[k]
    degrees (counter-clockwise on screen) about the face's centre; the true landmarks with it."""
    image, landmarks = sample_face()
    out = []
    for (frame, truth), degrees in zip(moving_face_frames(image, landmarks, path, len(rolls), FRAME, face_side=110.0),
                                       rolls):
        centre = (truth.min(0) + truth.max(0)) / 2
        m = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), degrees, 1.0)
        out.append((cv2.warpAffine(frame, m, FRAME, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101),
                    truth @ m[:, :2].T + m[:, 2]))
    return out


def nme(points: np.ndarray, truth: np.ndarray) -> float:
    return float(np.linalg.norm(points - truth, axis=1).mean() / np.linalg.norm(truth[36] - truth[45]) * 100)


def track(detector, clip, tracking=TrackingOptions()) -> tuple[list[np.ndarray], LandmarkTracker]:
    """The raw landmarks of the one face the tracker follows on each frame of `clip`."""
    tracker = LandmarkTracker(detector, smoothing=None, tracking=tracking)
    points = []
    for k, (frame, _) in enumerate(clip):
        faces = tracker.update(frame, k / 30)
        assert [f.track for f in faces] == [0], k
        points.append(faces[0].landmarks)
    return points, tracker


def truth_roll(truth: np.ndarray) -> float:
    return float(roll_angle(truth[36], truth[45]))


def test_a_rolled_moving_face_is_cropped_turned_and_tracked_as_well_as_detect_finds_it(detector):
    clip = rolled_clip("fast-pan", [40.0] * 16)
    recording = Recording(detector)
    points, tracker = track(recording, clip)
    assert tracker.detections == 1  # the face detector ran on the first frame only: the track never doubted
    for k, ((_, truth), windows) in enumerate(zip(clip[1:], recording.windows[1:]), 1):
        assert abs(math.remainder(windows[0].angle - truth_roll(truth), math.tau)) < math.radians(4), k
    tracked = [nme(p, t) for p, (_, t) in zip(points, clip)]
    per_frame = [nme(detector.detect(f)[0].landmarks, t) for f, t in clip]
    assert np.mean(tracked) < np.mean(per_frame) + 0.3 and max(tracked) < 8.0, (tracked, per_frame)


def test_the_crop_turns_as_the_head_tilts_and_back_with_hysteresis(detector):
    rolls = list(np.linspace(0.0, 50.0, 18)) + list(np.linspace(50.0, 0.0, 18))
    clip = rolled_clip("slow-pan", rolls)
    recording = Recording(detector)
    points, _ = track(recording, clip)
    angles = [abs(w[0].angle) if w else 0.0 for w in recording.windows]  # frame k's crop, from frame k - 1's
    threshold = math.degrees(detector.roll_threshold)
    for k in range(1, len(clip)):
        before = abs(math.degrees(truth_roll(clip[k - 1][1])))
        if before < threshold - math.degrees(ROLL_HYSTERESIS) - 3:
            assert angles[k] == 0.0, k  # upright: exactly the untilted crop
        elif before > threshold + 3:
            assert abs(math.degrees(angles[k]) - before) < 4, k  # turned by the face's roll
    turned = [k for k, a in enumerate(angles) if a]
    assert turned and turned == list(range(turned[0], turned[-1] + 1))  # once on, once off: no flicker
    off = abs(math.degrees(truth_roll(clip[turned[-1] + 1][1])))  # tilted back below threshold - hysteresis
    on = abs(math.degrees(truth_roll(clip[turned[0]][1])))
    assert off < on - 2
    assert max(nme(p, t) for p, (_, t) in zip(points, clip)) < 8.0


def test_an_upright_face_gets_the_crops_of_a_tracker_that_never_turns(detector):
    clip = rolled_clip("zoom", [3.0] * 12)  # a head tilted a little: under the threshold, no turn
    turning, plain = Recording(detector), Recording(detector)
    plain.roll_threshold = None  # crops never turn
    a, _ = track(turning, clip)
    b, _ = track(plain, clip)
    np.testing.assert_array_equal(a[0], b[0])  # frame 0: the detector's crop
    for k, (wa, wb, pa, pb) in enumerate(zip(turning.windows[1:], plain.windows[1:], a[1:], b[1:]), 1):
        assert wa[0].angle == 0.0 and wa[0].matrix[0, 1] == 0.0 == wa[0].matrix[1, 0], k
        np.testing.assert_array_equal(wa[0].matrix, wb[0].matrix)
        np.testing.assert_array_equal(pa, pb)
    # ... and each is the crop that the box of its square, given with TRACK_BOX_SOURCE, gives
    cal = detector.calibration_for(TRACK_BOX_SOURCE)
    for (frame, _), windows in zip(clip[1:], turning.windows[1:]):
        given = detector.crop_faces(frame, box_for_square(crop_square(windows[0]), cal), TRACK_BOX_SOURCE)
        np.testing.assert_allclose(given.transforms[0].matrix, windows[0].matrix, rtol=1e-12, atol=1e-9)


def test_box_for_square_inverts_the_calibrated_square_at_any_roll():
    cal = BoxCalibration(dx=0.03, dy=0.15, scale=1.09)
    box = np.array([100.0, 80.0, 220.0, 200.0])
    for angle in (0.0, 0.4, -1.2, math.pi):
        np.testing.assert_allclose(box_for_square(cal.square(box, angle), cal, angle), box, atol=1e-9)
        t = box_crop(box_for_square((150.0, 140.0, 90.0), cal, angle), 64, cal, angle)
        np.testing.assert_allclose(crop_square(t), (150.0, 140.0, 90.0), atol=1e-9)
        assert math.isclose(math.remainder(t.angle - angle, math.tau), 0.0, abs_tol=1e-12)


def test_crop_windows_cuts_given_transforms(detector):
    image, _ = sample_face()
    t = CropTransform.from_square(200.0, 180.0, 150.0, detector.input_size, 0.5)
    item = detector.crop_windows(image, [t], [0.7])
    np.testing.assert_array_equal(item.crops[0], t.warp(image))
    np.testing.assert_allclose(item.boxes[0], [125.0, 105.0, 275.0, 255.0], atol=1e-9)
    assert item.scores.tolist() == [0.7]
    face = detector.faces_from_crops([item])[0][0]
    np.testing.assert_allclose(face.landmarks, t.to_image(detector.predict_crops(t.warp(image))[0]), atol=1e-6)
    assert detector.crop_windows(image, []).crops == []
    with pytest.raises(ConfigError, match="input size"):
        detector.crop_windows(image, [CropTransform.from_square(200.0, 180.0, 150.0, 7)])
    with pytest.raises(DataError, match="2 scores for 1 crop windows"):
        detector.crop_windows(image, [t], [1.0, 1.0])
