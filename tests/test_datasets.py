"""Dataset readers: .pts files, 300-W layout, COFW .mat (v7.3 and v5), WFLW lists, users' folders, bundled sample."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from kdlandmarks.data.datasets import load_dataset, read_image, sample_root
from kdlandmarks.data.datasets.cofw import read_cofw
from kdlandmarks.data.datasets.folder import read_folder
from kdlandmarks.data.datasets.pts import read_pts, write_pts
from kdlandmarks.data.datasets.w300 import read_300w
from kdlandmarks.data.datasets import full_300w_root
from kdlandmarks.data.datasets.wflw import WFLW_ATTRIBUTES, read_wflw
from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.data.schemes import load_scheme_file

REAL_300W = full_300w_root() or Path("missing-300w")  # $KDLANDMARKS_300W (tests/conftest.py: ../shared/data/300w)


def _face(n: int, seed: int = 0, size: int = 40) -> np.ndarray:
    return np.random.default_rng(seed).uniform(2, size - 3, size=(n, 2)).round(3)


def _write_jpeg(path: Path, size: int = 40, seed: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = np.random.default_rng(seed).integers(0, 256, size=(size, size + 8, 3), dtype=np.uint8)
    assert cv2.imwrite(str(path), image)


def _add_face(folder: Path, stem: str, n: int = 68, seed: int = 0) -> np.ndarray:
    pts = _face(n, seed)
    _write_jpeg(folder / f"{stem}.jpg", seed=seed)
    write_pts(folder / f"{stem}.pts", pts)
    return pts


# --- .pts -----------------------------------------------------------------------------------------------

def test_pts_round_trip_is_one_based_on_disk(tmp_path):
    pts = _face(68)
    path = tmp_path / "a.pts"
    write_pts(path, pts)
    text = path.read_text()
    assert text.startswith("version: 1\nn_points: 68\n{\n")
    first = [float(v) for v in text.splitlines()[3].split()]
    np.testing.assert_allclose(first, pts[0] + 1, atol=1e-6)
    np.testing.assert_allclose(read_pts(path, 68), pts, atol=1e-6)
    assert not list(tmp_path.glob(".*.tmp"))


@pytest.mark.parametrize("body, message", [
    ("version: 1\nn_points: 2\n{\n1 2\n3 4\n}\n", "expected 68 points, found 2"),
    ("version: 1\nn_points: 2\n{\n1 2\n3 x\n}\n", "non-numeric"),
    ("version: 1\nn_points: 68\n{\n" + "1 2\n" * 67 + "nan 4\n}\n", "NaN"),
    ("version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n", "header says 3 points"),
    ("version: 1\nn_points: 2\n1 2\n3 4\n", "missing"),
    ("version: 1\nn_points: 2\n{\n1 2 3\n}\n", "malformed point line"),
])
def test_pts_errors_name_the_file(tmp_path, body, message):
    path = tmp_path / "bad.pts"
    path.write_text(body)
    with pytest.raises(DataError, match=message) as info:
        read_pts(path, 68)
    assert str(path) in str(info.value)


def test_pts_missing_file(tmp_path):
    with pytest.raises(DataError, match="annotation file not found"):
        read_pts(tmp_path / "none.pts")


# --- 300-W ----------------------------------------------------------------------------------------------

@pytest.fixture
def w300_root(tmp_path) -> Path:
    root = tmp_path / "300w"
    for i, sub in enumerate(("afw", "helen/trainset", "lfpw/trainset")):
        _add_face(root / sub, f"face{i}a", seed=i)
        _add_face(root / sub, f"face{i}b", seed=10 + i)
    _add_face(root / "lfpw/testset", "image_0001", seed=20)
    return root


def test_300w_train_and_subfolder_splits(w300_root):
    train = read_300w(w300_root, "train")
    assert len(train) == 6
    assert {r.subset for r in train} == {"afw", "helen/trainset", "lfpw/trainset"}
    assert train[0].name == "afw/face0a"
    np.testing.assert_allclose(train[0].landmarks, _face(68, 0), atol=1e-6)
    image = train[0].load_image()
    assert image.shape == (40, 48, 3) and image.dtype == np.uint8
    test = read_300w(w300_root, "lfpw/testset")
    assert [r.name for r in test] == ["lfpw/testset/image_0001"]
    assert len(load_dataset("300w", w300_root, "train")) == 6


def test_300w_missing_split_folder_is_named(w300_root):
    with pytest.raises(DataError, match="helen/testset"):
        read_300w(w300_root, "common")
    with pytest.raises(DataError, match="ibug"):
        read_300w(w300_root, "challenging")
    with pytest.raises(DataError, match="300-W root folder not found"):
        read_300w(w300_root / "nowhere", "train")


def test_300w_empty_folder(w300_root):
    (w300_root / "empty").mkdir()
    with pytest.raises(DataError, match="no .pts annotations"):
        read_300w(w300_root, "empty")


def test_300w_image_without_pts_is_ignored_and_pts_without_image_fails(w300_root):
    _write_jpeg(w300_root / "afw" / "unlabelled.jpg")
    assert len(read_300w(w300_root, "afw")) == 2
    write_pts(w300_root / "afw" / "orphan.pts", _face(68))
    with pytest.raises(DataError, match="orphan.pts: no image"):
        read_300w(w300_root, "afw")


def test_300w_pts_without_image_is_skipped_with_errors(w300_root):
    write_pts(w300_root / "afw" / "orphan.pts", _face(68))
    errors: list[str] = []
    records = read_300w(w300_root, "train", errors=errors)
    assert len(records) == 6 and len(errors) == 1 and "orphan.pts: no image" in errors[0]
    assert len(read_folder(w300_root, "afw", "300w", errors=[])) == 2  # the user-folder reader shares it


def test_300w_image_suffix_matches_in_any_case(w300_root):
    folder = w300_root / "afw"
    (folder / "face0a.jpg").rename(folder / "face0a.JPG")
    _write_jpeg(folder / "upper.PNG")
    write_pts(folder / "upper.pts", _face(68, 5))
    records = read_300w(w300_root, "afw")
    assert [r.name for r in records] == ["afw/face0a", "afw/face0b", "afw/upper"]
    assert records[0].image_path.name == "face0a.JPG" and records[2].image_path.name == "upper.PNG"
    assert records[0].load_image().shape == (40, 48, 3)


def test_300w_bad_annotation_raises_or_is_skipped(w300_root):
    (w300_root / "afw" / "face0b.pts").write_text("version: 1\nn_points: 2\n{\n1 2\n3 4\n}\n")
    with pytest.raises(DataError, match="face0b.pts"):
        read_300w(w300_root, "train")
    errors: list[str] = []
    records = read_300w(w300_root, "train", errors=errors)
    assert len(records) == 5 and len(errors) == 1 and "face0b.pts" in errors[0]


def test_corrupt_and_missing_images(w300_root):
    bad = w300_root / "afw" / "face0a.jpg"
    bad.write_bytes(b"not a jpeg at all")
    record = read_300w(w300_root, "afw")[0]
    with pytest.raises(DataError, match="not a readable image"):
        record.load_image()
    bad.write_bytes(b"")
    with pytest.raises(DataError, match="not a readable image"):
        read_image(bad)
    with pytest.raises(DataError, match="image not found"):
        read_image(w300_root / "missing.jpg")


@pytest.mark.skipif(not REAL_300W.is_dir(), reason="real 300-W data not available")
def test_real_300w_counts():
    train = read_300w(REAL_300W, "train")
    test = read_300w(REAL_300W, "lfpw/testset")
    assert len(train) == 2012 and len(test) == 224
    for r in train + test:
        assert r.landmarks.shape == (68, 2) and np.isfinite(r.landmarks).all()
    assert len({r.name for r in train}) == 2012


# --- COFW -----------------------------------------------------------------------------------------------

def _cofw_faces(m: int = 3):
    """m faces (first one grayscale) with MATLAB-style 1-based phis (M x 87) and bboxes (M x 4)."""
    rng = np.random.default_rng(5)
    images, phis, boxes = [], [], []
    for i in range(m):
        h, w = 30 + i, 40 + 2 * i
        shape = (h, w) if i == 0 else (h, w, 3)
        images.append(rng.integers(0, 256, size=shape, dtype=np.uint8))
        x = rng.uniform(5, w - 5, 29)
        y = rng.uniform(5, h - 5, 29)
        occ = (np.arange(29) % (i + 2) == 0).astype(np.float64)
        phis.append(np.concatenate([x + 1, y + 1, occ]))
        boxes.append([3 + i, 4, 20, 18 + i])
    return images, np.array(phis), np.array(boxes, dtype=np.float64)


def _write_cofw_v73(path: Path, split_keys: tuple[str, str, str], images, phis, boxes) -> None:
    """Mimic MATLAB's `save -v7.3`: 512-byte userblock, images in #refs#, every array stored transposed."""
    import h5py

    images_key, phis_key, boxes_key = split_keys
    with h5py.File(path, "w", userblock_size=512) as f:
        refs_group = f.create_group("#refs#")
        refs = np.empty((1, len(images)), dtype=h5py.ref_dtype)
        for i, image in enumerate(images):
            ds = refs_group.create_dataset(f"img{i}", data=image.T)  # (W, H) or (3, W, H), as MATLAB writes
            ds.attrs["MATLAB_class"] = np.bytes_("uint8")
            refs[0, i] = ds.ref
        f.create_dataset(images_key, data=refs)
        f.create_dataset(phis_key, data=phis.T)  # 87 x M
        f.create_dataset(boxes_key, data=boxes.T)  # 4 x M
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: test HDF5 schema 1.00 .".ljust(128))


def _check_cofw(records, images, phis, boxes, split):
    assert len(records) == len(images)
    for i, r in enumerate(records):
        assert r.image_path is None and r.subset == split
        assert r.image.dtype == np.uint8 and r.image.ndim == 3 and r.image.shape[2] == 3
        assert r.image.shape[:2] == images[i].shape[:2]
        expected_rgb = np.repeat(images[i][:, :, None], 3, axis=2) if images[i].ndim == 2 else images[i]
        np.testing.assert_array_equal(r.image, expected_rgb)
        np.testing.assert_allclose(r.landmarks[:, 0], phis[i, :29] - 1)
        np.testing.assert_allclose(r.landmarks[:, 1], phis[i, 29:58] - 1)
        x, y, w, h = boxes[i]
        np.testing.assert_allclose(r.box, [x - 1, y - 1, x - 1 + w, y - 1 + h])
        assert r.occlusion.dtype == bool
        np.testing.assert_array_equal(r.occlusion, phis[i, 58:] > 0)
    assert records[1].occlusion.sum() != records[0].occlusion.sum()
    assert len({r.name for r in records}) == len(records)


def test_cofw_v73_hdf5(tmp_path):
    import h5py

    images, phis, boxes = _cofw_faces()
    path = tmp_path / "COFW_test_color.mat"
    _write_cofw_v73(path, ("IsT", "phisT", "bboxesT"), images, phis, boxes)
    with h5py.File(path, "r") as f:  # the on-disk orientation is the real files' one
        assert f["IsT"].shape == (1, 3) and f["phisT"].shape == (87, 3) and f["bboxesT"].shape == (4, 3)
        assert f[f["IsT"][0, 1]].shape == (3, 42, 31)
    records = read_cofw(tmp_path, "test")
    _check_cofw(records, images, phis, boxes, "test")
    # The grayscale face's pixels are the same in all three channels.
    assert (records[0].image[..., 0] == records[0].image[..., 2]).all()
    assert len(read_cofw(path)) == 3  # a .mat file given directly


def test_cofw_v5_scipy(tmp_path):
    import scipy.io

    images, phis, boxes = _cofw_faces()
    cells = np.empty((len(images), 1), dtype=object)
    for i, image in enumerate(images):
        cells[i, 0] = image
    scipy.io.savemat(tmp_path / "COFW_train_color.mat", {"IsTr": cells, "phisTr": phis, "bboxesTr": boxes})
    records = read_cofw(tmp_path, "train")
    _check_cofw(records, images, phis, boxes, "train")
    assert len(load_dataset("cofw", tmp_path, "train")) == 3


def test_cofw_errors(tmp_path):
    with pytest.raises(DataError, match="COFW_test_color.mat: COFW test file not found"):
        read_cofw(tmp_path, "test")
    with pytest.raises(ConfigError, match="COFW split 'val'"):
        read_cofw(tmp_path, "val")
    images, phis, boxes = _cofw_faces()
    path = tmp_path / "COFW_train_color.mat"
    _write_cofw_v73(path, ("IsTr", "phisTr", "bboxesTr"), images, phis, boxes)
    with pytest.raises(DataError, match="no IsT, phisT, bboxesT"):
        read_cofw(path, "test")
    phis_bad = phis.copy()
    phis_bad[1, 3] = np.nan
    _write_cofw_v73(path, ("IsTr", "phisTr", "bboxesTr"), images, phis_bad, boxes)
    with pytest.raises(DataError, match="face 2: landmarks contain NaN"):
        read_cofw(tmp_path, "train")
    errors: list[str] = []
    assert len(read_cofw(tmp_path, "train", errors=errors)) == 2 and len(errors) == 1
    _write_cofw_v73(path, ("IsTr", "phisTr", "bboxesTr"), images, phis[:, :50], boxes)
    with pytest.raises(DataError, match="phisTr has shape"):
        read_cofw(tmp_path, "train")
    path.write_bytes(b"garbage, not MATLAB")
    with pytest.raises(DataError, match="COFW_train_color.mat"):
        read_cofw(tmp_path, "train")


# --- WFLW -----------------------------------------------------------------------------------------------

def _wflw_line(seed: int, flags: tuple[int, ...], rel: str) -> str:
    pts = _face(98, seed)
    box = [1, 2, 35, 37]
    return " ".join([*(f"{v:.3f}" for v in pts.reshape(-1)), *map(str, box), *map(str, flags), rel])


@pytest.fixture
def wflw_root(tmp_path) -> Path:
    root = tmp_path / "WFLW"
    lists = root / "WFLW_annotations" / "list_98pt_rect_attr_train_test"
    lists.mkdir(parents=True)
    rels = ["1--Handshaking/a.jpg", "2--Demonstration/b.jpg", "2--Demonstration/c.jpg"]
    for i, rel in enumerate(rels):
        _write_jpeg(root / "WFLW_images" / rel, seed=i)
    test = [_wflw_line(0, (1, 0, 0, 0, 0, 0), rels[0]),
            _wflw_line(1, (1, 1, 0, 1, 0, 0), rels[1]),
            "",
            _wflw_line(2, (0, 0, 0, 0, 1, 1), rels[1])]  # a second face in the same image
    (lists / "list_98pt_rect_attr_test.txt").write_text("\n".join(test) + "\n")
    (lists / "list_98pt_rect_attr_train.txt").write_text(_wflw_line(3, (0,) * 6, rels[2]) + "\n")
    return root


def test_wflw_records_attributes_and_subsets(wflw_root):
    test = read_wflw(wflw_root, "test")
    assert len(test) == 3
    r = test[1]
    assert r.attributes == {"pose": 1, "expression": 1, "illumination": 0, "makeup": 1, "occlusion": 0, "blur": 0}
    assert tuple(r.attributes) == WFLW_ATTRIBUTES
    np.testing.assert_allclose(r.landmarks, _face(98, 1), atol=1e-3)
    np.testing.assert_array_equal(r.box, [1, 2, 35, 37])
    assert r.image_path == wflw_root / "WFLW_images" / "2--Demonstration" / "b.jpg"
    assert r.load_image().shape == (40, 48, 3)
    assert len({x.name for x in test}) == 3 and test[1].image_path == test[2].image_path

    assert [x.name for x in read_wflw(wflw_root, "pose")] == [test[0].name, test[1].name]
    assert [x.subset for x in read_wflw(wflw_root, "pose")] == ["pose", "pose"]
    assert len(read_wflw(wflw_root, "makeup")) == 1
    assert len(read_wflw(wflw_root, "illumination")) == 0
    assert [x.name for x in read_wflw(wflw_root, "blur")] == [test[2].name]
    train = read_wflw(wflw_root, "train")
    assert len(train) == 1 and train[0].subset == "train"
    assert len(load_dataset("wflw", wflw_root, "occlusion")) == 1
    with pytest.raises(DataError, match="no faces found"):
        load_dataset("wflw", wflw_root, "illumination")
    with pytest.raises(ConfigError, match="WFLW split 'valid'"):
        read_wflw(wflw_root, "valid")


def test_wflw_flat_layout(tmp_path, wflw_root):
    flat = tmp_path / "flat"
    flat.mkdir()
    src = wflw_root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    (flat / src.name).write_text(src.read_text())
    (wflw_root / "WFLW_images").rename(flat / "imgs")
    for d in ("1--Handshaking", "2--Demonstration"):
        (flat / "imgs" / d).rename(flat / d)
    records = read_wflw(flat, "test")
    assert len(records) == 3 and records[0].image_path == flat / "1--Handshaking" / "a.jpg"


@pytest.mark.parametrize("mangle, message", [
    (lambda line: line.rsplit(" ", 2)[0] + " x.jpg", "expected 207 fields"),
    (lambda line: "abc " + line.split(" ", 1)[1], "non-numeric"),
    (lambda line: line.replace(" 0 0 0 0 0 ", " 0 0 0 0 2 ", 1), "attribute flags must be 0 or 1"),
    (lambda line: "nan " + line.split(" ", 1)[1], "NaN"),
    (lambda line: line.replace("a.jpg", "zz.jpg"), "image .*zz.jpg not found"),
])
def test_wflw_malformed_lines_name_file_and_line(wflw_root, mangle, message):
    path = wflw_root / "WFLW_annotations" / "list_98pt_rect_attr_train_test" / "list_98pt_rect_attr_test.txt"
    lines = path.read_text().splitlines()
    lines[0] = mangle(lines[0])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match=message) as info:
        read_wflw(wflw_root, "test")
    assert f"{path}:1:" in str(info.value)
    errors: list[str] = []
    assert len(read_wflw(wflw_root, "test", errors=errors)) == 2
    assert len(errors) == 1 and f"{path}:1:" in errors[0]


def test_wflw_missing_list(tmp_path):
    with pytest.raises(DataError, match="list_98pt_rect_attr_train.txt not found"):
        read_wflw(tmp_path, "train")
    with pytest.raises(DataError, match="WFLW root folder not found"):
        read_wflw(tmp_path / "absent", "test")


# --- a user's folder -------------------------------------------------------------------------------------

def test_folder_reader_with_a_custom_scheme(tmp_path):
    scheme_file = tmp_path / "five.yaml"
    scheme_file.write_text("name: five\nnum_points: 5\nflip_pairs: [[0, 1], [3, 4]]\ninter_ocular: [0, 1]\n")
    data = tmp_path / "mine"
    a = _add_face(data, "a", n=5, seed=1)
    _add_face(data, "b", n=5, seed=2)
    _add_face(data / "val" / "set1", "c", n=5, seed=3)
    _write_jpeg(data / "no_annotation.png")

    scheme = load_scheme_file(scheme_file)
    records = read_folder(data, ".", scheme)
    assert [r.name for r in records] == ["a", "b"] and records[0].subset == "."
    np.testing.assert_allclose(records[0].landmarks, a, atol=1e-6)
    sub = read_folder(data, "val/set1", scheme_file)
    assert [r.name for r in sub] == ["val/set1/c"] and sub[0].landmarks.shape == (5, 2)
    assert len(load_dataset("folder", data, ".", scheme=scheme_file)) == 2

    with pytest.raises(ConfigError, match="needs a scheme"):
        load_dataset("folder", data, ".")
    with pytest.raises(DataError, match="expected 68 points, found 5"):
        read_folder(data, ".", "300w")
    errors: list[str] = []
    assert read_folder(data, ".", "300w", errors=errors) == [] and len(errors) == 2
    with pytest.raises(DataError, match="split folder 'test' not found"):
        read_folder(data, "test", scheme)


# --- bundled sample --------------------------------------------------------------------------------------

def test_bundled_sample():
    root = sample_root()
    assert (root / "LICENSE.md").is_file() and "Sagonas" in (root / "LICENSE.md").read_text()
    train = read_300w(root, "train")
    test = read_300w(root, "lfpw/testset")
    assert len(train) == 24 and len(test) == 12
    assert {sum(r.subset == s for r in train) for s in ("afw", "helen/trainset", "lfpw/trainset")} == {8}
    for r in (train[0], test[-1]):
        image = r.load_image()
        h, w = image.shape[:2]
        inside = (r.landmarks >= -0.5).all(axis=1) & (r.landmarks[:, 0] < w) & (r.landmarks[:, 1] < h)
        assert inside.mean() > 0.9
