"""Hostile input, one table: each row is a repro from a review (issue 12 first) and what must happen instead.

Add a row for every new bad input. A CLI row builds its inputs in a temporary folder and returns the
command line; the runner checks the exit status, that every expected phrase is on stderr (one line per
problem, never a traceback) and then the row's own check of the files left behind. An API row is a
function that does its own asserts. Inputs are tiny and built here: the bundled 300-W sample photos,
the shipped lite model (onnxruntime for predict, its .pt for evaluate) and crafted files.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch

from kdlandmarks.cli import main
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.data.datasets.pts import read_pts, write_pts
from kdlandmarks.data.datasets.record import MAX_IMAGE_PIXELS, read_image
from kdlandmarks.data.images import MIN_IMAGE_SIDE
from kdlandmarks.errors import DataError, ModelError
from kdlandmarks.fileio import atomic_path

MODEL = "kd-student-300w-lite"
SAMPLE = sample_root() / "lfpw" / "testset"
PHOTOS = sorted(SAMPLE.glob("*.jpg"))


# --------------------------------------------------------------------------------------------------
# Building blocks
# --------------------------------------------------------------------------------------------------

class Evil:
    """Pickles to `open(path, "w")`: loading it with full pickle creates `path`."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def evil_model(tmp: Path, name: str = "evil.pt", checkpoint: bool = False) -> Path:
    """A model file (or Lightning-checkpoint look-alike) that runs code when fully unpickled."""
    path = tmp / name
    trap = Evil(tmp / "PWNED")
    payload = ({"state_dict": {}, "hyper_parameters": {"kdlandmarks": trap}} if checkpoint
               else {"format": 1, "info": trap, "state_dict": {}})
    torch.save(payload, path)
    return path


def photo(tmp: Path, i: int = 0, name: str | None = None, folder: str = "in") -> tuple[Path, str]:
    """A bundled sample photo copied to tmp/folder, and a face box around its landmarks ('x0,y0,x1,y1')."""
    src = PHOTOS[i]
    dst = tmp / folder / (name or src.name)
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src, dst)
    pts = read_pts(src.with_suffix(".pts"))
    (x0, y0), (x1, y1) = pts.min(0), pts.max(0)
    return dst, f"{x0:.1f},{y0:.1f},{x1:.1f},{y1:.1f}"


def png(path: Path, width: int, height: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.full((height, width, 3), 127, np.uint8))
    return path


def png_claiming(path: Path, width: int, height: int) -> Path:
    """A small PNG whose header claims width x height (a 'decompression bomb' without the bytes)."""
    data = bytearray(png(path, 16, 16).read_bytes())
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    path.write_bytes(bytes(data))
    return path


def w300_layout(tmp: Path, bad: dict[str, np.ndarray] | None = None, good: int = 2) -> Path:
    """tmp/data/afw: `good` sample faces, plus one face per `bad` entry (name -> landmarks) on a sample photo."""
    folder = tmp / "data" / "afw"
    folder.mkdir(parents=True)
    for i in range(good):
        shutil.copy(PHOTOS[i], folder)
        shutil.copy(PHOTOS[i].with_suffix(".pts"), folder)
    for k, (name, landmarks) in enumerate((bad or {}).items()):
        shutil.copy(PHOTOS[good + k], folder / f"{name}.jpg")
        write_pts(folder / f"{name}.pts", landmarks)
    return tmp / "data"


def far_point() -> np.ndarray:
    """Real landmarks with one point at (100000, -50000): a typo in a .pts file."""
    pts = read_pts(PHOTOS[2].with_suffix(".pts"))
    pts[30] = (100000.0, -50000.0)
    return pts


def all_outside() -> np.ndarray:
    """Real landmarks moved just right of their image: every point outside, none far."""
    pts = read_pts(PHOTOS[2].with_suffix(".pts"))
    width = cv2.imread(str(PHOTOS[2])).shape[1]
    return pts - pts[:, :1].min() + width + 2


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob(".*"))


def predict(tmp: Path, *paths: str | Path, out: str | Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    return ["predict", *map(str, paths), "--model", MODEL, "--out", str(out or tmp / "out"), *extra]


def evaluate(root: Path, out: Path, *extra: str, model: str | Path = MODEL) -> list[str]:
    return ["evaluate", "--model", str(model), "--dataset", "300w", "--root", str(root), "--split", "afw",
            "--out", str(out), *extra]


def prepare(root: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--dataset", "300w", "--root", str(root), "--split", "afw", "--size", "32",
            "--out", str(out), "--quiet", *extra]


@dataclass
class Result:
    code: int
    out: str
    err: str


def cli(capsys, argv: list[str]) -> Result:
    capsys.readouterr()
    code = main(argv)
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


# --------------------------------------------------------------------------------------------------
# CLI rows
# --------------------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    make: Callable[[Path], list[str]]  # builds the inputs under tmp, returns the command line
    code: int = 2
    err: tuple[str, ...] = ()  # phrases that must all be on stderr
    err_lines: int | None = 1  # stderr lines expected (None: any number)
    check: Callable[[Path, Result], None] | None = None


# 1. model files are loaded without running code in them

def _no_trap(tmp: Path, r: Result) -> None:
    assert not (tmp / "PWNED").exists(), "loading the model file ran code"


# 2. one bad file in a folder run is named and skipped, the rest is processed

def _folder_with_bad_files(tmp: Path) -> list[str]:
    for i in range(3):
        photo(tmp, i)
    png(tmp / "in" / "tiny.png", 1, 1)
    (tmp / "in" / "corrupt.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    png(tmp / "in" / "small.png", MIN_IMAGE_SIDE - 1, 40)
    return predict(tmp, tmp / "in", extra=("--batch-size", "16"))


def _three_photos_done(tmp: Path, r: Result) -> None:
    assert sorted(p.name for p in (tmp / "out").iterdir()) == sorted(p.with_suffix(".json").name for p in PHOTOS[:3])
    assert "3/6 images" in r.out and "3 skipped" in r.out
    for line in r.err.splitlines():
        assert line.startswith("kdlandmarks: skipped ") and str(tmp / "in") in line


def _bad_boxes_entry(tmp: Path) -> list[str]:
    names = []
    for i in range(3):
        path, box = photo(tmp, i)
        names.append((path.name, [float(v) for v in box.split(",")]))
    mapping = {name: [box] for name, box in names}
    mapping[names[1][0]] = [[50, 50, 10, 10]]  # x1 < x0
    (tmp / "boxes.json").write_text(json.dumps(mapping))
    return predict(tmp, tmp / "in", extra=("--boxes", str(tmp / "boxes.json")))


def _two_of_three(tmp: Path, r: Result) -> None:
    assert sorted(p.name for p in (tmp / "out").iterdir()) == sorted(
        p.with_suffix(".json").name for p in (PHOTOS[0], PHOTOS[2]))


# 3. impossible ground truth is refused, the same way, by prepare and evaluate

def _skipped_in_metrics(name: str) -> Callable[[Path, Result], None]:
    def check(tmp: Path, r: Result) -> None:
        report = json.loads((tmp / "ev" / "metrics.json").read_text())
        assert report["protocol"]["count"] == 2
        assert len(report["skipped"]) == 1 and name in report["skipped"][0] and "outside" in report["skipped"][0]
        assert [ln for ln in r.out.splitlines() if ln.startswith("skipped: ")] == [f"skipped: {report['skipped'][0]}"]
    return check


def _store_skipped(tmp: Path, r: Result) -> None:
    lines = [ln for ln in r.out.splitlines() if ln.startswith("skipped: ")]
    assert len(lines) == 1 and "bad.pts" in lines[0] and "far outside" in lines[0]
    assert "built: 2 faces" in r.out


def _nothing_written(folder: str) -> Callable[[Path, Result], None]:
    def check(tmp: Path, r: Result) -> None:
        assert not (tmp / folder).exists()
    return check


# 4. --out equal to the input folder: inputs are never overwritten, earlier outputs never read as inputs

def _out_is_in(tmp: Path) -> list[str]:
    _, box = photo(tmp, 0, "a.jpg")
    photo(tmp, 1, "a_landmarks.jpg")  # a user's photo that happens to have the drawing's name
    (tmp / "original").write_bytes((tmp / "in" / "a_landmarks.jpg").read_bytes())
    argv = predict(tmp, tmp / "in", out=tmp / "in", extra=("--draw", "--boxes", box))
    assert main(argv) == 0
    return argv  # the checked run is the re-run


def _inputs_untouched(tmp: Path, r: Result) -> None:
    folder = tmp / "in"
    assert (folder / "a_landmarks.jpg").read_bytes() == (tmp / "original").read_bytes()
    assert "2/2 images" in r.out  # not 4: the first run's drawings are not taken for photos
    assert sorted(p.name for p in folder.iterdir()) == [
        "a.jpg", "a.json", "a_landmarks-1.jpg", "a_landmarks.jpg", "a_landmarks.json", "a_landmarks_landmarks.jpg"]
    assert cv2.imread(str(folder / "a_landmarks-1.jpg")) is not None


# 5. a re-run replaces an image's whole output set

def _fewer_faces(tmp: Path) -> list[str]:
    path, box = photo(tmp, 0, "a.jpg")
    assert main(predict(tmp, path, extra=("--format", "json,pts", "--boxes", f"{box};10,10,60,60;5,5,40,40"))) == 0
    assert sorted(p.name for p in (tmp / "out").glob("*.pts")) == ["a_0.pts", "a_1.pts", "a_2.pts"]
    return predict(tmp, path, extra=("--format", "json,pts", "--boxes", box))


def _one_face_left(tmp: Path, r: Result) -> None:
    assert sorted(p.name for p in (tmp / "out").iterdir()) == ["a.json", "a_0.pts"]
    assert len(json.loads((tmp / "out" / "a.json").read_text())["faces"]) == 1


# 6. temporary files that killed writers left behind are removed by the next write

def _stale_temps(tmp: Path) -> list[str]:
    path, box = photo(tmp, 0, "a.jpg")
    out = tmp / "out"
    out.mkdir()
    (out / f".a.json.{dead_pid()}-0123abcd.tmp.json").write_text("{half")
    legacy = out / ".a.json.89abcdef.tmp.json"
    legacy.write_text("{half")
    os.utime(legacy, (time.time() - 7200, time.time() - 7200))
    (out / f".a.json.{os.getppid()}-4567cdef.tmp.json").write_text("{")  # a live writer's: kept
    return predict(tmp, path, extra=("--boxes", box))


def _only_live_temp_left(tmp: Path, r: Result) -> None:
    assert hidden(tmp / "out") == [f".a.json.{os.getppid()}-4567cdef.tmp.json"]
    assert (tmp / "out" / "a.json").is_file()


# 7. memory: images over the pixel limit are refused from their header

def _bomb_in_folder(tmp: Path) -> list[str]:
    photo(tmp, 0)
    png_claiming(tmp / "in" / "bomb.png", 20000, 20000)
    return predict(tmp, tmp / "in")


def _limit_lowered(tmp: Path) -> list[str]:
    _, box = photo(tmp, 0)  # about 0.1 megapixels
    png(tmp / "in" / "small.png", 100, 80)
    return predict(tmp, tmp / "in", extra=("--boxes", box, "--max-megapixels", "0.05"))


def _small_one_done(tmp: Path, r: Result) -> None:
    assert [p.name for p in (tmp / "out").iterdir()] == ["small.json"]


# 8. messages that say what is wrong

def _unwritable(tmp: Path) -> list[str]:
    path, box = photo(tmp, 0)
    return predict(tmp, path, out=tmp / "locked", extra=("--boxes", box))


CLI_CASES = [
    # 1
    Case("1-predict-evil-model", lambda t: predict(t, photo(t)[0], extra=("--model", str(evil_model(t)))),
         err=("evil.pt: not a kdlandmarks model file", "refused"), check=_no_trap),
    Case("1-evaluate-evil-checkpoint",
         lambda t: evaluate(w300_layout(t), t / "ev", model=evil_model(t, "evil.ckpt", checkpoint=True)),
         err=("evil.ckpt: not a kdlandmarks model file",), check=_no_trap),
    Case("1-export-evil-model", lambda t: ["export", "--model", str(evil_model(t)), "--out", str(t / "m.onnx")],
         err=("not a kdlandmarks model file",), check=_no_trap),
    # 2
    Case("2-folder-with-1x1-corrupt-and-undersized", _folder_with_bad_files, code=0, err_lines=3,
         err=("tiny.png: image is 1x1 pixels, too small", f"at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}",
              "corrupt.jpg: not a readable image", f"small.png: image is {MIN_IMAGE_SIDE - 1}x40 pixels"),
         check=_three_photos_done),
    Case("2-folder-with-one-bad-boxes-entry", _bad_boxes_entry, code=0,
         err=(PHOTOS[1].name, "x1 > x0"),
         check=_two_of_three),
    Case("2-only-input-1x1", lambda t: predict(t, png(t / "one.png", 1, 1), extra=("--boxes", "0,0,1,1")),
         err=("one.png: image is 1x1 pixels, too small", f"at least {MIN_IMAGE_SIDE}x{MIN_IMAGE_SIDE}"),
         check=_nothing_written("out")),
    # 3
    Case("3-prepare-far-point", lambda t: prepare(w300_layout(t, {"bad": far_point()}), t / "store"),
         err=("bad.pts: landmark 30", "far outside"), check=_nothing_written("store")),
    Case("3-prepare-far-point-skip-bad",
         lambda t: prepare(w300_layout(t, {"bad": far_point()}), t / "store", "--skip-bad"),
         code=0, err_lines=0, check=_store_skipped),
    Case("3-evaluate-far-point", lambda t: evaluate(w300_layout(t, {"bad": far_point()}), t / "ev"),
         err=("bad.pts: landmark 30", "far outside"), check=_nothing_written("ev")),
    Case("3-evaluate-far-point-skip-bad",
         lambda t: evaluate(w300_layout(t, {"bad": far_point()}), t / "ev", "--skip-bad"),
         code=0, err_lines=None, check=_skipped_in_metrics("bad.pts")),
    Case("3-evaluate-all-points-outside", lambda t: evaluate(w300_layout(t, {"off": all_outside()}), t / "ev"),
         err=("off.pts: 68 of 68 landmarks lie outside",)),
    Case("3-evaluate-all-points-outside-skip-bad",
         lambda t: evaluate(w300_layout(t, {"off": all_outside()}), t / "ev", "--skip-bad"),
         code=0, err_lines=None, check=_skipped_in_metrics("off.pts")),
    # 4
    Case("4-out-is-the-input-folder-with-draw", _out_is_in, code=0, err_lines=0, check=_inputs_untouched),
    # 5
    Case("5-rerun-with-fewer-faces", _fewer_faces, code=0, err_lines=0, check=_one_face_left),
    # 6
    Case("6-stale-temps-removed-on-next-write", _stale_temps, code=0, err_lines=0, check=_only_live_temp_left),
    # 7
    Case("7-bomb-png-only-input", lambda t: predict(t, png_claiming(t / "bomb.png", 20000, 20000)),
         err=("bomb.png: image is 20000x20000 (400.0 megapixels), over the limit of 50 megapixels",
              "--max-megapixels")),
    Case("7-bomb-png-in-a-folder", _bomb_in_folder, code=0, err=("bomb.png", "over the limit")),
    Case("7-limit-lowered", _limit_lowered, code=0, err=(PHOTOS[0].name, "over the limit of 0.05 megapixels"),
         check=_small_one_done),
    # 8
    Case("8-out-is-a-file", lambda t: predict(t, photo(t)[0], out=png(t / "outfile.png", 10, 10)),
         err=("outfile.png: --out must be a folder, and it is a file",)),
    Case("8-out-below-a-file", lambda t: predict(t, photo(t)[0], out=png(t / "f.png", 10, 10) / "sub"),
         err=("--out must be a folder", "f.png is a file")),
    Case("8-evaluate-out-is-a-file", lambda t: evaluate(w300_layout(t), png(t / "ev.png", 10, 10)),
         err=("--out must be a folder",)),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c.id for c in CLI_CASES])
def test_cli(case: Case, tmp_path: Path, capsys) -> None:
    argv = case.make(tmp_path)
    r = cli(capsys, argv)
    assert r.code == case.code, r.err
    assert "Traceback" not in r.err
    lines = r.err.strip().splitlines()
    if case.err_lines is not None:
        assert len(lines) == case.err_lines, r.err
    if case.code == 2:
        assert lines[0].startswith("kdlandmarks: error: "), r.err
    for phrase in case.err:
        assert phrase in r.err, (phrase, r.err)
    if case.check is not None:
        case.check(tmp_path, r)


# --------------------------------------------------------------------------------------------------
# API rows
# --------------------------------------------------------------------------------------------------

def api_evil_model(tmp: Path) -> None:
    from kdlandmarks.inference.detector import LandmarkDetector
    from kdlandmarks.models.backbones import load_model

    for path in (evil_model(tmp), evil_model(tmp, "evil.ckpt", checkpoint=True)):
        with pytest.raises(ModelError, match="not a kdlandmarks model file"):
            load_model(path)
        with pytest.raises(ModelError, match="not a kdlandmarks model file"):
            LandmarkDetector.from_pretrained(path)
    assert not (tmp / "PWNED").exists()


def api_unwritable_folder_is_named(tmp: Path, monkeypatch) -> None:
    """The error names the folder, not a hidden temporary file (root ignores chmod: EACCES is simulated)."""
    import errno

    from kdlandmarks import fileio

    locked = tmp / "locked"
    locked.mkdir()
    real_open = os.open

    def deny(path, *args, **kwargs):
        if Path(path).parent == locked:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "open", deny)
    with pytest.raises(PermissionError) as info:
        fileio.atomic_write_text(locked / "a.json", "{}")
    assert info.value.filename == str(locked) and "cannot create files in this folder" in str(info.value)
    assert ".tmp" not in str(info.value)


def api_unwritable_folder_cli(tmp: Path, monkeypatch, capsys) -> None:
    import errno

    from kdlandmarks import fileio

    argv = _unwritable(tmp)
    (tmp / "locked").mkdir()
    real_open = os.open

    def deny(path, *args, **kwargs):
        if Path(path).parent == tmp / "locked":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "open", deny)
    r = cli(capsys, argv)
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1, r.err
    assert lines[0].endswith(f"cannot create files in this folder): {tmp / 'locked'}") and ".tmp" not in lines[0]


def api_sigterm_removes_the_temp_file(tmp: Path) -> None:
    """`kdlandmarks predict` terminated in the middle of a write: exit 143, no temporary file left."""
    path, box = photo(tmp, 0, "a.jpg")
    script = (
        "import pathlib, sys, time\n"
        "orig = pathlib.Path.write_bytes\n"
        "def slow(self, data):\n"
        "    n = orig(self, data)\n"
        "    print('writing', flush=True)\n"
        "    time.sleep(60)\n"
        "    return n\n"
        "pathlib.Path.write_bytes = slow\n"
        "from kdlandmarks.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n")
    proc = subprocess.Popen([sys.executable, "-c", script, *predict(tmp, path, extra=("--boxes", box))],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "writing", proc.stderr.read()
        assert hidden(tmp / "out"), "the write is in progress: its temporary file exists"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert hidden(tmp / "out") == [] and not (tmp / "out" / "a.json").exists()


def api_interrupted_write_leaves_nothing(tmp: Path) -> None:
    target = tmp / "m.onnx"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as t:
            t.write_bytes(b"half")
            raise KeyboardInterrupt
    assert list(tmp.iterdir()) == []


def api_pixel_limit_is_an_argument(tmp: Path) -> None:
    src = PHOTOS[0]
    h, w = cv2.imread(str(src)).shape[:2]
    with pytest.raises(DataError, match=f"{w}x{h} .* over the limit of 0.001 megapixels"):
        read_image(src, max_pixels=1000)
    assert read_image(src, max_pixels=None).shape == (h, w, 3)
    bomb = png_claiming(tmp / "bomb.png", 20000, 20000)
    with pytest.raises(DataError, match="over the limit of 50 megapixels"):
        read_image(bomb)
    assert MAX_IMAGE_PIXELS == 50_000_000
    with pytest.raises(DataError, match="not a readable image"):  # no limit: decoding is tried, and fails
        read_image(bomb, max_pixels=None)


def api_detector_sees_a_downscaled_copy(tmp: Path) -> None:
    from kdlandmarks.inference.detector import LandmarkDetector

    seen = []

    def fake(image):
        seen.append(image.shape)
        return [[99.5, 49.5, 299.5, 249.5]]

    det = LandmarkDetector(MODEL, detector=fake)
    faces = det.detect(np.zeros((1500, 4096, 3), np.uint8))
    assert seen == [(750, 2048, 3)]
    np.testing.assert_allclose(faces[0].box, [199.5, 99.5, 599.5, 499.5])  # back in full-size pixels
    det.detect_max_side = None
    det.detect(np.zeros((1500, 4096, 3), np.uint8))
    assert seen[-1] == (1500, 4096, 3)


def api_small_array_message(tmp: Path) -> None:
    from kdlandmarks.inference.detector import LandmarkDetector

    det = LandmarkDetector(MODEL)
    with pytest.raises(DataError, match=rf"image is 1x1 pixels, too small: at least {MIN_IMAGE_SIDE}x"):
        det.detect(np.zeros((1, 1, 3), np.uint8), boxes=[[0, 0, 1, 1]])


def api_bad_image_in_detect_batch_names_it(tmp: Path) -> None:
    from kdlandmarks.inference.detector import LandmarkDetector

    det = LandmarkDetector(MODEL)
    good = cv2.cvtColor(cv2.imread(str(PHOTOS[0])), cv2.COLOR_BGR2RGB)
    crops = det.crop_faces(good, boxes=[[60, 60, 200, 200]], name="good.jpg")
    with pytest.raises(DataError, match="bad.jpg: image is 3x3 pixels"):
        det.crop_faces(np.zeros((3, 3, 3), np.uint8), boxes=[[0, 0, 1, 1]], name="bad.jpg")
    faces = det.faces_from_crops([crops])
    assert len(faces) == 1 and faces[0][0].landmarks.shape == (68, 2)
    np.testing.assert_allclose(faces[0][0].landmarks, det.detect(good, boxes=[[60, 60, 200, 200]])[0].landmarks)


def api_far_point_in_a_record(tmp: Path) -> None:
    from kdlandmarks.data.datasets import load_dataset

    root = w300_layout(tmp, {"bad": far_point()})
    records = {r.name: r for r in load_dataset("300w", root, "afw")}
    with pytest.raises(DataError, match=r"bad\.pts: landmark 30 \(0-based\) at \(100000\.0, -50000\.0\) lies far outside"):
        records["afw/bad"].load_checked_image()
    assert records["afw/" + PHOTOS[0].stem].load_checked_image().ndim == 3


API_CASES = [
    api_evil_model,
    api_unwritable_folder_is_named,
    api_unwritable_folder_cli,
    api_sigterm_removes_the_temp_file,
    api_interrupted_write_leaves_nothing,
    api_pixel_limit_is_an_argument,
    api_detector_sees_a_downscaled_copy,
    api_small_array_message,
    api_bad_image_in_detect_batch_names_it,
    api_far_point_in_a_record,
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.__name__[4:] for c in API_CASES])
def test_api(case, tmp_path: Path, request) -> None:
    import inspect

    fixtures = {name: request.getfixturevalue(name) for name in inspect.signature(case).parameters if name != "tmp"}
    case(tmp_path, **fixtures)
