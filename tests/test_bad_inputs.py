"""Hostile input, one table: each row is a repro from a review (issue 12 first) and what must happen instead.

Add a row for every new bad input. A CLI row builds its inputs in a temporary folder and returns the
command line; the runner checks the exit status, that every expected phrase is on stderr (one line per
problem, never a traceback) and then the row's own check of the files left behind. An API row is a
function that does its own asserts. Inputs are tiny and built here: the bundled 300-W sample photos,
the shipped lite model (onnxruntime for predict, its .pt for evaluate) and crafted files.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pytest
import torch

from kdlandmarks.apps.predict import OUTPUT_LEDGER
from kdlandmarks.cli import main
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.data.datasets.pts import read_pts, write_pts
from kdlandmarks.data.datasets.record import MAX_IMAGE_PIXELS, read_image
from kdlandmarks.data.images import MIN_IMAGE_SIDE
from kdlandmarks.errors import DataError, ModelError
from kdlandmarks.fileio import atomic_path

MODEL = "kd-student-300w-lite"
TRAIN_ARCH = "mobilenetv2_050"  # the smallest backbone the training rows build
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
    """Hidden files left in `folder`, less predict's ledger of the files it wrote there."""
    return sorted(p.name for p in folder.rglob(".*") if p.name != OUTPUT_LEDGER)


def outputs(folder: Path) -> list[str]:
    """The names in `folder`, less predict's ledger."""
    return sorted(p.name for p in folder.iterdir() if p.name != OUTPUT_LEDGER)


def predict(tmp: Path, *paths: str | Path, out: str | Path | None = None, extra: tuple[str, ...] = ()) -> list[str]:
    return ["predict", *map(str, paths), "--model", MODEL, "--out", str(out or tmp / "out"), *extra]


def evaluate(root: Path, out: Path, *extra: str, model: str | Path = MODEL) -> list[str]:
    return ["evaluate", "--model", str(model), "--dataset", "300w", "--root", str(root), "--split", "afw",
            "--out", str(out), *extra]


def prepare(root: Path, out: Path, *extra: str) -> list[str]:
    return ["prepare", "--dataset", "300w", "--root", str(root), "--split", "afw", "--size", "32",
            "--out", str(out), "--quiet", *extra]



def crafted_onnx(tmp: Path, name: str = "m.onnx", graph_size: int = 128, info_size: int = 128,
                 offset: float = 0.0) -> Path:
    """A tiny ONNX landmark model with the project's metadata (ModelInfo of `info_size`) whose graph takes
    `graph_size` px inputs and outputs the mean colour times zeros, plus `offset` (NaN, 1e30, ...)."""
    import onnx
    from onnx import TensorProto, helper

    from kdlandmarks.inference.runtime import METADATA_KEY
    from kdlandmarks.models.info import ModelInfo

    weights = helper.make_tensor("w", TensorProto.FLOAT, [3, 136], [0.0] * 408)
    bias = helper.make_tensor("b", TensorProto.FLOAT, [136], [offset] * 136)
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("Gemm", ["flat", "w", "b"], ["landmarks"])],
        "crafted", [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["B", 3, graph_size, graph_size])],
        [helper.make_tensor_value_info("landmarks", TensorProto.FLOAT, ["B", 136])], [weights, bias])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    entry = model.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(asdict(ModelInfo("crafted", 68, info_size)))
    path = tmp / name
    onnx.save(model, str(path))
    return path


def shipped_pt(tmp: Path, name: str = "m.pt", folder: str = "models") -> Path:
    """A copy of the shipped lite model's PyTorch file."""
    from kdlandmarks.models.zoo import resolve_model

    dst = tmp / folder / name
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(resolve_model(MODEL), dst)
    return dst


def same_points() -> np.ndarray:
    """68 landmarks all at one point."""
    return np.full((68, 2), 120.0)


def eyes_together() -> np.ndarray:
    """Real landmarks whose inter-ocular points (36 and 45) coincide."""
    pts = read_pts(PHOTOS[2].with_suffix(".pts"))
    pts[45] = pts[36]
    return pts


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
    assert outputs(tmp / "out") == sorted(p.with_suffix(".json").name for p in PHOTOS[:3])
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
    assert outputs(tmp / "out") == sorted(
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
    assert outputs(folder) == [
        "a.jpg", "a.json", "a_landmarks-1.jpg", "a_landmarks.jpg", "a_landmarks.json", "a_landmarks_landmarks.jpg"]
    assert cv2.imread(str(folder / "a_landmarks-1.jpg")) is not None


# 5. a re-run replaces an image's whole output set

def _fewer_faces(tmp: Path) -> list[str]:
    path, box = photo(tmp, 0, "a.jpg")
    assert main(predict(tmp, path, extra=("--format", "json,pts", "--boxes", f"{box};10,10,60,60;5,5,40,40"))) == 0
    assert sorted(p.name for p in (tmp / "out").glob("*.pts")) == ["a_0.pts", "a_1.pts", "a_2.pts"]
    return predict(tmp, path, extra=("--format", "json,pts", "--boxes", box))


def _one_face_left(tmp: Path, r: Result) -> None:
    assert outputs(tmp / "out") == ["a.json", "a_0.pts"]
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
    png(tmp / "in" / "small.png", 320, 150)  # under 0.05 megapixels, and the box reaches into it
    return predict(tmp, tmp / "in", extra=("--boxes", box, "--max-megapixels", "0.05"))


def _small_one_done(tmp: Path, r: Result) -> None:
    assert outputs(tmp / "out") == ["small.json"]


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


# --------------------------------------------------------------------------------------------------
# Issue 26: the second hostile-input round (rows named 26.<item>)
# --------------------------------------------------------------------------------------------------

# 26.1 export never writes onto its input, nor onto a sidecar that is not its own

def _export_onto_input(tmp: Path) -> list[str]:
    model = shipped_pt(tmp)
    (tmp / "before").write_text(sha(model))
    return ["export", "--model", str(model), "--out", str(model)]


def _model_untouched(tmp: Path, r: Result) -> None:
    assert sha(tmp / "models" / "m.pt") == (tmp / "before").read_text()
    assert outputs(tmp / "models") == ["m.pt"]


def _export_over_users_json(tmp: Path) -> list[str]:
    (tmp / "X").mkdir()
    (tmp / "X" / "summary.json").write_text('{"mine": 1}')
    return ["export", "--model", str(shipped_pt(tmp)), "--out", str(tmp / "X" / "summary.onnx")]


def _users_json_kept(tmp: Path, r: Result) -> None:
    assert outputs(tmp / "X") == ["summary.json"] and (tmp / "X" / "summary.json").read_text() == '{"mine": 1}'


# 26.2 predict removes or replaces only the files it wrote

def _users_pts_beside_outputs(tmp: Path) -> list[str]:
    path, box = photo(tmp, 0, "a.jpg")
    for k in (1, 2):
        (tmp / "in" / f"a_{k}.pts").write_text(f"mine {k}")
    return predict(tmp, path, out=tmp / "in", extra=("--format", "pts", "--boxes", box))


def _users_pts_kept(tmp: Path, r: Result) -> None:
    assert [(tmp / "in" / f"a_{k}.pts").read_text() for k in (1, 2)] == ["mine 1", "mine 2"]
    assert outputs(tmp / "in") == ["a.jpg", "a_0.pts", "a_1.pts", "a_2.pts"]
    assert read_pts(tmp / "in" / "a_0.pts").shape == (68, 2)


def _users_json_and_pts_in_out(tmp: Path) -> list[str]:
    path, box = photo(tmp, 0, "a.jpg")
    (tmp / "in" / "a.json").write_text("my notes")
    (tmp / "in" / "a_0.pts").write_text("my points")
    argv = predict(tmp, path, out=tmp / "in", extra=("--format", "json,pts", "--boxes", box))
    assert main(argv) == 0  # the checked run is the re-run: it replaces its own files, and only those
    return argv


def _written_beside(tmp: Path, r: Result) -> None:
    folder = tmp / "in"
    assert (folder / "a.json").read_text() == "my notes" and (folder / "a_0.pts").read_text() == "my points"
    assert outputs(folder) == ["a-1.json", "a.jpg", "a.json", "a_0-1.pts", "a_0.pts"]
    assert len(json.loads((folder / "a-1.json").read_text())["faces"]) == 1
    assert "2 output(s) written beside a file not written by kdlandmarks" in r.out
    assert "a-1.json beside a.json" in r.out


# 26.4 tracebacks become one line

def _deep_boxes(tmp: Path) -> list[str]:
    (tmp / "boxes.json").write_text("[" * 100_000 + "]" * 100_000)
    return predict(tmp, photo(tmp)[0], extra=("--boxes", str(tmp / "boxes.json")))


def _recipe(tmp: Path, text: str) -> list[str]:
    (tmp / "r.yaml").write_text(text)
    return ["train", "teacher", "--kind", "tough", "--config", str(tmp / "r.yaml"), "--out", str(tmp / "run")]


# 26.5 / 26.6 non-finite model outputs, boxes outside the image

def _boxes_outside(box: str) -> Callable[[Path], list[str]]:
    return lambda t: predict(t, photo(t)[0], extra=(f"--boxes={box}",))  # "=": a box may start with "-"


def _nothing_in_out(tmp: Path, r: Result) -> None:
    assert not (tmp / "out").exists() or outputs(tmp / "out") == []


# 26.7 skip messages name the file and its real size

def _tiny_video(tmp: Path) -> Path:
    path = tmp / "tiny.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (4, 4))  # MJPG crashes at 4x4
    for _ in range(3):
        writer.write(np.full((4, 4, 3), 127, np.uint8))
    writer.release()
    return path


# 26.9 a --format change leaves no earlier .pts behind

def _format_changed(tmp: Path) -> list[str]:
    path, box = photo(tmp, 0, "b.jpg")
    boxes = ";".join([box] + [f"{5 + 3 * k},{5 + 3 * k},{60 + 3 * k},{60 + 3 * k}" for k in range(29)])
    assert main(predict(tmp, path, extra=("--format", "json,pts", "--boxes", boxes))) == 0
    assert len(list((tmp / "out").glob("b_*.pts"))) == 30
    (tmp / "out" / "b_7.pts").write_text("edited by hand")  # no longer what predict wrote: kept
    return predict(tmp, path, extra=("--format", "json", "--boxes", box))


def _only_new_json(tmp: Path, r: Result) -> None:
    assert outputs(tmp / "out") == ["b.json", "b_7.pts"]
    assert len(json.loads((tmp / "out" / "b.json").read_text())["faces"]) == 1


# 26.10 folder runs say what they leave out

def _gif_and_drawing_in_folder(tmp: Path) -> list[str]:
    from PIL import Image

    from kdlandmarks.apps.predict import mark_drawing

    photo(tmp, 0, "a.jpg")
    Image.open(PHOTOS[1]).save(tmp / "in" / "b.gif")
    ok, buf = cv2.imencode(".jpg", cv2.imread(str(PHOTOS[2])))
    (tmp / "in" / "c.jpg").write_bytes(mark_drawing(buf.tobytes()))
    return predict(tmp, tmp / "in", extra=("--boxes", "60,60,200,200"))


def _gif_read_drawing_counted(tmp: Path, r: Result) -> None:
    assert outputs(tmp / "out") == ["a.json", "b.json"]
    assert "2/2 images" in r.out and "1 earlier drawing(s) not read" in r.out and "c.jpg" in r.out


# 26.11 small ones

def _fifo(tmp: Path) -> list[str]:
    os.mkfifo(tmp / "pipe.jpg")
    return predict(tmp, tmp / "pipe.jpg")


def _legacy_pickle(tmp: Path) -> list[str]:
    import pickle

    with open(tmp / "legacy.pt", "wb") as f:
        pickle.dump({"format": 1, "state_dict": {}}, f, protocol=4)
    return predict(tmp, photo(tmp)[0], extra=("--model", str(tmp / "legacy.pt")))


def _onnx_named_pt(tmp: Path) -> list[str]:
    from kdlandmarks.models.zoo import resolve_model

    shutil.copy(resolve_model(MODEL, backend="onnx"), tmp / "net.pt")
    return predict(tmp, photo(tmp)[0], extra=("--model", str(tmp / "net.pt")))


def _random_pt(tmp: Path) -> list[str]:
    (tmp / "noise.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return predict(tmp, photo(tmp)[0], extra=("--model", str(tmp / "noise.pt")))


ISSUE_26_CASES = [
    # 1
    Case("26.1-export-onto-its-input", _export_onto_input, err=("m.pt", ".onnx"), check=_model_untouched),
    Case("26.1-export-onto-its-input-as-onnx-name",
         lambda t: ["export", "--model", str(crafted_onnx(t)), "--out", str(t / "m.onnx")],
         err=("m.onnx",)),
    Case("26.1-export-over-a-users-json", _export_over_users_json,
         err=("summary.json: a file that kdlandmarks did not write", "left as it was"), check=_users_json_kept),
    Case("26.1-export-without-onnx-suffix",
         lambda t: ["export", "--model", str(shipped_pt(t)), "--out", str(t / "model")],
         err=("model: an ONNX export is written to a file ending in .onnx",), check=_nothing_written("model")),
    # 2
    Case("26.2-users-numbered-pts-kept", _users_pts_beside_outputs, code=0, err_lines=0, check=_users_pts_kept),
    Case("26.2-users-json-and-pts-never-overwritten", _users_json_and_pts_in_out, code=0, err_lines=0,
         check=_written_beside),
    # 4
    Case("26.4-onnx-metadata-disagrees-with-graph",
         lambda t: predict(t, photo(t)[0], extra=("--model", str(crafted_onnx(t, graph_size=64)),
                                                  "--boxes", "60,60,200,200")),
         err=("m.onnx: its graph takes", "altered after export")),
    Case("26.4-max-megapixels-nan", lambda t: predict(t, photo(t)[0], extra=("--max-megapixels", "nan")),
         err=("--max-megapixels must be a number > 0 (0: no limit), got nan",)),
    Case("26.4-max-megapixels-inf", lambda t: predict(t, photo(t)[0], extra=("--max-megapixels", "inf")),
         err=("--max-megapixels must be a number > 0", "got inf")),
    Case("26.11-max-megapixels-negative", lambda t: predict(t, photo(t)[0], extra=("--max-megapixels", "-5")),
         err=("--max-megapixels must be a number > 0", "got -5.0")),
    Case("26.4-set-epochs-empty",
         lambda t: ["train", "teacher", "--kind", "tough", "--out", str(t / "run"), "--set", "teacher.epochs="],
         err=("teacher.epochs: no value given (empty or null)",), check=_nothing_written("run")),
    Case("26.4-yaml-epochs-null", lambda t: _recipe(t, "teacher:\n  epochs: null\n"),
         err=("r.yaml.teacher.epochs: no value given",), check=_nothing_written("run")),
    Case("26.4-yaml-input-size-tilde", lambda t: _recipe(t, "input_size: ~\n"),
         err=("r.yaml.input_size: no value given",), check=_nothing_written("run")),
    Case("26.4-boxes-json-nested-100000-deep", _deep_boxes, err=("boxes.json", "nested too deeply")),
    # 5
    Case("26.5-nan-output-predict",
         lambda t: predict(t, photo(t)[0], extra=("--model", str(crafted_onnx(t, offset=float("nan"))),
                                                  "--format", "json,pts", "--boxes", "60,60,200,200")),
         err=("m.onnx: the network output holds NaN or infinite values",), check=_nothing_in_out),
    Case("26.5-huge-output-predict",
         lambda t: predict(t, photo(t)[0], extra=("--model", str(crafted_onnx(t, offset=1e30)),
                                                  "--boxes", "60,60,200,200")),
         err=("m.onnx: the network output holds a value of 1e+30",), check=_nothing_in_out),
    Case("26.5-nan-output-evaluate",
         lambda t: evaluate(w300_layout(t), t / "ev", model=crafted_onnx(t, offset=float("nan"))),
         err=("m.onnx: the network output holds NaN",), check=_nothing_written("ev")),
    # 6
    Case("26.6-box-wholly-outside", _boxes_outside("1000,1000,1200,1200"),
         err=("box 0 (1000,1000,1200,1200) lies wholly outside the",), check=_nothing_in_out),
    Case("26.6-negative-box", _boxes_outside("-300,-300,-100,-100"),
         err=("box 0 (-300,-300,-100,-100) lies wholly outside",), check=_nothing_in_out),
    Case("26.6-absurd-box", _boxes_outside("0,0,1e12,1e12"),
         err=("box 0 (0,0,1e+12,1e+12) is more than 10 times the size of the",), check=_nothing_in_out),
    Case("26.6-second-box-outside", _boxes_outside("60,60,200,200;2000,60,2100,200"),
         err=("box 1 (2000,60,2100,200) lies wholly outside",), check=_nothing_in_out),
    # 7
    Case("26.7-elongated-image", lambda t: predict(t, png(t / "long.png", 60000, 10)),
         err=("long.png: image is 60000x10 pixels, too elongated",)),
    Case("26.7-tiny-video", lambda t: predict(t, _tiny_video(t)),
         err=("tiny.mp4: video frames: image is 4x4 pixels, too small",)),
    Case("26.7-all-points-identical", lambda t: evaluate(w300_layout(t, {"same": same_points()}), t / "ev"),
         err=("same.pts: all 68 landmarks are the same point (120, 120)",), check=_nothing_written("ev")),
    # 8
    Case("26.8-zero-inter-ocular-skipped",
         lambda t: evaluate(w300_layout(t, {"eyes": eyes_together()}), t / "ev", "--skip-bad"),
         code=0, err_lines=None, check=lambda t, r: (
             (report := json.loads((t / "ev" / "metrics.json").read_text()))["protocol"]["count"] == 2
             or pytest.fail(r.out))
         and "afw/eyes: inter-ocular distance is zero" in report["skipped"][0]),
    Case("26.8-zero-inter-ocular-named", lambda t: evaluate(w300_layout(t, {"eyes": eyes_together()}), t / "ev"),
         err=("afw/eyes: inter-ocular distance is zero (its points 36 and 45 (0-based) coincide)",)),
    # 9
    Case("26.9-format-change-removes-own-pts", _format_changed, code=0, err_lines=0, check=_only_new_json),
    # 10
    Case("26.10-gif-read-and-drawing-counted", _gif_and_drawing_in_folder, code=0, err_lines=0,
         check=_gif_read_drawing_counted),
    # 11
    Case("26.11-fifo", _fifo, err=("pipe.jpg: not a regular file or folder",)),
    Case("26.11-legacy-pickle", _legacy_pickle,
         err=("legacy.pt: not a readable model file: truncated, or not a PyTorch file",)),
    Case("26.11-onnx-named-pt", _onnx_named_pt, err=("net.pt: an exported ONNX model, not a PyTorch model file",)),
    Case("26.11-random-bytes-pt", _random_pt,
         err=("noise.pt: not a readable model file: truncated, or not a PyTorch file",)),
]
CLI_CASES += ISSUE_26_CASES


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


def deny_writes_in(monkeypatch, folder: Path) -> None:
    """Creating a file in `folder` fails with EACCES, as in a read-only folder (root ignores chmod)."""
    import errno

    from kdlandmarks import fileio

    real_open = os.open

    def deny(path, *args, **kwargs):
        if Path(path).parent == folder:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(fileio.os, "open", deny)


def api_unwritable_folder_is_named(tmp: Path, monkeypatch) -> None:
    """The error names the folder, not a hidden temporary file (root ignores chmod: EACCES is simulated)."""
    from kdlandmarks import fileio

    locked = tmp / "locked"
    locked.mkdir()
    deny_writes_in(monkeypatch, locked)
    with pytest.raises(PermissionError) as info:
        fileio.atomic_write_text(locked / "a.json", "{}")
    assert info.value.filename == str(locked) and "cannot create files in this folder" in str(info.value)
    assert ".tmp" not in str(info.value)


def api_unwritable_folder_cli(tmp: Path, monkeypatch, capsys) -> None:
    argv = _unwritable(tmp)
    (tmp / "locked").mkdir()
    deny_writes_in(monkeypatch, tmp / "locked")
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


# Issue 26, API rows

def api_export_to_an_unwritable_place_fails_first(tmp: Path, monkeypatch, capsys) -> None:
    """Before the export's work (no exporter runs), naming the folder, not a temporary file."""
    from kdlandmarks.export import onnx as export_onnx_module

    model = shipped_pt(tmp)
    locked = tmp / "locked"
    locked.mkdir()
    deny_writes_in(monkeypatch, locked)

    def no_work(*args, **kwargs):
        raise AssertionError("the export started before its output place was checked")

    monkeypatch.setattr(export_onnx_module, "_torch_export", no_work)
    for fmt in ("onnx", "onnx-int8"):
        r = cli(capsys, ["export", "--model", str(model), "--format", fmt, "--out", str(locked / "m.onnx")])
        lines = r.err.strip().splitlines()
        assert r.code == 2 and len(lines) == 1, r.err
        assert lines[0].endswith(f"cannot create files in this folder): {locked}") and ".tmp" not in lines[0]
    assert outputs(locked) == []


def api_network_output_check_is_shared(tmp: Path) -> None:
    """One check, in the runtime, for every caller of the network: predict, evaluate, video, the API."""
    from kdlandmarks.inference.detector import LandmarkDetector
    from kdlandmarks.inference.runtime import MAX_ABS_OUTPUT, check_network_output

    fine = np.full((2, 136), MAX_ABS_OUTPUT)
    assert check_network_output(fine, "m") is fine
    for bad, what in ((np.inf, "NaN or infinite"), (-np.inf, "NaN or infinite"), (np.nan, "NaN or infinite"),
                      (-2 * MAX_ABS_OUTPUT, "a value of 2e+04")):
        out = np.zeros((3, 136), np.float32)
        out[2, 7] = bad
        with pytest.raises(ModelError, match="^" + re.escape(f"model.onnx: the network output holds {what}")):
            check_network_output(out, "model.onnx")
    image = cv2.cvtColor(cv2.imread(str(PHOTOS[0])), cv2.COLOR_BGR2RGB)
    det = LandmarkDetector(crafted_onnx(tmp, offset=float("nan")))
    with pytest.raises(ModelError, match="m.onnx: the network output holds NaN"):
        det.detect(image, boxes=[[60, 60, 200, 200]])
    faces = LandmarkDetector(crafted_onnx(tmp, "ok.onnx")).detect(image, boxes=[[60, 60, 200, 200]])
    assert faces[0].landmarks.shape == (68, 2)


def api_video_of_tiny_frames_is_named(tmp: Path) -> None:
    from kdlandmarks.inference.video import VideoStream

    with pytest.raises(DataError, match=r"tiny.mp4: video frames: image is 4x4 pixels, too small"):
        VideoStream(_tiny_video(tmp))


def api_ledger_vouches_only_for_whole_unchanged_entries(tmp: Path) -> None:
    """A ledger line cut short by a kill, or a file changed since it was written, vouches for nothing."""
    from kdlandmarks.apps.predict import OutputLedger

    out = tmp / "out"
    out.mkdir()
    (out / "a.json").write_text("{}")
    (out / "b.json").write_text("{}")
    ledger = OutputLedger(out)
    ledger.wrote(out / "a.json", "a")
    ledger.wrote(out / "b.json", "b")
    with open(out / OUTPUT_LEDGER, "a") as f:
        f.write('{"path": "c.json", "st')  # killed mid-line
    (out / "c.json").write_text("{}")
    (out / "b.json").write_text('{"edited": 1}')
    again = OutputLedger(out)
    assert again.owns(out / "a.json") and not again.owns(out / "b.json") and not again.owns(out / "c.json")
    assert again.target(out / "a.json") == out / "a.json" and again.target(out / "b.json") == out / "b-1.json"
    again.remove_stale("b", keep=set())
    assert (out / "b.json").read_text() == '{"edited": 1}'
    again.remove_stale("a", keep=set())
    assert not (out / "a.json").exists() and not OutputLedger(out).owns(out / "a.json")
    (out / "d.json").write_text("{}")
    for _ in range(3000):  # many re-runs of one image: the ledger is compacted on the next load
        again.wrote(out / "d.json", "d")
    assert OutputLedger(out).owns(out / "d.json")
    assert [json.loads(line)["path"] for line in (out / OUTPUT_LEDGER).read_text().splitlines()] == ["b.json", "d.json"]


def api_backbone_weights_refused_in_one_line(tmp: Path) -> None:
    from kdlandmarks.models.backbones import create_model

    with pytest.raises(ModelError, match="evil.pt: not a kdlandmarks weight file: it holds Python objects"):
        create_model(TRAIN_ARCH, 68, backbone_weights=evil_model(tmp))
    with pytest.raises(ModelError, match="noise.pt: not a readable weight file"):
        (tmp / "noise.pt").write_bytes(b"\x80\x02garbage")
        create_model(TRAIN_ARCH, 68, backbone_weights=tmp / "noise.pt")
    assert not (tmp / "PWNED").exists()


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
    api_export_to_an_unwritable_place_fails_first,
    api_network_output_check_is_shared,
    api_video_of_tiny_frames_is_named,
    api_ledger_vouches_only_for_whole_unchanged_entries,
    api_backbone_weights_refused_in_one_line,
]


@pytest.mark.parametrize("case", API_CASES, ids=[c.__name__[4:] for c in API_CASES])
def test_api(case, tmp_path: Path, request) -> None:
    import inspect

    fixtures = {name: request.getfixturevalue(name) for name in inspect.signature(case).parameters if name != "tmp"}
    case(tmp_path, **fixtures)


# --------------------------------------------------------------------------------------------------
# Issue 26, training rows: one tiny store and one teacher run, shared
# --------------------------------------------------------------------------------------------------

TINY_TRAIN = ["--config", "300w-paper", "--set", "data.num_workers=0", "--set", "trainer.accelerator=cpu",
              "--set", "trainer.devices=1", "--set", "trainer.precision=32-true", "--set", f"teacher.arch={TRAIN_ARCH}",
              "--set", "input_size=32", "--set", "data.batch_size=4", "--set", "teacher.epochs=1", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny prepared store (6 faces, 32 px, 2 copies) and a teacher run of one epoch on it."""
    base = tmp_path_factory.mktemp("trained")
    store = base / "store"
    assert main(prepare(w300_layout(base, good=6), store, "--copies", "2")) == 0
    run = base / "run"
    assert main(teacher(store, run)) == 0
    return store, run


def teacher(store: Path, out: Path, *extra: str) -> list[str]:
    return ["train", "teacher", "--kind", "tough", "--store", str(store), "--out", str(out), *TINY_TRAIN, *extra]


def one_line_error(r: Result, *phrases: str) -> None:
    lines = r.err.strip().splitlines()
    assert r.code == 2 and len(lines) == 1 and lines[0].startswith("kdlandmarks: error: "), r.err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])


def copied_run(trained, tmp: Path) -> Path:
    run = tmp / "run"
    shutil.copytree(trained[1], run)
    return run


def test_26_4_resume_from_a_truncated_checkpoint(trained, tmp_path, capsys) -> None:
    run = copied_run(trained, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:4000])
    r = cli(capsys, teacher(trained[0], run))
    one_line_error(r, "cannot resume", "last.ckpt: not a readable training checkpoint", "--restart")
    assert last.stat().st_size == 4000  # kept: the user decides


def test_26_4_resume_after_the_architecture_changed(trained, tmp_path, capsys) -> None:
    run = copied_run(trained, tmp_path)
    r = cli(capsys, teacher(trained[0], run, "--set", "teacher.arch=mobilenetv2_035"))
    one_line_error(r, f"holds {TRAIN_ARCH} with 68 points, and the recipe now builds mobilenetv2_035", "--restart")


def test_26_4_crafted_checkpoint_refused_in_one_line(trained, tmp_path, capsys) -> None:
    run = copied_run(trained, tmp_path)
    evil = evil_model(tmp_path, "evil.ckpt", checkpoint=True)
    shutil.move(evil, run / "checkpoints" / "last.ckpt")
    r = cli(capsys, teacher(trained[0], run))
    one_line_error(r, "cannot resume", "holds Python objects", "--restart")
    assert not (tmp_path / "PWNED").exists()


def test_26_4_and_11_evil_backbone_weights_leave_no_run_folder(trained, tmp_path, capsys) -> None:
    r = cli(capsys, teacher(trained[0], tmp_path / "new", "--set", f"teacher.backbone_weights={evil_model(tmp_path)}"))
    one_line_error(r, "evil.pt: not a kdlandmarks weight file: it holds Python objects")
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "new").exists()  # a failed start leaves no folder with only config.yaml


def test_26_4_truncated_store_images(trained, tmp_path, capsys) -> None:
    store = tmp_path / "store"
    shutil.copytree(trained[0], store)
    images = store / "images.npy"
    images.write_bytes(images.read_bytes()[:images.stat().st_size // 2])
    one_line_error(cli(capsys, ["asm", "--store", str(store)]), "images.npy: unreadable store array",
                   "kdlandmarks prepare")
    one_line_error(cli(capsys, teacher(store, tmp_path / "new")), "images.npy: unreadable store array")
    assert not (tmp_path / "new").exists()
