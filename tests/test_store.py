"""Prepared-data store: layout, landmark frame, idempotency, interrupted builds, bad faces, augmented copies, CLI."""
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

import kdlandmarks.data.store as store_mod
from kdlandmarks.cli import main
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.data.datasets.pts import read_pts, write_pts
from kdlandmarks.errors import DataError
from kdlandmarks.data.schemes import W300
from kdlandmarks.data.store import FaceStore, PrepareParams, prepare_store

IMG = 96
FACES = 6
RAMP = 252 / (IMG - 1)  # grey levels per pixel of the position-coded images


def base_shape() -> np.ndarray:
    """A real 68-point face shape, centred on the origin, max |coordinate| 1."""
    pts = read_pts(sorted((sample_root() / "afw").glob("*.pts"))[0], 68)
    pts = pts - (pts.min(0) + pts.max(0)) / 2
    return pts / np.abs(pts).max()


def face_landmarks(i: int) -> np.ndarray:
    """Face i: the base shape at its own size, position and small tilt inside the 96 px image."""
    rng = np.random.default_rng(i)
    half = rng.uniform(22, 28)
    angle = rng.uniform(-0.15, 0.15)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre = (IMG - 1) / 2 + rng.uniform(-6, 6, size=2)
    return base_shape() @ rot.T * half + centre


def position_image() -> np.ndarray:
    """RGB whose R and G encode x and y linearly: a pixel value says where in the image it was."""
    ramp = np.round(np.arange(IMG) * RAMP).astype(np.uint8)
    img = np.zeros((IMG, IMG, 3), np.uint8)
    img[..., 0] = ramp[None, :]
    img[..., 1] = ramp[:, None]
    img[..., 2] = 100
    return img


def dots_image(landmarks: np.ndarray) -> np.ndarray:
    img = np.full((IMG, IMG, 3), 20, np.uint8)
    for x, y in landmarks:
        cv2.circle(img, (int(round(x * 4)), int(round(y * 4))), 9, (235, 235, 235), -1, cv2.LINE_AA, shift=2)
    return img


def make_layout(root: Path, kind: str = "position", faces: int = FACES) -> Path:
    """A tiny 300-W layout: root/afw/face_i.png beside face_i.pts."""
    folder = root / "afw"
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(faces):
        lm = face_landmarks(i)
        img = position_image() if kind == "position" else dots_image(lm)
        cv2.imwrite(str(folder / f"face_{i}.png"), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
        write_pts(folder / f"face_{i}.pts", lm)
    return root


def params(root: Path, **kw) -> PrepareParams:
    kw.setdefault("input_size", 40)
    return PrepareParams(dataset="300w", root=str(root), split="afw", **kw)


def bilinear(img: np.ndarray, x: float, y: float) -> np.ndarray:
    x0, y0 = int(np.floor(x)), int(np.floor(y))
    fx, fy = x - x0, y - y0
    v = (img[y0, x0] * (1 - fx) * (1 - fy) + img[y0, x0 + 1] * fx * (1 - fy)
         + img[y0 + 1, x0] * (1 - fx) * fy + img[y0 + 1, x0 + 1] * fx * fy)
    return v.astype(np.float64)


@pytest.fixture(scope="module")
def position_root(tmp_path_factory) -> Path:
    return make_layout(tmp_path_factory.mktemp("pos"), "position")


@pytest.fixture(scope="module")
def dots_store(tmp_path_factory):
    root = make_layout(tmp_path_factory.mktemp("dots"), "dots")
    out = root / "store"
    summary = prepare_store(params(root, input_size=48, copies=4, seed=3), out, progress=False)
    return root, out, summary


def test_layout_shapes_and_meta(position_root, tmp_path):
    summary = prepare_store(params(position_root), tmp_path / "s", progress=False)
    assert summary["status"] == "built" and summary["faces"] == FACES and summary["samples"] == FACES
    assert summary["skipped"] == []
    st = FaceStore(tmp_path / "s")
    S = 50  # round(40 * 1.25)
    assert st.images.shape == (FACES, S, S, 3) and st.images.dtype == np.uint8
    assert isinstance(st.images, np.memmap)
    assert st.landmarks.shape == (FACES, 68, 2) and st.landmarks.dtype == np.float32
    assert st.matrices().shape == (FACES, 2, 3)
    np.testing.assert_array_equal(st.face_index, np.arange(FACES))
    assert len(st) == FACES and st.num_points == 68 and st.input_size == 40 and st.store_size == S
    assert st.window == pytest.approx(40.0) and st.scheme_name == "300w" and st.soft_landmarks is None
    assert st.meta["complete"] is True and st.meta["faces"] == FACES
    recs = st.records()
    assert [r["name"] for r in recs] == [f"afw/face_{i}" for i in range(FACES)]
    assert all(r["image_size"] == [IMG, IMG] for r in recs)
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary left over


def test_landmarks_are_in_the_store_crop_frame(position_root, tmp_path):
    prepare_store(params(position_root), tmp_path / "s", progress=False)
    st = FaceStore(tmp_path / "s")
    mats = st.matrices()
    for i in range(FACES):
        orig = read_pts(position_root / "afw" / f"face_{i}.pts", 68)
        # the matrix maps the image landmarks onto the stored ones
        np.testing.assert_allclose(orig @ mats[i, :, :2].T + mats[i, :, 2], st.landmarks[i], atol=1e-3)
        # the stored pixels under each landmark came from the image at the original landmark
        crop = np.asarray(st.images[i])
        got = np.array([bilinear(crop, x, y)[:2] / RAMP for x, y in st.landmarks[i]])
        np.testing.assert_allclose(got, orig, atol=1.0)
        # the landmarks fill the centred input window with the margin (0.1 per side of the extent)
        lm = st.input_frame(st.landmarks[i])
        extent = (lm.max(0) - lm.min(0)).max()
        assert extent == pytest.approx(40 / 1.2, rel=0.02)
        assert lm.min() > 0 and lm.max() < 39


def test_rerun_is_up_to_date_and_parameter_change_rebuilds(position_root, tmp_path, capsys):
    out = tmp_path / "s"
    argv = ["prepare", "--dataset", "300w", "--root", str(position_root), "--split", "afw", "--size", "32",
            "--out", str(out), "--quiet"]
    assert main(argv) == 0
    first = capsys.readouterr().out
    assert f"store {out} built: {FACES} faces, {FACES} samples (1 per face) in " in first
    assert first.rstrip().endswith(" s")
    stamp = (out / "images.npy").stat().st_mtime_ns
    assert main(argv) == 0
    assert "is up to date: 6 faces" in capsys.readouterr().out
    assert (out / "images.npy").stat().st_mtime_ns == stamp
    # a parameter change rebuilds in place
    assert main(argv[:-1] + ["--margin", "0.2", "--quiet"]) == 0
    assert " built: " in capsys.readouterr().out
    assert FaceStore(out).meta["params"]["margin"] == 0.2
    # and so does an edited annotation
    pts = position_root / "afw" / "face_0.pts"
    keep = pts.read_text()
    try:
        write_pts(pts, read_pts(pts) + 1.0)
        assert prepare_store(params(position_root, input_size=32, margin=0.2), out, progress=False)["status"] == "built"
    finally:
        pts.write_text(keep)


def test_interrupted_build_leaves_old_store_intact(position_root, tmp_path, monkeypatch):
    out = tmp_path / "s"
    prepare_store(params(position_root, input_size=32), out, progress=False)
    before = np.array(FaceStore(out).images)
    real = store_mod._crop_one
    calls = []

    def flaky(record, p, n):
        calls.append(record.name)
        if len(calls) == 4:
            raise RuntimeError("disk on fire")
        return real(record, p, n)

    monkeypatch.setattr(store_mod, "_crop_one", flaky)
    with pytest.raises(RuntimeError, match="disk on fire"):
        prepare_store(params(position_root, input_size=40), out, workers=1, progress=False)
    st = FaceStore(out)
    assert st.input_size == 32 and st.meta["complete"]
    np.testing.assert_array_equal(np.array(st.images), before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]  # no partial build left beside it

    # interrupted while writing the augmented copies (Ctrl-C): no store at a fresh path
    monkeypatch.setattr(store_mod, "_crop_one", real)

    def interrupt(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(store_mod, "_augment_copies", interrupt)
    with pytest.raises(KeyboardInterrupt):
        prepare_store(params(position_root, input_size=32, copies=2), tmp_path / "fresh", progress=False)
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s"]


def test_incomplete_or_missing_store_is_refused(tmp_path):
    with pytest.raises(DataError, match="not a prepared store"):
        FaceStore(tmp_path)
    (tmp_path / "meta.json").write_text(json.dumps({"complete": False}))
    with pytest.raises(DataError, match="incomplete"):
        FaceStore(tmp_path)


def bad_layout(root: Path, corrupt_image: bool, bad_pts: bool) -> Path:
    make_layout(root)
    if corrupt_image:
        (root / "afw" / "broken.png").write_bytes(b"\x89PNG not really")
        write_pts(root / "afw" / "broken.pts", face_landmarks(0))
    if bad_pts:
        cv2.imwrite(str(root / "afw" / "badpts.png"), position_image())
        (root / "afw" / "badpts.pts").write_text("version: 1\nn_points: 68\n{\n1 2\n}\n")
    return root


@pytest.mark.parametrize("corrupt_image,bad_pts,culprit", [(True, False, "broken.png"), (False, True, "badpts.pts")])
def test_bad_face_stops_without_skip_bad(tmp_path, capsys, corrupt_image, bad_pts, culprit):
    root = bad_layout(tmp_path / "data", corrupt_image, bad_pts)
    with pytest.raises(DataError, match=culprit):
        prepare_store(params(root), tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()
    code = main(["prepare", "--dataset", "300w", "--root", str(root), "--split", "afw", "--size", "32",
                 "--out", str(tmp_path / "s"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and culprit in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["data"]


def test_skip_bad_counts_and_lists(tmp_path, capsys):
    root = bad_layout(tmp_path / "data", corrupt_image=True, bad_pts=True)
    # a face whose landmarks lie outside its image is bad too
    cv2.imwrite(str(root / "afw" / "outside.png"), position_image())
    write_pts(root / "afw" / "outside.pts", face_landmarks(1) + 500)
    out = tmp_path / "s"
    code = main(["prepare", "--dataset", "300w", "--root", str(root), "--split", "afw", "--size", "32",
                 "--out", str(out), "--skip-bad", "--quiet"])
    text = capsys.readouterr().out
    assert code == 0
    assert f"built: {FACES} faces" in text
    skipped = [ln for ln in text.splitlines() if ln.startswith("skipped: ")]
    assert len(skipped) == 3
    assert any("broken.png" in s for s in skipped) and any("badpts.pts" in s for s in skipped)
    assert any("outside" in s for s in skipped)
    assert "3 bad face(s) skipped" in text
    st = FaceStore(out)
    assert len(st) == FACES and len(st.meta["skipped"]) == 3
    assert all(not r["name"].startswith(("afw/broken", "afw/badpts", "afw/outside")) for r in st.records())


def test_store_built_with_skip_bad_is_not_up_to_date_without_it(tmp_path):
    root = bad_layout(tmp_path / "data", corrupt_image=True, bad_pts=False)
    out = tmp_path / "s"
    assert prepare_store(params(root), out, skip_bad=True, progress=False)["status"] == "built"
    assert prepare_store(params(root), out, skip_bad=True, progress=False)["status"] == "up to date"
    with pytest.raises(DataError, match="broken.png"):  # strict rerun sees the bad face again
        prepare_store(params(root), out, progress=False)
    assert FaceStore(out).meta["faces"] == FACES  # and the skipping store is still there


def _dead_pid() -> int:
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stale_partial_builds_of_dead_runs_are_removed(position_root, tmp_path):
    out = tmp_path / "s"
    dead, alive = tmp_path / f".s.partial-{_dead_pid()}", tmp_path / f".s.partial-{os.getppid()}"
    other = tmp_path / f".t.partial-{_dead_pid()}"  # another store's: not ours to judge
    for d in (dead, alive, other):
        d.mkdir()
        (d / "images.npy").write_bytes(b"half")
    assert prepare_store(params(position_root, input_size=32), out, progress=False)["status"] == "built"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "s"])
    dead.mkdir()  # a later kill, then a rerun that finds the store up to date cleans up too
    assert prepare_store(params(position_root, input_size=32), out, progress=False)["status"] == "up to date"
    assert not dead.exists() and alive.is_dir()


def test_copies_layout(dots_store):
    _, out, summary = dots_store
    st = FaceStore(out)
    assert summary["faces"] == FACES and summary["samples"] == FACES * 4
    assert st.images.shape == (FACES * 4, 60, 60, 3)
    np.testing.assert_array_equal(st.face_index, np.repeat(np.arange(FACES), 4))
    assert st.meta["params"]["copies"] == 4
    for f in range(FACES):
        base = np.asarray(st.images[4 * f], dtype=np.float64)
        for c in range(1, 4):
            assert np.abs(np.asarray(st.images[4 * f + c], dtype=np.float64) - base).mean() > 5
            assert np.abs(st.landmarks[4 * f + c] - st.landmarks[4 * f]).max() > 1.0


def test_copy_zero_is_the_plain_crop(dots_store, tmp_path):
    root, out, _ = dots_store
    plain = FaceStore(prepare_store(params(root, input_size=48), tmp_path / "plain", progress=False)["path"])
    st = FaceStore(out)
    np.testing.assert_array_equal(np.asarray(st.images[::4]), np.asarray(plain.images))
    np.testing.assert_array_equal(st.landmarks[::4], plain.landmarks)


def test_copies_keep_dots_under_landmarks(dots_store):
    _, out, _ = dots_store
    st = FaceStore(out)
    S = st.store_size
    on_all, off_all = [], []
    for j in range(len(st)):
        g = np.asarray(st.images[j], dtype=np.float64).mean(-1)
        lo, hi = np.percentile(g, 5), g.max()
        pts = [(x, y) for x, y in st.landmarks[j] if 0 <= x < S - 1 and 0 <= y < S - 1]
        assert len(pts) >= 60, j
        on = np.array([(bilinear(g, x, y) - lo) / (hi - lo) for x, y in pts])
        assert np.mean(on > 0.4) > 0.9, j
        if j % 4:
            on_all.append(on.mean())
            # the copy-0 landmarks fit an augmented copy worse, so the check can fail
            base = [(x, y) for x, y in st.landmarks[j - j % 4] if 0 <= x < S - 1 and 0 <= y < S - 1]
            off_all.append(np.mean([(bilinear(g, x, y) - lo) / (hi - lo) for x, y in base]))
    assert np.mean(on_all) > 0.85
    assert np.mean(off_all) < np.mean(on_all) - 0.2


def _affine_fit(src: np.ndarray, dst: np.ndarray) -> tuple[float, float]:
    a = np.c_[src, np.ones(len(src))]
    m, *_ = np.linalg.lstsq(a, dst, rcond=None)
    return float(np.abs(a @ m - dst).max()), float(np.linalg.det(m[:2].T))


def test_copies_are_similarity_warps_with_flip_relabelling(dots_store):
    _, out, _ = dots_store
    st = FaceStore(out)
    flipped = plain = 0
    fi = W300.flip_index
    for f in range(FACES):
        base = st.landmarks[4 * f].astype(np.float64)
        for c in range(1, 4):
            lm = st.landmarks[4 * f + c].astype(np.float64)
            r_plain, det_plain = _affine_fit(base, lm)
            r_flip, det_flip = _affine_fit(base[fi], lm)
            if r_plain < 1e-2:
                assert det_plain > 0
                plain += 1
            else:
                assert r_flip < 1e-2 and det_flip < 0, (f, c, r_plain, r_flip)
                flipped += 1
            # whatever the draw, index 36-41 is the eye on the image's left (labels keep their meaning)
            assert lm[36:42, 0].mean() < lm[42:48, 0].mean()
            assert lm[0, 0] < lm[16, 0]
    assert flipped > 0 and plain > 0


def test_copy_matrices_map_image_landmarks(dots_store):
    root, out, _ = dots_store
    st = FaceStore(out)
    mats = st.matrices()
    fi = W300.flip_index
    for j in range(len(st)):
        orig = read_pts(root / "afw" / f"face_{j // 4}.pts", 68)
        mapped = orig @ mats[j, :, :2].T + mats[j, :, 2]
        lm = st.landmarks[j].astype(np.float64)
        # a flipped copy relabels its points: point i is where image point flip_index[i] went
        err = min(np.abs(mapped - lm).max(), np.abs(mapped - lm[fi]).max())
        assert err < 1e-3, j


def test_copies_depend_on_the_seed(dots_store, tmp_path):
    root, out, _ = dots_store
    again = prepare_store(params(root, input_size=48, copies=4, seed=3), tmp_path / "again", progress=False)
    other = prepare_store(params(root, input_size=48, copies=4, seed=4), tmp_path / "other", progress=False)
    assert again["status"] == other["status"] == "built"
    a, b, c = FaceStore(out), FaceStore(tmp_path / "again"), FaceStore(tmp_path / "other")
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    np.testing.assert_array_equal(a.landmarks, b.landmarks)
    assert not np.allclose(a.landmarks[1::4], c.landmarks[1::4])
    np.testing.assert_array_equal(a.landmarks[::4], c.landmarks[::4])


def test_asm_cli_writes_soft_landmarks(dots_store, tmp_path, capsys):
    import shutil

    _, out, _ = dots_store
    copy = tmp_path / "s"
    shutil.copytree(out, copy)
    assert main(["asm", "--store", str(copy), "--variance", "0.95"]) == 0
    text = capsys.readouterr().out
    assert "keeps" in text and "components" in text
    st = FaceStore(copy)
    assert st.soft_landmarks is not None and st.soft_landmarks.shape == st.landmarks.shape
    assert (copy / "asm.npz").is_file() and st.meta["soft"]["variance"] == 0.95
    d = np.linalg.norm(st.soft_landmarks - st.landmarks, axis=-1).mean()
    assert 0 < d < 5  # soft landmarks are close to, but not, the hard ones
    assert not [p for p in copy.iterdir() if p.name.startswith(".")]
    # still up to date after the ASM: prepare does not throw the soft landmarks away
    root = Path(st.meta["params"]["root"])
    assert prepare_store(params(root, input_size=48, copies=4, seed=3), copy, progress=False)["status"] == "up to date"
    assert FaceStore(copy).soft_landmarks is not None


def test_bad_params_are_config_errors(position_root, tmp_path, capsys):
    code = main(["prepare", "--dataset", "300w", "--root", str(position_root), "--split", "afw", "--size", "8",
                 "--out", str(tmp_path / "s")])
    assert code == 2 and "--size" in capsys.readouterr().err
    code = main(["prepare", "--dataset", "300w", "--root", str(tmp_path / "nowhere"), "--split", "afw",
                 "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 2 and "nowhere" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "s").exists()
    assert os.listdir(tmp_path) == []


def test_corrupt_meta_is_a_data_error(tmp_path, capsys):
    (tmp_path / "meta.json").write_text("{")
    with pytest.raises(DataError, match="corrupt store metadata"):
        FaceStore(tmp_path)
    code = main(["asm", "--store", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "meta.json" in err


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_out_that_is_not_a_store_is_never_replaced(position_root, tmp_path, kind):
    """The finished store replaces --out whole: a user's file or folder there must survive."""
    out = tmp_path / "mine"
    if kind == "file":
        out.write_text("keep me")
    else:
        out.mkdir()
        (out / "thesis.tex").write_text("keep me")
    with pytest.raises(DataError, match="not a prepared store"):
        prepare_store(params(position_root), out, progress=False)
    assert (out if kind == "file" else out / "thesis.tex").read_text() == "keep me"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert prepare_store(params(position_root), empty, progress=False)["status"] == "built"


def test_custom_scheme_store_finds_its_scheme_file(position_root, tmp_path, monkeypatch, capsys):
    """A custom scheme's own name is not enough to find it: the store keeps its file (absolute), and
    `asm` (which needs the inter-ocular points) works on such a store."""
    (tmp_path / "my68.yaml").write_text("name: my68\nnum_points: 68\nflip_pairs: [[36, 45]]\ninter_ocular: [36, 45]\n")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "s"
    prepare_store(PrepareParams(dataset="folder", root=str(position_root), split="afw", input_size=40,
                                scheme="my68.yaml"), out, progress=False)
    st = FaceStore(out)
    assert st.scheme_name == "my68" and st.scheme_ref == str(tmp_path / "my68.yaml")
    assert st.scheme.inter_ocular == (36, 45) and st.scheme.flip_pairs == ((36, 45),)
    monkeypatch.chdir(position_root)  # the relative name given to prepare no longer resolves
    assert main(["asm", "--store", str(out)]) == 0
    assert FaceStore(out).soft_landmarks is not None


def test_prepare_params_build_takes_given_then_recipe_then_defaults():
    from kdlandmarks.errors import ConfigError

    plain = PrepareParams.build("300w", "root", "afw")
    assert (plain.input_size, plain.context, plain.margin, plain.copies) == (128, 1.25, 0.1, 1)
    given = PrepareParams.build("300w", "root", "afw", input_size=32, copies=None, margin=0.2)
    assert (given.input_size, given.margin, given.copies) == (32, 0.2, 1)
    recipe = type("R", (), {"input_size": 64, "context": 1.5, "margin": 0.05, "copies": 3})()
    mixed = PrepareParams.build("300w", "root", "afw", recipe=recipe, copies=2)
    assert (mixed.input_size, mixed.context, mixed.margin, mixed.copies) == (64, 1.5, 0.05, 2)
    for bad in ({"input_size": 8}, {"context": 0.5}, {"copies": 0}, {"margin": -0.1}):
        with pytest.raises(ConfigError, match="need input_size >= 16"):
            PrepareParams.build("300w", "root", "afw", **bad)
