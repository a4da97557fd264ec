"""Flip test at inference (issue 15): each face and its horizontal mirror in one network batch, the mirrored
view's points mirrored back (x -> S - 1 - x, pixel centres) and relabelled with the scheme's flip_index.

Fake networks make the checks exact: a constant network (known points), a "centroid" network that is
exactly mirror-equivariant by construction (so flip test must change nothing), and a recording network
(what went through it, in how many calls). The identity flip_test(mirror(x)) == mirror(flip_test(x))
holds for any network, so it is checked on the shipped (trained) model on both backends.
"""
import json

import numpy as np
import pytest
import torch

from kdlandmarks.cli import main
from kdlandmarks.data.codec import LandmarkCodec
from kdlandmarks.data.crop import gt_crop, landmark_box
from kdlandmarks.errors import ConfigError, FlipTestError, KDLandmarksError
from kdlandmarks.data.flip import merge_flip_views, run_flip_test, with_mirrors
from kdlandmarks.inference.detector import LandmarkDetector
from kdlandmarks.models.backbones import ModelInfo, create_model, save_model
from kdlandmarks.data.schemes import W300

S = 32          # input size of the fake networks
LITE = "kd-student-300w-lite"


# --------------------------------------------------------------------------------------------------
# Fake networks
# --------------------------------------------------------------------------------------------------

class ConstNet(torch.nn.Module):
    """Always the same normalised output vector, whatever the input."""

    def __init__(self, vector):
        super().__init__()
        self.register_buffer("vector", torch.as_tensor(np.asarray(vector), dtype=torch.float32))

    def forward(self, x):
        return self.vector.expand(x.shape[0], -1)


class CentroidNet(torch.nn.Module):
    """5 points, each the brightness-weighted centroid of a region, in pixel centres (normalised out):
    0 the left half, 1 the right half, 2 the whole crop, 3 the bottom-left and 4 the bottom-right quarter.
    With flip pairs (0, 1) and (3, 4) it is exactly mirror-equivariant: mirrored input -> mirrored points."""

    def forward(self, x):
        size = x.shape[-1]
        h = size // 2
        w = x.mean(1) + 1e-3                                             # (B, S, S) brightness
        idx = torch.arange(size, dtype=x.dtype)
        rows, cols = torch.meshgrid(idx, idx, indexing="ij")
        regions = [cols < h, cols >= h, cols >= 0, (rows >= h) & (cols < h), (rows >= h) & (cols >= h)]
        out = []
        for mask in regions:
            m = w * mask
            total = m.sum((1, 2))
            px, py = (m * cols).sum((1, 2)) / total, (m * rows).sum((1, 2)) / total
            out += [(px + 0.5) / size - 0.5, (py + 0.5) / size - 0.5]
        return torch.stack(out, 1)


class RecordingNet(ConstNet):
    def __init__(self, vector):
        super().__init__(vector)
        self.calls = []

    def forward(self, x):
        self.calls.append(x.detach().clone())
        return super().forward(x)


@pytest.fixture(scope="module")
def five_point_scheme(tmp_path_factory):
    path = tmp_path_factory.mktemp("scheme") / "five.yaml"
    path.write_text("name: five\nnum_points: 5\nflip_pairs: [[0, 1], [3, 4]]\ninter_ocular: [0, 1]\n")
    return path


@pytest.fixture(scope="module")
def no_flip_scheme(tmp_path_factory):
    """A 68-point scheme with no flip pairs."""
    path = tmp_path_factory.mktemp("scheme") / "noflip68.yaml"
    path.write_text("name: noflip68\nnum_points: 68\ninter_ocular: [36, 45]\n")
    return path


def centroid_detector(scheme_path, **kw):
    return LandmarkDetector.from_model(CentroidNet(), ModelInfo("fake", 5, S, scheme=str(scheme_path)),
                                       detector=lambda im: [], **kw)


def synthetic_face(symmetric: bool, seed: int = 0) -> np.ndarray:
    """An S x S RGB face-like crop: two bright eyes, a nose and a mouth on noise; mirror-symmetric or not."""
    import cv2

    rng = np.random.default_rng(seed)
    img = rng.integers(0, 60, (S, S, 3), dtype=np.uint8)
    cv2.circle(img, (9, 11), 3, (240, 230, 220), -1)
    cv2.circle(img, (S - 1 - 9, 11) if symmetric else (S - 1 - 6, 13), 3, (240, 230, 220), -1)
    cv2.line(img, (S // 2 - 1, 12), (S // 2 - 1, 20), (200, 200, 200), 1)
    cv2.ellipse(img, (S // 2, 25), (7, 2), 0, 0, 360, (180, 90, 90), -1)
    if symmetric:
        img[:, S // 2:] = img[:, :S // 2][:, ::-1]
        assert np.array_equal(img, img[:, ::-1])
    return img


def lfpw_faces(count: int):
    """(image, landmarks) of the bundled 300-W sample's LFPW test faces."""
    from kdlandmarks.data.datasets import sample_root
    from kdlandmarks.data.datasets.pts import read_pts
    from kdlandmarks.data.datasets.record import read_image

    try:
        root = sample_root() / "lfpw" / "testset"
    except KDLandmarksError:
        pytest.skip("no bundled 300-W sample")
    out = [(read_image(p.with_suffix(".jpg")), read_pts(p)) for p in sorted(root.glob("*.pts"))[:count]]
    if not out:
        pytest.skip("no bundled 300-W sample")
    return out


# --------------------------------------------------------------------------------------------------
# The mirroring convention and the relabelling
# --------------------------------------------------------------------------------------------------

def test_mirror_convention_matches_the_codec():
    """x -> S - 1 - x in input pixels is u -> -u in the codec's normalised space (pixel centres)."""
    codec = LandmarkCodec(S)
    pts = np.random.default_rng(0).uniform(-0.5, S - 0.5, (68, 2))
    flipped = W300.flip(pts, S)
    u, u_flipped = codec.encode(pts).reshape(68, 2), codec.encode(flipped).reshape(68, 2)
    np.testing.assert_allclose(u_flipped[:, 0], -u[W300.flip_index, 0], atol=1e-12)
    np.testing.assert_allclose(u_flipped[:, 1], u[W300.flip_index, 1], atol=1e-12)
    batch = np.random.default_rng(1).random((2, 3, S, S), dtype=np.float32)
    both = with_mirrors(batch)
    assert both.shape == (4, 3, S, S) and both.flags.c_contiguous
    assert np.array_equal(both[:2], batch) and np.array_equal(both[2:], batch[:, :, :, ::-1])


def test_each_point_returns_to_its_own_index():
    """A constant network: plain = b, mirrored view = b too; un-flipping relabels each mirrored point, so
    point i becomes the average of b[i] and mirror(b[flip_index[i]]): a left eye stays a left eye."""
    rng = np.random.default_rng(0)
    pts = rng.uniform(4, S - 5, (68, 2))
    pts[36], pts[45] = (6.0, 10.0), (24.0, 11.0)     # image-left / image-right eye corners
    pts[8] = (15.0, 30.0)                             # chin (its own mirror partner)
    codec = LandmarkCodec(S)
    det = LandmarkDetector.from_model(ConstNet(codec.encode(pts)), ModelInfo("fake", 68, S), detector=lambda im: [])
    crop = np.zeros((S, S, 3), np.uint8)
    plain = det.predict_crops([crop])[0]
    flip = det.predict_crops([crop], flip_test=True)[0]
    np.testing.assert_allclose(plain, pts, atol=1e-4)
    p = W300.flip_index
    expected = 0.5 * (pts + np.c_[(S - 1) - pts[p, 0], pts[p, 1]])
    np.testing.assert_allclose(flip, expected, atol=1e-4)
    np.testing.assert_allclose(flip[36], [(6.0 + (S - 1 - 24.0)) / 2, 10.5], atol=1e-4)   # 6.5: still on the left
    np.testing.assert_allclose(flip[45], [(24.0 + (S - 1 - 6.0)) / 2, 10.5], atol=1e-4)   # 24.5: still on the right
    np.testing.assert_allclose(flip[8], [(S - 1) / 2, 30.0], atol=1e-4)                   # on the midline
    np.testing.assert_allclose(merge_flip_views(pts, pts, W300, S), expected, atol=1e-12)


def test_flip_and_merge_take_torch_tensors_like_numpy_arrays():
    """The training loop's flip test (teacher_cache.flip_tested) runs LandmarkScheme.flip and
    merge_flip_views on torch tensors: same numbers as numpy, the tensor's dtype kept, the input untouched."""
    rng = np.random.default_rng(1)
    plain, mirrored = rng.uniform(0, S - 1, (2, 3, 68, 2))
    t_plain, t_mirrored = torch.tensor(plain, dtype=torch.float32), torch.tensor(mirrored, dtype=torch.float32)
    before = t_mirrored.clone()
    flipped = W300.flip(t_mirrored, S)
    assert isinstance(flipped, torch.Tensor) and flipped.dtype == torch.float32
    torch.testing.assert_close(t_mirrored, before)
    np.testing.assert_allclose(flipped.numpy(), W300.flip(mirrored, S), atol=1e-5)
    merged = merge_flip_views(t_plain, t_mirrored, W300, S)
    assert isinstance(merged, torch.Tensor)
    np.testing.assert_allclose(merged.numpy(), merge_flip_views(plain, mirrored, W300, S), atol=1e-5)


@pytest.mark.parametrize("symmetric", [True, False])
def test_equivariant_network_gives_the_same_points_with_and_without_flip_test(five_point_scheme, symmetric):
    """For a network that is exactly mirror-equivariant flip test changes nothing, on a symmetric synthetic
    face and on an asymmetric one; an off-by-one mirror (x -> S - x) or a missing relabelling would not."""
    det = centroid_detector(five_point_scheme)
    face = synthetic_face(symmetric)
    plain = det.predict_crops([face])[0]
    flip = det.predict_crops([face], flip_test=True)[0]
    np.testing.assert_allclose(flip, plain, atol=1e-4)
    mid = (S - 1) / 2
    assert flip[0, 0] < mid < flip[1, 0] and flip[3, 0] < mid < flip[4, 0]   # left stays left
    if symmetric:
        np.testing.assert_allclose(flip[2, 0], (S - 1) / 2, atol=1e-4)
        np.testing.assert_allclose(flip[0, 0] + flip[1, 0], S - 1, atol=1e-4)


def test_symmetric_face_on_the_shipped_model():
    """A real face made mirror-symmetric: the trained model's flip-test points are exactly symmetric and
    stay close (well under a pixel on average at 128 px) to its single-pass points."""
    image, gt = lfpw_faces(1)[0]
    det = LandmarkDetector(LITE, backend="torch", detector=lambda im: [])
    crop = gt_crop(gt, det.input_size, det.info.crop_margin).warp(image)
    size = det.input_size
    crop[:, size // 2:] = crop[:, :size // 2][:, ::-1]
    plain = det.predict_crops([crop])[0]
    flip = det.predict_crops([crop], flip_test=True)[0]
    np.testing.assert_allclose(W300.flip(flip, size), flip, atol=1e-3)
    assert np.linalg.norm(flip - plain, axis=1).mean() < 1.5


# --------------------------------------------------------------------------------------------------
# The identity that holds for any network; both backends; one batch
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_flip_test_of_the_mirror_is_the_mirror_of_flip_test(backend):
    """flip_test(mirror(crop)) == mirror(flip_test(crop)) relabelled, whatever the network (here the trained
    shipped model), since both average the same two views."""
    if backend == "onnx":
        pytest.importorskip("onnxruntime")
    det = LandmarkDetector(LITE, backend=backend, detector=lambda im: [], flip_test=True)
    size = det.input_size
    faces = lfpw_faces(2)
    crops = [gt_crop(gt, size, det.info.crop_margin).warp(im) for im, gt in faces]
    mirrored = [c[:, ::-1].copy() for c in crops]
    a = det.predict_crops(crops)
    b = det.predict_crops(mirrored)
    np.testing.assert_allclose(W300.flip(b, size), a, atol=2e-3)
    assert not np.allclose(a, det.predict_crops(crops, flip_test=False), atol=1e-2)   # it did something


def test_flip_test_agrees_across_backends():
    pytest.importorskip("onnxruntime")
    (image, gt), = lfpw_faces(1)
    box = landmark_box(gt)
    a = LandmarkDetector(LITE, backend="torch", detector=lambda im: []).detect(image, [box], flip_test=True)
    b = LandmarkDetector(f"{LITE}:fp32", backend="onnx", detector=lambda im: []).detect(image, [box], flip_test=True)
    np.testing.assert_allclose(a[0].landmarks, b[0].landmarks, atol=0.05)


def test_both_views_go_through_the_network_in_one_batch():
    net = RecordingNet(np.zeros(2 * 68))
    det = LandmarkDetector.from_model(net, ModelInfo("fake", 68, S), detector=lambda im: [], batch_size=4,
                                      flip_test=True)
    crops = [np.random.default_rng(i).integers(0, 256, (S, S, 3), dtype=np.uint8) for i in range(5)]
    det.predict_crops(crops)
    assert [len(c) for c in net.calls] == [8, 2]          # 4 faces + 4 mirrors, then 1 + 1
    first = net.calls[0].numpy()
    assert np.array_equal(first[4:], first[:4, :, :, ::-1])
    net.calls.clear()
    det.predict_crops(crops, flip_test=False)             # per-call override: single pass
    assert [len(c) for c in net.calls] == [4, 1]


def test_run_flip_test_calls_the_network_once():
    calls = []

    def run(x):
        calls.append(x.shape)
        return np.zeros((len(x), 10))

    out = run_flip_test(run, np.zeros((3, 3, S, S), np.float32), LandmarkCodec(S), _five())
    assert calls == [(6, 3, S, S)] and out.shape == (3, 5, 2)


def _five():
    from kdlandmarks.data.schemes import LandmarkScheme

    return LandmarkScheme("five", 5, ((0, 1), (3, 4)), (0, 1), ((0,), (1,)))


# --------------------------------------------------------------------------------------------------
# A scheme without flip pairs
# --------------------------------------------------------------------------------------------------

def test_scheme_without_flip_pairs_is_a_one_line_error(no_flip_scheme):
    info = ModelInfo("fake", 68, S, scheme=str(no_flip_scheme))
    with pytest.raises(FlipTestError, match="flip pairs") as err:
        LandmarkDetector.from_model(ConstNet(np.zeros(136)), info, flip_test=True)
    assert "\n" not in str(err.value) and isinstance(err.value, ConfigError)
    det = LandmarkDetector.from_model(ConstNet(np.zeros(136)), info, detector=lambda im: [])  # default: fine
    image = np.zeros((40, 40, 3), np.uint8)
    assert len(det.detect(image, [[5, 5, 30, 30]])) == 1
    with pytest.raises(FlipTestError, match="noflip68"):
        det.detect(image, [[5, 5, 30, 30]], flip_test=True)


@pytest.fixture(scope="module")
def no_flip_model(no_flip_scheme, tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("m") / "noflip.pt"
    info = ModelInfo("mobilenetv2_050", 68, S, scheme=str(no_flip_scheme))
    save_model(path, create_model("mobilenetv2_050", 68), info)
    return path


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_cli_scheme_without_flip_pairs_prints_one_line(command, no_flip_model, tmp_path, capsys):
    from kdlandmarks.data.datasets import sample_root

    try:
        root = sample_root()
    except KDLandmarksError:
        pytest.skip("no bundled 300-W sample")
    image = next((root / "lfpw" / "testset").glob("*.jpg"))
    if command == "predict":
        argv = ["predict", str(image), "--model", str(no_flip_model), "--out", str(tmp_path / "o"),
                "--boxes", "10,10,100,100", "--flip-test"]
    else:
        argv = ["evaluate", "--model", str(no_flip_model), "--dataset", "300w", "--root", str(root),
                "--split", "lfpw/testset", "--out", str(tmp_path / "o"), "--flip-test"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "flip pairs" in err[0] and "noflip68" in err[0]


# --------------------------------------------------------------------------------------------------
# The commands on the bundled sample with the shipped lite model; video; bench row
# --------------------------------------------------------------------------------------------------

def test_cli_predict_flip_test_on_a_bundled_photo(tmp_path, capsys):
    from kdlandmarks.data.datasets import sample_root

    try:
        pts = sorted((sample_root() / "lfpw" / "testset").glob("*.pts"))[0]
    except (KDLandmarksError, IndexError):
        pytest.skip("no bundled 300-W sample")
    from kdlandmarks.data.datasets.pts import read_pts

    x0, y0, x1, y1 = landmark_box(read_pts(pts))
    box = f"{x0:.1f},{y0:.1f},{x1:.1f},{y1:.1f}"
    results = {}
    for flag in ([], ["--flip-test"]):
        out = tmp_path / ("flip" if flag else "plain")
        assert main(["predict", str(pts.with_suffix(".jpg")), "--model", LITE, "--out", str(out),
                     "--boxes", box, *flag]) == 0, capsys.readouterr().err
        results[bool(flag)] = json.loads((out / f"{pts.stem}.json").read_text())
    assert results[True]["flip_test"] is True and results[False]["flip_test"] is False
    a, b = (np.array(results[k]["faces"][0]["landmarks"]) for k in (False, True))
    assert a.shape == b.shape == (68, 2)
    shift = np.linalg.norm(a - b, axis=1).mean()
    assert 0 < shift < 0.05 * (x1 - x0)     # the average moves points a little, never far


def test_cli_evaluate_flip_test_on_the_bundled_sample(tmp_path, capsys):
    from kdlandmarks.data.datasets import sample_root

    try:
        root = sample_root()
    except KDLandmarksError:
        pytest.skip("no bundled 300-W sample")
    nme = {}
    for flag in ([], ["--flip-test"]):
        out = tmp_path / ("flip" if flag else "plain")
        assert main(["evaluate", "--model", LITE, "--dataset", "300w", "--root", str(root), "--split",
                     "lfpw/testset", "--out", str(out), "--batch-size", "5", *flag]) == 0
        text = capsys.readouterr().out
        assert ("flip test:" in text) == bool(flag)
        report = json.loads((out / "metrics.json").read_text())
        assert report["protocol"]["flip_test"] is bool(flag)
        nme[bool(flag)] = report["subsets"]["lfpw/testset"]["nme"]
    assert nme[True] != nme[False] and nme[True] < 1.1 * nme[False]


def test_flip_test_composes_with_tracking_and_smoothing(tmp_path, capsys):
    import cv2

    torch.manual_seed(0)
    model = tmp_path / "tiny.pt"
    net = create_model("mobilenetv2_050", 68)
    with torch.no_grad():
        net.head.weight.mul_(0.01)
    save_model(model, net, ModelInfo("mobilenetv2_050", 68, 64))
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (96, 72))
    if not writer.isOpened():
        pytest.skip("this OpenCV build cannot write mp4v videos")
    rng = np.random.default_rng(0)
    for i in range(4):
        frame = rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)
        cv2.circle(frame, (30 + 3 * i, 36), 18, (180, 160, 140), -1)
        writer.write(frame)
    writer.release()
    out = tmp_path / "out"
    assert main(["predict", str(video), "--model", str(model), "--out", str(out), "--boxes", "10,15,60,60",
                 "--batch-size", "3", "--flip-test"]) == 0, capsys.readouterr().err
    lines = [json.loads(ln) for ln in (out / "clip.jsonl").read_text().splitlines()]
    assert lines[0]["flip_test"] is True and lines[0]["smoothed"] is True
    assert [f["faces"][0]["track"] for f in lines[1:]] == [0, 0, 0, 0]
    assert all(len(f["faces"][0]["landmarks"]) == 68 for f in lines[1:])


def test_bench_flip_test_rows_without_timing():
    """The bench rows' code path, with a fake runner and a fake timer (no benchmark is run)."""
    from kdlandmarks.apps.bench import BenchReport, BenchRow, _bench_flip_test, _targets

    ran = []

    def runner(x):
        ran.append(len(x))
        return np.zeros((len(x), 136), np.float32)

    def timer(fn, warmup=2):
        fn()
        return 0.004, 0.003

    info = ModelInfo("fake", 68, S)
    inputs = {b: np.zeros((b, 3, S, S), np.float32) for b in (1, 4)}
    report = BenchReport()
    report.rows.append(BenchRow("student", "onnxruntime", S, 1, 2.0, 1.5, 500.0))
    _bench_flip_test(report.rows, "student", info, [("onnxruntime", runner, ""), ("onnxruntime int8", runner, "q")],
                     inputs, [1, 4], timer)
    flip_rows = [r for r in report.rows if r.model == "student (flip test)"]
    assert [(r.runtime, r.batch) for r in flip_rows] == [("onnxruntime", 1), ("onnxruntime", 4),
                                                          ("onnxruntime int8", 1), ("onnxruntime int8", 4)]
    assert ran == [2, 8, 2, 8]                            # each call: the faces and their mirrors together
    assert flip_rows[1].ms_per_face == pytest.approx(1.0) and "batch of 8" in flip_rows[1].note
    assert any("with flip test" in t and "2.00x" in t for t in _targets(report, S))
    skipped = []
    _bench_flip_test(skipped, "student", ModelInfo("fake", 5, S), [("onnxruntime", runner, "")], inputs, [1], timer)
    assert len(skipped) == 1 and skipped[0].note.startswith("skipped:")
