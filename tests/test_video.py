"""One-Euro filter, IoU tracker and landmark smoother on synthetic sequences; `kdlandmarks predict` on a video."""
import json
from dataclasses import dataclass

import cv2
import numpy as np
import pytest
import torch

from kdlandmarks.cli import main
from kdlandmarks.errors import ConfigError
from kdlandmarks.models.backbones import ModelInfo, create_model, save_model
from kdlandmarks.inference.video import IoUTracker, LandmarkSmoother, OneEuroFilter

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
    truth = {0: np.array([[30.0, 30.0], [50.0, 40.0]]), 1: np.array([[230.0, 130.0], [250.0, 140.0]])}
    boxes = {0: np.array([10.0, 10, 70, 70]), 1: np.array([210.0, 110, 270, 170])}
    smoother = LandmarkSmoother(fps=FPS)
    raw, smooth = {0: [], 1: []}, {0: [], 1: []}
    for i in range(120):
        order = [1, 0] if i % 3 == 1 else [0, 1]  # the order changes; ids must not
        faces = [F(boxes[k] + rng.normal(0, 0.5, 4), truth[k] + rng.normal(0, 1.0, (2, 2))) for k in order]
        for (tid, face), k, inp in zip(smoother.update(faces, i / FPS), order, faces):
            raw[k].append(inp.landmarks)
            smooth[k].append(face.landmarks)
            assert tid == k                            # frame 0 lists face 0 first: it is track 0
    for k in (0, 1):
        s, r = np.array(smooth[k][30:]), np.array(raw[k][30:])
        assert np.abs(s - truth[k]).std() < 0.5 * np.abs(r - truth[k]).std()
        assert np.abs(s.mean(0) - truth[k]).max() < 0.5  # unbiased: no mixing between the two faces


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
    frames = [json.loads(ln) for ln in (out / "clip.jsonl").read_text().splitlines()[1:]]
    assert len(frames) == 3 and frames[0]["faces"][0]["track"] is None
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
    frames = list(detector.detect_video(video, boxes=[[10, 15, 60, 60]], batch_size=2))
    assert [f.index for f in frames] == list(range(5))
    assert frames[1].time == pytest.approx(0.1)  # 10 fps
    assert all(f.image.shape == (72, 96, 3) and f.tracks == [0] and len(f.faces) == 1 for f in frames)
    assert frames[0].faces[0].landmarks.shape == (68, 2)
    assert frames[0].to_dict()["faces"][0]["track"] == 0
    plain = list(detector.detect_video(video, boxes=[[10, 15, 60, 60]], smooth=False))
    assert plain[0].tracks == [None] and len(plain) == 5
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
    from kdlandmarks.apps.predict import predict_paths

    (tmp_path / "in").mkdir()
    video = write_video(tmp_path / "in" / "clip.mp4", frames=3)
    photo = tmp_path / "in" / "face.png"
    cv2.imwrite(str(photo), np.full((72, 96, 3), 120, np.uint8))
    skipped = []
    summary = predict_paths([photo, video, tmp_path / "in" / "face.png"], tmp_path / "out", model=model_file,
                            formats="json,pts", boxes="10,15,60,60", progress=False, on_skip=skipped.append)
    assert (summary.images, summary.images_done, summary.videos_done, summary.frames) == (2, 2, 1, 3)
    assert summary.faces == 2 + 3 and not summary.errors and not skipped
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["clip.jsonl", "face.json", "face_0.pts", "face_1.json", "face_1_0.pts"]
    record = json.loads((tmp_path / "out" / "face.json").read_text())
    assert record["detector"] == "given boxes" and len(record["faces"][0]["landmarks"]) == 68
    assert "predicted 5 faces in 2/2 images, 1/1 videos (3 frames)" in summary.describe()


def test_face_detector_name_and_deprecated_alias(model_file):
    from kdlandmarks import LandmarkDetector

    detector = LandmarkDetector(model_file, detector=lambda image: [])
    face_detector = detector.face_detector
    with pytest.warns(DeprecationWarning, match="face_detector"):
        assert detector.detector is face_detector


def test_predict_paths_skips_bad_inputs_and_raises_when_none_worked(model_file, tmp_path):
    from kdlandmarks.errors import DataError
    from kdlandmarks.apps.predict import predict_paths

    good, bad = tmp_path / "good.png", tmp_path / "bad.png"
    cv2.imwrite(str(good), np.full((72, 96, 3), 120, np.uint8))
    bad.write_bytes(b"not an image")
    skipped = []
    summary = predict_paths([good, bad], tmp_path / "out", model=model_file, boxes=[[10, 15, 60, 60]],
                            progress=False, on_skip=skipped.append)
    assert summary.images_done == 1 and len(summary.errors) == 1 and skipped == summary.errors
    assert "1 skipped" in summary.describe()
    with pytest.raises(DataError, match="bad.png"):
        predict_paths([bad], tmp_path / "out2", model=model_file, boxes=[[10, 15, 60, 60]], progress=False)
    with pytest.raises(DataError, match="no such file"):  # before the model loads
        predict_paths([tmp_path / "missing.png"], tmp_path / "out3", model="no-such-model")
