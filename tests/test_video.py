"""One-Euro filter, face filter, IoU tracker and landmark smoother on synthetic sequences; LandmarkTracker
(tracking from the previous landmarks, re-acquisition, per-tracker state, bad frames) with a fake
detector on tiny frames; `kdlandmarks predict` and detect_video on videos, with bounded frame memory."""
import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from kdlandmarks.cli import main
from kdlandmarks.errors import ConfigError
from kdlandmarks.models.backbones import ModelInfo, create_model, save_model
from kdlandmarks.inference.video import (DEFAULT_SMOOTHING, FaceFilter, IoUTracker, LandmarkSmoother, OneEuroFilter,
                                         SmoothingOptions)

FPS = 30.0


def run_filter(f: OneEuroFilter, signal: np.ndarray) -> np.ndarray:
    return np.array([f(x, i / FPS) for i, x in enumerate(signal)])


def test_one_euro_reduces_jitter_at_rest():
    rng = np.random.default_rng(0)
    noisy = 5.0 + rng.normal(0, 0.02, (300, 3))
    out = run_filter(OneEuroFilter(min_cutoff=1.0, beta=5.0), noisy)
    raw_err = np.abs(noisy[60:] - 5.0).std()
    assert np.abs(out[60:] - 5.0).std() < 0.5 * raw_err
    # Frame-to-frame jitter (what a viewer sees) drops even more.
    assert np.diff(out[60:], axis=0).std() < 0.25 * np.diff(noisy[60:], axis=0).std()


def test_one_euro_step_response_follows_and_speed_cuts_lag():
    step = np.r_[np.zeros(30), np.ones(60)]
    fast = run_filter(OneEuroFilter(min_cutoff=1.0, beta=5.0), step)
    slow = run_filter(OneEuroFilter(min_cutoff=1.0, beta=0.0), step)
    assert abs(fast[-1] - 1) < 0.01                 # settles on the new value
    assert fast[35] > 0.9                           # within 5 frames thanks to the speed term
    assert slow[35] < fast[35] - 0.2                # a plain low-pass lags much more
    assert np.all(np.diff(fast) >= -1e-12) and fast.max() <= 1 + 1e-9  # no overshoot


def test_one_euro_timestamps_and_validation():
    a, b = OneEuroFilter(min_cutoff=1.0), OneEuroFilter(min_cutoff=1.0)
    a(np.zeros(2), 0.0)
    b(np.zeros(2), 0.0)
    # A longer gap between samples lets the output move further towards the new value.
    assert a(np.ones(2), 1 / FPS)[0] < b(np.ones(2), 10 / FPS)[0]
    f = OneEuroFilter()
    f(np.zeros(2))
    f.reset()
    assert np.array_equal(f(np.full(2, 7.0)), np.full(2, 7.0))  # first sample passes through
    with pytest.raises(ConfigError):
        OneEuroFilter(min_cutoff=0)


def test_tracker_keeps_identities():
    tracker = IoUTracker(iou_threshold=0.3, max_missed=2)
    ids = []
    for i in range(10):
        a = [10 + 2 * i, 10, 60 + 2 * i, 60]          # drifts right
        b = [200, 100 - i, 260, 160 - i]              # drifts up
        boxes = [b, a] if i % 2 else [a, b]           # order changes between frames
        tracks = tracker.update(boxes)
        got = {tuple(boxes[k][:1]): t.id for k, t in enumerate(tracks)}
        ids.append((got[(10 + 2 * i,)], got[(200,)]))
    assert len(set(ids)) == 1 and ids[0][0] != ids[0][1]
    a_id = ids[0][0]
    for _ in range(3):                                # face a leaves for longer than max_missed
        tracker.update([[200, 90, 260, 150]])
    assert a_id not in tracker.tracks
    new = tracker.update([[28, 10, 78, 60], [200, 90, 260, 150]])
    assert new[0].id not in (a_id, ids[0][1]) and new[1].id == ids[0][1]
    assert tracker.update([]) == []


@dataclass
class F:
    box: np.ndarray
    landmarks: np.ndarray
    score: float = 1.0


def test_smoother_filters_each_track_separately():
    rng = np.random.default_rng(1)
    # Two 68-point faces, 40 px wide (the filter's speed is the whole face's: a face has many points).
    truth = {0: face_at((40, 40)).landmarks, 1: face_at((240, 140)).landmarks}
    boxes = {0: np.array([10.0, 10, 70, 70]), 1: np.array([210.0, 110, 270, 170])}
    smoother = LandmarkSmoother(fps=FPS)
    assert smoother.smoothing == DEFAULT_SMOOTHING
    raw, smooth = {0: [], 1: []}, {0: [], 1: []}
    for i in range(120):
        order = [1, 0] if i % 3 == 1 else [0, 1]  # the order changes; ids must not
        faces = [F(boxes[k] + rng.normal(0, 0.5, 4), truth[k] + rng.normal(0, 1.0, (68, 2))) for k in order]
        for (tid, face), k, inp in zip(smoother.update(faces, i / FPS), order, faces):
            raw[k].append(inp.landmarks)
            smooth[k].append(face.landmarks)
            assert tid == k                            # frame 0 lists face 0 first: it is track 0
    for k in (0, 1):
        s, r = np.array(smooth[k][30:]), np.array(raw[k][30:])
        assert np.abs(s - truth[k]).std() < 0.5 * np.abs(r - truth[k]).std()
        assert np.abs(s.mean(0) - truth[k]).max() < 0.5  # unbiased: no mixing between the two faces


def face_at(centre, side=40.0, noise=0.0, rng=None):
    """A square face of 68 points on a grid, `side` pixels wide, around `centre`."""
    grid = np.stack(np.meshgrid(np.linspace(-0.5, 0.5, 17), np.linspace(-0.5, 0.5, 4)), -1).reshape(-1, 2)
    pts = np.asarray(centre, dtype=np.float64) + grid * side
    if noise:
        pts = pts + rng.normal(0, noise, pts.shape)
    box = np.r_[pts.min(axis=0), pts.max(axis=0)]
    return F(box, pts)


def test_face_filter_removes_jitter_of_a_still_face_and_follows_a_moving_one_without_lag():
    rng = np.random.default_rng(0)
    still = FaceFilter(DEFAULT_SMOOTHING, FPS)
    raw_moves, smooth_moves, last_raw, last = [], [], None, None
    for i in range(90):
        face = face_at((100, 100), noise=0.4, rng=rng)
        out = still(face, i / FPS)
        if last is not None and i > 30:
            raw_moves.append(np.abs(face.landmarks - last_raw).mean())
            smooth_moves.append(np.abs(out.landmarks - last).mean())
        last_raw, last = face.landmarks, out.landmarks
    assert np.mean(smooth_moves) < 0.3 * np.mean(raw_moves)
    # 3 px a frame on a 40 px face: the filtered points trail the true ones by well under a pixel,
    # where the same filter with a per-coordinate speed of the old defaults trails by pixels.
    moving = FaceFilter(DEFAULT_SMOOTHING, FPS)
    lag = [np.abs(moving(face_at((100 + 3 * i, 100)), i / FPS).landmarks - face_at((100 + 3 * i, 100)).landmarks).mean()
           for i in range(40)]
    assert max(lag[20:]) < 0.5
    old = FaceFilter(SmoothingOptions(1.0, 0.0, 1.0), FPS)
    assert np.abs(old(face_at((100, 100)), 0).landmarks - face_at((100, 100)).landmarks).max() < 1e-9
    old_lag = [np.abs(old(face_at((100 + 3 * i, 100)), i / FPS).landmarks - face_at((100 + 3 * i, 100)).landmarks).mean()
               for i in range(1, 40)]
    assert min(old_lag[20:]) > 5 * max(lag[20:])


def test_smoothing_options_are_checked():
    for bad in (dict(min_cutoff=0), dict(beta=-1), dict(d_cutoff=float("nan")), dict(beta=float("inf"))):
        with pytest.raises(ConfigError):
            SmoothingOptions(**bad)
    assert SmoothingOptions(**DEFAULT_SMOOTHING.to_dict()) == DEFAULT_SMOOTHING


# --------------------------------------------------------------------------------------------------
# LandmarkTracker with a fake landmark detector: faces are bright squares on a dark frame
# --------------------------------------------------------------------------------------------------

class BlobDetector:
    """A stand-in LandmarkDetector: the face detector finds bright squares (counting its runs), and the
    "network" puts 68 grid points on the bright pixels of each crop, or a small grid at the crop's centre
    when there are none (as a real network answers something on any crop)."""

    size = input_size = 32
    roll_threshold = None  # its grid faces have no eyes: crops never turn

    def __init__(self):
        from types import SimpleNamespace

        self.info = SimpleNamespace(crop_margin=0.1)
        self.detector_runs = 0
        self.network_calls = 0
        self.scan_sizes = []  # detect_max_side of each face-detector run

    def calibration_for(self, source=None):
        from kdlandmarks.data.crop import BoxCalibration

        return BoxCalibration()

    def crop_windows(self, image, transforms, scores=None, name="image"):
        from kdlandmarks.inference.detector import FaceCrops

        transforms = list(transforms)
        return FaceCrops(np.zeros((len(transforms), 4)), np.asarray(scores, dtype=np.float64), transforms,
                         [t.warp(image) for t in transforms])

    def crop_faces(self, image, boxes=None, box_source=None, name="image", detect_max_side=None):
        from kdlandmarks.data.crop import BoxCalibration, box_crop
        from kdlandmarks.inference.detector import FaceCrops

        if boxes is None:
            self.detector_runs += 1
            self.scan_sizes.append(detect_max_side)
            count, _, stats, _ = cv2.connectedComponentsWithStats((image[..., 0] > 128).astype(np.uint8))
            boxes = np.array([[x - 0.5, y - 0.5, x + w - 0.5, y + h - 0.5, 0.9] for x, y, w, h, _ in stats[1:]])
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
        transforms = [box_crop(b[:4], self.size, BoxCalibration(scale=1.3)) for b in boxes]
        return FaceCrops(boxes[:, :4], boxes[:, 4], transforms, [t.warp(image) for t in transforms])

    def faces_from_crops(self, items):
        from kdlandmarks.inference.detector import Face

        self.network_calls += 1
        out = []
        for item in items:
            faces = []
            for box, score, t, crop in zip(item.boxes, item.scores, item.transforms, item.crops):
                ys, xs = np.nonzero(crop[..., 0] > 128)
                if len(xs):
                    lo, hi = np.array([xs.min(), ys.min()]) - 0.5, np.array([xs.max(), ys.max()]) + 0.5
                else:
                    lo, hi = np.full(2, self.size / 2 - 4.0), np.full(2, self.size / 2 + 4.0)
                grid = face_at((lo + hi) / 2, 1.0).landmarks - (lo + hi) / 2
                faces.append(Face(box.copy(), float(score), t.to_image((lo + hi) / 2 + grid * (hi - lo))))
            out.append(faces)
        return out


def blob_frame(centres, side=20, size=(160, 120)):
    frame = np.zeros((size[1], size[0], 3), np.uint8)
    for cx, cy in centres:
        frame[int(cy - side / 2):int(cy + side / 2), int(cx - side / 2):int(cx + side / 2)] = 255
    return frame


def landmark_centre(face):
    return np.asarray(face.landmarks).mean(axis=0)


def test_tracker_follows_a_moving_face_from_its_landmarks_and_detects_only_when_due():
    from kdlandmarks.inference.tracking import LandmarkTracker, TrackingOptions

    detector = BlobDetector()
    tracker = LandmarkTracker(detector, smoothing=None, tracking=TrackingOptions(detect_every=30))
    for i in range(65):
        centre = (40 + i, 60 + 0.5 * i)
        faces = tracker.update(blob_frame([centre]))
        assert [f.track for f in faces] == [0], i
        assert faces[0].to_dict()["track"] == 0 and len(faces[0].to_dict()["landmarks"]) == 68
        assert np.abs(landmark_centre(faces[0]) - np.array(centre) + 0.5).max() < 1.0, i
    assert detector.detector_runs == 3  # frames 0, 30 and 60: only the bound made it run
    assert detector.network_calls == 65  # one network call per frame
    assert tracker.frames == 65 and tracker.detections == 3


def test_periodic_scans_look_at_a_smaller_copy_and_doubtful_tracks_at_full_size():
    from kdlandmarks.inference.tracking import LandmarkTracker, TrackingOptions

    detector = BlobDetector()
    tracker = LandmarkTracker(detector, smoothing=None, tracking=TrackingOptions(detect_every=10, scan_max_side=64))
    for i in range(21):
        tracker.update(blob_frame([(40 + i, 60)]))
    assert detector.scan_sizes == [None, 64, 64]  # the first detection at full size, then the periodic scans
    tracker.update(blob_frame([(120, 30)]))  # the face jumps away: the track's crop loses it
    tracker.update(blob_frame([(120, 30)]))
    assert detector.scan_sizes[3:] == [None]  # a doubtful track: the next detection looks at the full frame
    full = LandmarkTracker(detector, smoothing=None, tracking=TrackingOptions(detect_every=10, scan_max_side=None))
    detector.scan_sizes.clear()
    for i in range(11):
        full.update(blob_frame([(40 + i, 60)]))
    assert detector.scan_sizes == [None, None]
    with pytest.raises(ConfigError, match="scan_max_side"):
        TrackingOptions(scan_max_side=8)


def test_tracker_reacquires_a_face_that_leaves_and_returns():
    from kdlandmarks.inference.tracking import LandmarkTracker, TrackingOptions

    detector = BlobDetector()
    tracker = LandmarkTracker(detector, smoothing=None, tracking=TrackingOptions(detect_every=5))
    seen = []
    for i in range(40):
        present = i < 10 or i >= 25
        faces = tracker.update(blob_frame([(50, 60) if i < 10 else (110, 50)] if present else []))
        seen.append([f.track for f in faces])
    assert all(s == [0] for s in seen[:10])
    # Gone at frame 10: a face that no detection confirms twice in a row ends (here within the bound of
    # 5 frames to the next detection, plus one).
    assert all(seen[i] == [] for i in range(17, 25))
    # Back at frame 25, elsewhere: with no track, the detector runs on every frame and finds it at once.
    assert all(s == [1] for s in seen[25:])
    assert tracker.track_ids == [1]


def test_two_faces_keep_their_own_tracks_and_a_new_face_is_found_within_the_bound():
    from kdlandmarks.inference.tracking import LandmarkTracker, TrackingOptions

    tracker = LandmarkTracker(BlobDetector(), smoothing=None, tracking=TrackingOptions(detect_every=4))
    ids = []
    for i in range(20):
        faces = tracker.update(blob_frame([(30 + i, 40)] + ([(120, 80 - i)] if i >= 6 else [])))
        ids.append({f.track: landmark_centre(f) for f in faces})
    assert list(ids[5]) == [0]
    assert list(ids[8]) == [0, 1]  # found at the next detection (frame 8), not before
    assert all(list(x) == [0, 1] for x in ids[8:])
    assert all(abs(x[0][1] - 39.5) < 1 and abs(x[1][0] - 119.5) < 1 for x in ids[8:])  # never swapped


def test_trackers_sharing_a_detector_keep_their_own_state():
    from kdlandmarks.inference.tracking import LandmarkTracker

    def stream(k):
        return [blob_frame([(40 + (2 + k) * i, 40 + 20 * k)]) for i in range(12)]

    alone = []
    for k in (0, 1):
        tracker = LandmarkTracker(BlobDetector())
        alone.append([[(f.track, f.landmarks.copy()) for f in tracker.update(frame)] for frame in stream(k)])
    shared = BlobDetector()
    trackers = [LandmarkTracker(shared), LandmarkTracker(shared)]
    together = [[], []]
    for frames in zip(stream(0), stream(1)):
        for k, frame in enumerate(frames):
            together[k].append([(f.track, f.landmarks.copy()) for f in trackers[k].update(frame)])
    for k in (0, 1):
        for a, b in zip(alone[k], together[k]):
            assert [t for t, _ in a] == [t for t, _ in b] == [0]
            np.testing.assert_array_equal(a[0][1], b[0][1])


def test_tracker_refuses_bad_frames_and_options():
    from kdlandmarks.errors import DataError
    from kdlandmarks.inference.tracking import LandmarkTracker, TrackingOptions

    tracker = LandmarkTracker(BlobDetector())
    with pytest.raises(DataError, match="no image"):
        tracker.update(None)  # what cv2.VideoCapture.read gives once the camera is closed
    with pytest.raises(DataError, match="empty"):
        tracker.update(np.zeros((0, 0, 3), np.uint8))
    tracker.update(blob_frame([(50, 50)]))
    with pytest.raises(DataError, match="frame 1: 80x60 pixels, but the stream's frames are 160x120"):
        tracker.update(blob_frame([(30, 30)], size=(80, 60)))
    assert len(tracker.update(blob_frame([(52, 50)]))) == 1  # the stream goes on after a refused frame
    tracker.reset()
    assert tracker.update(blob_frame([(30, 30)], size=(80, 60)))[0].track == 0  # a new stream after reset
    for bad in (dict(detect_every=0), dict(min_agreement=1.5), dict(match_iou=float("nan"))):
        with pytest.raises(ConfigError):
            TrackingOptions(**bad)
    with pytest.raises(ConfigError):
        LandmarkTracker(BlobDetector(), fps=0)


# --------------------------------------------------------------------------------------------------
# kdlandmarks predict on a video
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    model = create_model("mobilenetv2_050", 68)
    with torch.no_grad():
        model.head.weight.mul_(0.01)
    path = tmp_path_factory.mktemp("m") / "tiny.pt"
    save_model(path, model, ModelInfo("mobilenetv2_050", 68, 64))
    return path


def write_video(path, frames=6, size=(96, 72)):
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (w, h))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v videos")
    rng = np.random.default_rng(0)
    for i in range(frames):
        frame = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        cv2.circle(frame, (30 + 3 * i, 36), 18, (180, 160, 140), -1)
        writer.write(frame)
    writer.release()
    return path


def test_predict_video_writes_lines_and_annotated_video(model_file, tmp_path, capsys):
    video = write_video(tmp_path / "clip.mp4")
    out = tmp_path / "out"
    rc = main(["predict", str(video), "--model", str(model_file), "--out", str(out), "--draw",
               "--boxes", "10,15,60,60", "--batch-size", "4"])
    assert rc == 0, capsys.readouterr().err
    lines = [json.loads(ln) for ln in (out / "clip.jsonl").read_text().splitlines()]
    header, frames = lines[0], lines[1:]
    assert header["fps"] == pytest.approx(10.0) and header["smoothed"] is True
    assert header["smoothing"] == DEFAULT_SMOOTHING.to_dict()
    assert [f["frame"] for f in frames] == list(range(6))
    assert all(len(f["faces"]) == 1 and f["faces"][0]["track"] == 0 for f in frames)
    assert len(frames[0]["faces"][0]["landmarks"]) == 68
    cap = cv2.VideoCapture(str(out / "clip_landmarks.mp4"))
    assert cap.isOpened() and int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 6
    cap.release()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_predict_video_without_smoothing(model_file, tmp_path):
    video = write_video(tmp_path / "clip.mp4", frames=3)
    out = tmp_path / "out"
    assert main(["predict", str(video), "--model", str(model_file), "--out", str(out), "--no-smooth",
                 "--boxes", "10,15,60,60"]) == 0
    header, *frames = [json.loads(ln) for ln in (out / "clip.jsonl").read_text().splitlines()]
    assert header["smoothed"] is False and "smoothing" not in header
    assert len(frames) == 3 and frames[0]["faces"][0]["track"] == 0  # still tracked, not smoothed
    assert not (out / "clip_landmarks.mp4").exists()


def test_predict_broken_video_exits_2(model_file, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x01 definitely not a video" * 10)
    assert main(["predict", str(bad), "--model", str(model_file), "--out", str(tmp_path / "o"),
                 "--boxes", "1,1,9,9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.mp4" in err[0] and "video" in err[0]
    assert not (tmp_path / "o" / "broken.jsonl").exists()


# --------------------------------------------------------------------------------------------------
# The same from Python: LandmarkDetector.detect_video and predict.predict_paths
# --------------------------------------------------------------------------------------------------

def test_detect_video_yields_tracked_smoothed_frames(model_file, tmp_path):
    from kdlandmarks import LandmarkDetector

    video = write_video(tmp_path / "clip.mp4", frames=5)
    detector = LandmarkDetector(model_file, batch_size=2)
    frames = list(detector.detect_video(video, boxes=[[10, 15, 60, 60]]))
    assert [f.index for f in frames] == list(range(5))
    assert frames[1].time == pytest.approx(0.1)  # 10 fps
    assert all(f.image.shape == (72, 96, 3) and f.tracks == [0] and len(f.faces) == 1 for f in frames)
    assert frames[0].faces[0].landmarks.shape == (68, 2)
    assert frames[0].to_dict()["faces"][0]["track"] == 0
    plain = list(detector.detect_video(video, boxes=[[10, 15, 60, 60]], smoothing=None))
    assert plain[0].tracks == [0] and len(plain) == 5
    # Frame 0 passes the filter unchanged; later frames differ from the raw ones only by smoothing.
    np.testing.assert_allclose(plain[0].faces[0].landmarks, frames[0].faces[0].landmarks, atol=1e-6)


def test_detect_video_bad_file_and_box_source(model_file, tmp_path):
    from kdlandmarks import LandmarkDetector
    from kdlandmarks.errors import DataError

    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video" * 20)
    detector = LandmarkDetector(model_file)
    with pytest.raises(DataError, match="broken.mp4"):
        next(detector.detect_video(bad, boxes=[[1, 1, 9, 9]]))
    with pytest.raises(ConfigError):
        next(detector.detect_video(write_video(tmp_path / "c.mp4", frames=1), boxes=[[1, 1, 9, 9]],
                                   box_source="retinafaec"))


def test_predict_paths_writes_outputs_for_images_and_videos(model_file, tmp_path):
    from kdlandmarks.apps.predict import OUTPUT_LEDGER, LoadOptions, RunOptions, predict_paths

    (tmp_path / "in").mkdir()
    video = write_video(tmp_path / "in" / "clip.mp4", frames=3)
    photo = tmp_path / "in" / "face.png"
    cv2.imwrite(str(photo), np.full((72, 96, 3), 120, np.uint8))
    skipped = []
    summary = predict_paths([photo, video, tmp_path / "in" / "face.png"], tmp_path / "out",
                            RunOptions(formats="json,pts", boxes="10,15,60,60", progress=False),
                            load=LoadOptions(model=model_file), on_skip=skipped.append)
    assert (summary.images, summary.images_done, summary.videos_done, summary.frames) == (2, 2, 1, 3)
    assert summary.faces == 2 + 3 and not summary.errors and not skipped
    names = sorted(p.name for p in (tmp_path / "out").iterdir() if p.name != OUTPUT_LEDGER)  # the image outputs' ledger
    assert names == ["clip.jsonl", "face.json", "face_0.pts", "face_1.json", "face_1_0.pts"]
    record = json.loads((tmp_path / "out" / "face.json").read_text())
    assert record["detector"] == "given boxes" and len(record["faces"][0]["landmarks"]) == 68
    assert "predicted 5 faces in 2/2 images, 1/1 videos (3 frames)" in summary.describe()


def test_face_detector_is_made_once(model_file):
    from kdlandmarks import LandmarkDetector

    detector = LandmarkDetector(model_file, detector=lambda image: [])
    face_detector = detector.face_detector
    assert detector.face_detector is face_detector and not hasattr(detector, "detector")  # the old alias is gone


def test_predict_paths_skips_bad_inputs_and_raises_when_none_worked(model_file, tmp_path):
    from kdlandmarks.errors import DataError
    from kdlandmarks.apps.predict import LoadOptions, RunOptions, predict_paths

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    cv2.imwrite(str(good), np.full((72, 96, 3), 120, np.uint8))
    bad.write_bytes(b"not an image")
    skipped = []
    options = RunOptions(boxes=[[10, 15, 60, 60]], progress=False)
    summary = predict_paths([good, bad], tmp_path / "out", options, load=LoadOptions(model=model_file),
                            on_skip=skipped.append)
    assert summary.images_done == 1 and len(summary.errors) == 1 and skipped == summary.errors
    assert "1 skipped" in summary.describe()
    with pytest.raises(DataError, match="bad.png"):
        predict_paths([bad], tmp_path / "out2", options, load=LoadOptions(model=model_file))
    with pytest.raises(DataError, match="no such file"):  # before the model loads
        predict_paths([tmp_path / "missing.png"], tmp_path / "out3", load=LoadOptions(model="no-such-model"))


def test_video_frames_are_read_one_at_a_time_whatever_the_batch_size(model_file, tmp_path):
    """Memory holds a few frames, not a batch of them: the peak of numpy allocations while predicting a
    40-frame video at batch size 64 stays under 6 frames' worth (before: all 40 frames at once)."""
    import tracemalloc

    from kdlandmarks import LandmarkDetector
    from kdlandmarks.apps.predict import RunOptions, predict_paths

    video = write_video(tmp_path / "clip.mp4", frames=40, size=(320, 240))
    frame_bytes = 320 * 240 * 3
    detector = LandmarkDetector(model_file, batch_size=64)
    next(detector.detect_video(video, boxes=[[10, 15, 60, 60]]))  # warm-up: sessions, buffers, imports
    tracemalloc.start()
    try:
        for _ in detector.detect_video(video, boxes=[[10, 15, 60, 60]]):
            pass
        _, peak_iter = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        predict_paths([video], tmp_path / "out", RunOptions(boxes="10,15,60,60", batch_size=64, draw=True,
                                                            progress=False), detector=detector)
        _, peak_predict = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_iter < 6 * frame_bytes and peak_predict < 6 * frame_bytes, (peak_iter, peak_predict, frame_bytes)


def test_video_over_the_pixel_limit_is_refused_in_one_line(model_file, tmp_path, capsys):
    from kdlandmarks import LandmarkDetector
    from kdlandmarks.errors import DataError

    video = write_video(tmp_path / "clip.mp4", frames=2, size=(96, 72))
    assert main(["predict", str(video), "--model", str(model_file), "--out", str(tmp_path / "o"),
                 "--boxes", "10,15,60,60", "--max-megapixels", "0.005"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "clip.mp4" in err[0] and "96x72" in err[0] and "0.005 megapixels" in err[0]
    assert not (tmp_path / "o" / "clip.jsonl").exists()
    with pytest.raises(DataError, match="over the limit"):
        next(LandmarkDetector(model_file).detect_video(video, boxes=[[10, 15, 60, 60]], max_pixels=5000))


def test_bad_frames_mid_stream_and_a_closed_stream_are_data_errors(tmp_path):
    from kdlandmarks.errors import DataError
    from kdlandmarks.inference.tracking import LandmarkTracker, track_frames
    from kdlandmarks.inference.video import VideoStream

    class Stream:  # a stream whose third frame has another size
        path, fps = "cam.mkv", 30.0

        def frames(self):
            yield from (blob_frame([(50, 50)]), blob_frame([(51, 50)]), blob_frame([(50, 50)], size=(80, 60)))

    frames = track_frames(Stream(), LandmarkTracker(BlobDetector()))
    assert [f.index for f in (next(frames), next(frames))] == [0, 1]
    with pytest.raises(DataError, match=r"^cam.mkv: frame 2: 80x60 pixels"):
        next(frames)
    stream = VideoStream(write_video(tmp_path / "clip.mp4", frames=3))
    reader = stream.frames()
    assert next(reader).shape == (72, 96, 3)
    stream.close()
    with pytest.raises(DataError, match="closed"):
        next(reader)


def test_trackers_in_threads_sharing_one_detector_match_sequential_runs(model_file):
    """One LandmarkDetector (a real network) serves a tracker per thread; each thread's faces equal those
    of the same stream run alone."""
    from concurrent.futures import ThreadPoolExecutor

    from kdlandmarks import LandmarkDetector
    from kdlandmarks.inference.tracking import LandmarkTracker, TrackingOptions

    detector = LandmarkDetector(model_file, detector=lambda image: [[20.0, 16.0, 70.0, 66.0, 0.9]])
    rng = np.random.default_rng(3)
    streams = [[rng.integers(0, 256, (72, 96, 3), dtype=np.uint8) for _ in range(12)] for _ in range(4)]

    def run(frames):
        tracker = LandmarkTracker(detector, tracking=TrackingOptions(detect_every=5))
        return [[(f.track, f.landmarks.copy()) for f in tracker.update(frame)] for frame in frames]

    alone = [run(frames) for frames in streams]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(run, streams))
    assert any(faces for result in alone for faces in result)
    for a, b in zip(alone, threaded):
        assert [[t for t, _ in faces] for faces in a] == [[t for t, _ in faces] for faces in b]
        for fa, fb in zip(a, b):
            for (_, pa), (_, pb) in zip(fa, fb):
                np.testing.assert_array_equal(pa, pb)
