"""The per-face path: crops cut from the face's region only (the same crop as shrinking the whole photo),
the network input written in place, and one detector shared by many threads."""
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest

from kdlandmarks.data import crop as crop_module
from kdlandmarks.data.crop import CropTransform, gt_crop
from kdlandmarks.data.datasets.pts import read_pts
from kdlandmarks.data.datasets.record import read_image
from kdlandmarks.data.sample_faces import face_folders, sample_folder
from kdlandmarks.inference.detector import LandmarkDetector
from kdlandmarks.inference.runtime import InputBuffers, fill_input, to_batch

# A region's start may lie crop.AREA_GRID_TOLERANCE (0.02) shrunk pixels off the whole image's bin edge: on a
# hard edge that moves a value by a few grey levels, never the crop's geometry by more than that.
MAX_GREY_DIFF, MEAN_GREY_DIFF = 8, 0.5
SAMPLE_FACES = [pts for folder in face_folders(sample_folder()) for pts in sorted(folder.glob("*.pts"))]


def whole_image_warp(transform: CropTransform, image: np.ndarray) -> np.ndarray:
    """The crop as it was cut before: the WHOLE image shrunk with INTER_AREA, then warped."""
    factor = transform.matrix[0, 0]
    if factor >= 1.0:
        return cv2.warpAffine(image, transform.matrix, (transform.size,) * 2, flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REPLICATE)
    h, w = image.shape[:2]
    small = cv2.resize(image, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    sx, sy = small.shape[1] / w, small.shape[0] / h
    pre = np.array([[1 / sx, 0, 0.5 / sx - 0.5], [0, 1 / sy, 0.5 / sy - 0.5], [0, 0, 1]])
    m = np.vstack([transform.matrix, [0, 0, 1]]) @ pre
    return cv2.warpAffine(small, m[:2], (transform.size,) * 2, flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REPLICATE)


def ramp_image(h: int, w: int) -> np.ndarray:
    """Float image whose channels are the pixel's x and y: area filter and bilinear warp keep a linear
    function, so a crop of it reads off where each crop pixel sampled the image."""
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.dstack([xs, ys, xs + ys])


def random_windows(seed: int, count: int):
    """(image size, crop window) pairs: small and large windows, inside, across and mostly outside the image."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        h, w = (int(v) for v in rng.integers(40, 700, 2))
        side = rng.uniform(15, 1.5 * max(h, w))
        cx, cy = rng.uniform(-side / 2, w + side / 2), rng.uniform(-side / 2, h + side / 2)
        yield (h, w), CropTransform.from_square(cx, cy, side, int(rng.choice([32, 64, 128, 224])))


@pytest.mark.parametrize("size", [64, 128])
def test_crop_of_real_faces_matches_whole_image_shrink(size):
    assert len(SAMPLE_FACES) >= 9
    shrunk = 0
    for pts in SAMPLE_FACES:
        image = read_image(pts.with_suffix(".jpg"))
        transform = gt_crop(read_pts(pts), size)
        shrunk += transform.matrix[0, 0] < 1.0  # the area-filtered path
        before = whole_image_warp(transform, image).astype(np.float64)
        now = transform.warp(image).astype(np.float64)
        (dx, dy), _ = cv2.phaseCorrelate(before.mean(axis=2), now.mean(axis=2))
        assert abs(dx) < 0.05 and abs(dy) < 0.05, pts.name
        assert np.abs(before - now).max() <= MAX_GREY_DIFF and np.abs(before - now).mean() < MEAN_GREY_DIFF, pts.name
    assert shrunk >= len(SAMPLE_FACES) // 2


def test_crop_geometry_matches_whole_image_shrink_everywhere():
    """Windows inside, across the border and mostly outside the image: each crop pixel samples the
    same image point as before, to 0.05 crop pixels."""
    worst = 0.0
    for (h, w), transform in random_windows(0, 150):
        image = ramp_image(h, w)
        err = np.abs(whole_image_warp(transform, image) - transform.warp(image))[..., :2].max()
        worst = max(worst, float(err * min(transform.matrix[0, 0], 1.0)))
    assert worst < 0.05


def test_crop_at_the_image_border_matches_whole_image_shrink():
    image = read_image(SAMPLE_FACES[0].with_suffix(".jpg"))
    h, w = image.shape[:2]
    for cx, cy in [(0, 0), (w, h), (-40, h / 2), (w / 2, h + 40), (w - 1, 0)]:
        transform = CropTransform.from_square(cx, cy, 250, 128)
        diff = np.abs(whole_image_warp(transform, image).astype(int) - transform.warp(image).astype(int))
        assert diff.max() <= MAX_GREY_DIFF and diff.mean() < MEAN_GREY_DIFF, (cx, cy)


def test_crop_reads_only_the_face_region_of_a_large_photo(monkeypatch):
    """A face on a 12 MP photo: only its neighbourhood is resampled, and the crop is the one that
    shrinking the whole photo gave."""
    face_image = read_image(SAMPLE_FACES[0].with_suffix(".jpg"))
    big = cv2.copyMakeBorder(face_image, 1000, 3000 - 1000 - face_image.shape[0], 1700,
                             4000 - 1700 - face_image.shape[1], cv2.BORDER_REFLECT)
    assert big.shape[:2] == (3000, 4000)
    transform = gt_crop(read_pts(SAMPLE_FACES[0]) + [1700, 1000], 128)
    before = whole_image_warp(transform, big)
    resized = []
    real_resize = cv2.resize

    def recording_resize(src, *args, **kwargs):
        resized.append(src.shape[:2])
        return real_resize(src, *args, **kwargs)

    monkeypatch.setattr(crop_module.cv2, "resize", recording_resize)
    now = transform.warp(big)
    side = transform.size / transform.matrix[0, 0]
    assert len(resized) == 1 and max(resized[0]) < 2 * side
    assert np.abs(before.astype(int) - now.astype(int)).max() <= MAX_GREY_DIFF


def test_warp_writes_into_a_given_array():
    image = read_image(SAMPLE_FACES[0].with_suffix(".jpg"))
    transform = gt_crop(read_pts(SAMPLE_FACES[0]), 64)
    out = np.zeros((64, 64, 3), np.uint8)
    got = transform.warp(image, out=out)
    assert got is out and out.any()
    np.testing.assert_array_equal(out, transform.warp(image))


def test_fill_input_is_to_batch():
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8), rng.integers(0, 256, (50, 40, 3), dtype=np.uint8),
             rng.random((32, 32, 3))]
    batch = to_batch(crops, 32)
    for crop, expected in zip(crops, batch):
        slot = np.empty((3, 32, 32), np.float32)
        fill_input(slot, crop)
        np.testing.assert_array_equal(slot, expected)
    np.testing.assert_array_equal(batch[0], crops[0].transpose(2, 0, 1).astype(np.float32) / 255)


def test_input_buffers_are_reused_per_thread_and_never_shared_while_taken():
    buffers = InputBuffers()
    first = buffers.take(4, 16)
    nested = buffers.take(2, 16)  # taken while the first is in use: a buffer of its own
    assert not np.shares_memory(first, nested)
    buffers.give_back(first)
    again = buffers.take(3, 16)
    assert np.shares_memory(again, first) and again.shape == (3, 3, 16, 16)
    buffers.give_back(again)
    with ThreadPoolExecutor(1) as pool:  # another thread never gets this thread's buffer
        other = pool.submit(buffers.take, 3, 16).result()
    assert not np.shares_memory(other, first)


# --------------------------------------------------------------------------------------------------
# LandmarkDetector on the shipped default model (onnxruntime)
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def photos():
    """(image, face boxes) for a few sample photos: the face's landmark box and shifted copies."""
    out = []
    for pts in SAMPLE_FACES[:4]:
        image = read_image(pts.with_suffix(".jpg"))
        points = read_pts(pts)
        box = np.r_[points.min(axis=0), points.max(axis=0)]
        out.append((image, np.array([box, box + [9, -6, 9, -6], box * 0.9 + 5])))
    return out


def test_all_faces_in_one_call_match_one_face_per_call(photos):
    detector = LandmarkDetector()
    for image, boxes in photos:
        together = detector.detect(image, boxes=boxes, box_source="landmarks")
        for box, face in zip(boxes, together):
            alone = detector.detect(image, boxes=[box], box_source="landmarks")[0]
            np.testing.assert_allclose(face.landmarks, alone.landmarks, atol=1e-3)
    small_batches = LandmarkDetector(batch_size=2)
    images, boxes = [p[0] for p in photos], [p[1] for p in photos]
    for a, b in zip(detector.detect_batch(images, boxes, "landmarks"),
                    small_batches.detect_batch(images, boxes, "landmarks")):
        np.testing.assert_allclose([f.landmarks for f in a], [f.landmarks for f in b], atol=1e-3)


def test_detect_matches_crops_then_faces_from_crops(photos):
    detector = LandmarkDetector()
    image, boxes = photos[0]
    direct = detector.detect(image, boxes=boxes, box_source="landmarks")
    staged = detector.faces_from_crops([detector.crop_faces(image, boxes, "landmarks")])[0]
    for a, b in zip(direct, staged):
        np.testing.assert_array_equal(a.landmarks, b.landmarks)


def test_one_detector_shared_by_8_threads_gives_sequential_results(photos):
    """200 calls of 1 to 3 faces from 8 threads: each result identical to the same call made alone."""
    detector = LandmarkDetector()
    calls = [(photos[i % len(photos)][0], photos[i % len(photos)][1][: 1 + i % 3]) for i in range(200)]

    def landmarks(call):
        image, boxes = call
        return np.stack([f.landmarks for f in detector.detect(image, boxes=boxes, box_source="landmarks")])

    sequential = [landmarks(call) for call in calls]
    with ThreadPoolExecutor(8) as pool:
        threaded = list(pool.map(landmarks, calls))
    for a, b in zip(sequential, threaded):
        np.testing.assert_array_equal(a, b)
