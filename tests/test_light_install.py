"""The default install (no extras): inference never imports torch, and what needs the `train` extra says so
in one line; `evaluate --protocol detector`, where a face the detector misses is a failure.

A missing extra is simulated in a fresh interpreter with sys.modules[name] = None (import fails, and
importlib.util.find_spec reports the module absent), as on a machine without it. CI also checks a real
fresh venv with the plain install (.ci/light-install).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kdlandmarks.cli import main
from kdlandmarks.cli.evaluate import format_table
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.errors import ConfigError, KDLandmarksError, MissingExtraError
from kdlandmarks.evaluation.protocols import MISS_NME, EvaluationOptions, evaluate_model
from kdlandmarks.extras import TRAIN_INSTALL, missing, require_train

PHOTO = sample_root() / "lfpw" / "testset" / "image_0001.jpg"
TRAIN_ONLY = ("torch", "torchvision", "timm", "lightning", "onnx", "scipy", "matplotlib")


def run_python(script: str, timeout: int = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True,
                          timeout=timeout)


def test_inference_path_imports_no_torch(tmp_path):
    """LandmarkDetector, predict and evaluate with a shipped model run on onnxruntime: torch stays unimported
    (here torch is installed; nothing may reach for it)."""
    proc = run_python(f"""
        import json, sys
        from kdlandmarks import LandmarkDetector
        from kdlandmarks.cli import main
        from kdlandmarks.data.datasets import read_image
        faces = LandmarkDetector().detect(read_image({str(PHOTO)!r}))
        assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2), faces
        assert main(["predict", {str(PHOTO)!r}, "--out", {str(tmp_path / "pred")!r}, "--draw"]) == 0
        assert main(["evaluate", "--model", "kd-student-300w-lite", "--dataset", "300w", "--root",
                     {str(sample_root())!r}, "--split", "lfpw/testset", "--protocol", "detector",
                     "--out", {str(tmp_path / "eval")!r}]) == 0
        assert main(["models"]) == 0
        heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({TRAIN_ONLY!r}))
        print("HEAVY=" + json.dumps(heavy))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    heavy = json.loads(proc.stdout.split("HEAVY=")[-1])
    assert heavy == [] or heavy == ["matplotlib"], heavy  # matplotlib: evaluate's ced.png, where installed
    assert "torch" not in heavy
    faces = json.loads((tmp_path / "pred" / "image_0001.json").read_text())["faces"]
    assert len(faces) == 1 and len(faces[0]["landmarks"]) == 68


def test_missing_train_extra_is_one_line_naming_the_pip_command(tmp_path):
    """Without torch & co. every command that needs them exits 2 with one line and no traceback; the
    inference commands still work."""
    out = tmp_path
    proc = run_python(f"""
        import contextlib, io, json, sys
        for name in {TRAIN_ONLY!r}:
            sys.modules[name] = None  # as if not installed
        from kdlandmarks.cli import main
        photo, sample, out = {str(PHOTO)!r}, {str(sample_root())!r}, {str(out)!r}
        commands = {{
            "train": ["train", "student", "--out", out + "/run"],
            "demo": ["demo", "--out", out + "/demo"],
            "export": ["export", "--out", out + "/m.onnx"],
            "prepare": ["prepare", "--dataset", "300w", "--root", sample, "--split", "lfpw/trainset",
                        "--copies", "3", "--out", out + "/store"],
            "predict-pt": ["predict", photo, "--model", "kd-student-300w", "--backend", "torch", "--out", out + "/p1"],
            "evaluate-pt": ["evaluate", "--model", "kd-student-300w", "--backend", "torch", "--dataset", "300w",
                            "--root", sample, "--split", "lfpw/testset", "--out", out + "/e1"],
            "bench-pt": ["bench", "--model", sample + "/../../weights/kd-student-300w.pt"],
            "predict": ["predict", photo, "--out", out + "/p2"],
            "evaluate": ["evaluate", "--model", "kd-student-300w-lite", "--dataset", "300w", "--root", sample,
                         "--split", "lfpw/testset", "--out", out + "/e2"],
        }}
        results = {{}}
        for key, argv in commands.items():
            err = io.StringIO()
            with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
                code = main(argv)
            results[key] = [code, err.getvalue()]
        print("RESULTS=" + json.dumps(results))
    """)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.split("RESULTS=")[-1])
    for key in ("train", "demo", "export", "prepare", "predict-pt", "evaluate-pt", "bench-pt"):
        code, err = results[key]
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1, (key, err)
        assert lines[0].startswith("kdlandmarks: error: ") and TRAIN_INSTALL in lines[0], (key, err)
        assert "Traceback" not in err and "ImportError" not in err, (key, err)
    assert "kdlandmarks train student needs the training extra" in results["train"][1]
    assert "kdlandmarks export needs the training extra" in results["export"][1]
    assert results["predict"][0] == 0 and (tmp_path / "p2" / "image_0001.json").is_file(), results["predict"]
    # evaluate on the default install: no matplotlib, so no ced.png, and a note says why
    assert results["evaluate"][0] == 0, results["evaluate"]
    report = json.loads((tmp_path / "e2" / "metrics.json").read_text())
    assert (tmp_path / "e2" / "ced.csv").is_file() and not (tmp_path / "e2" / "ced.png").exists()
    assert any("matplotlib" in note for note in report["protocol"]["notes"])
    assert report["protocol"]["backend"] == "onnx"


def test_an_import_of_a_missing_extra_anywhere_in_a_command_is_one_line(monkeypatch, capsys):
    """The CLI's safety net: a command that reaches torch without checking first still ends in one line."""
    import kdlandmarks.cli.models as models_cli

    def needs_torch(args):
        import torch  # noqa: F401

    monkeypatch.setitem(sys.modules, "torch", None)
    monkeypatch.setattr(models_cli, "run", needs_torch)
    assert main(["models"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == [f"kdlandmarks: error: kdlandmarks models needs the training extra "
                                        f"(torch is not installed): {TRAIN_INSTALL}"]


def test_require_train_and_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    assert missing(["torch", "numpy"]) == ["torch"]
    with pytest.raises(MissingExtraError, match=r"ONNX export needs the training extra \(torch is not installed\)"):
        require_train("ONNX export", ("torch", "numpy"))
    assert issubclass(MissingExtraError, KDLandmarksError) and issubclass(MissingExtraError, ImportError)


def test_bench_without_torch_measures_the_onnxruntime_rows(monkeypatch):
    from kdlandmarks.apps.bench import BenchOptions, format_report, run_bench

    for name in ("torch", "timm", "onnx"):
        monkeypatch.setitem(sys.modules, name, None)
    report = run_bench(BenchOptions(None, teacher_arch="efficientnet_b3", batches=(1,), repeats=1, min_seconds=0,
                                    budget_s=0.05, detector=False, others=False, pipeline=False))
    rows = {(r.model, r.runtime, r.input_size): r for r in report.rows}
    for runtime in ("onnxruntime", "onnxruntime int8"):  # the shipped fp32 and int8 exports
        assert rows[("student", runtime, 128)].ms_per_face > 0
        assert rows[("student (flip test)", runtime, 128)].ms_per_face > 0
    for key in (("student", "torch", 128), ("student", "onnxruntime", 224), ("teacher efficientnet_b3", "torch", 128)):
        assert rows[key].ms_per_face is None and TRAIN_INSTALL in rows[key].note, key
    text = format_report(report)
    assert "torch not installed" in text and "kd-student-300w-lite" in text


# --------------------------------------------------------------------------------------------------
# evaluate --protocol detector
# --------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def three_faces(tmp_path_factory):
    """Three bundled LFPW test faces in a 300-W layout."""
    root = tmp_path_factory.mktemp("300w")
    folder = root / "lfpw" / "testset"
    folder.mkdir(parents=True)
    for pts in sorted((sample_root() / "lfpw" / "testset").glob("*.pts"))[:3]:
        shutil.copy(pts, folder)
        shutil.copy(pts.with_suffix(".jpg"), folder)
    return root


class MissFirst:
    """RetinaFace, except that it finds nothing in the first image it is shown."""

    name = "retinaface"  # its boxes are RetinaFace's, cropped through RetinaFace's calibration

    def __init__(self):
        from kdlandmarks.inference.detection import create_detector

        self.inner, self.calls = create_detector("retinaface"), 0

    def detect(self, image):
        self.calls += 1
        return [] if self.calls == 1 else self.inner.detect(image)


def test_detector_protocol_counts_a_miss_as_a_failure(three_faces, tmp_path):
    report = evaluate_model("kd-student-300w-lite", "300w", three_faces, "lfpw/testset", tmp_path / "e",
                            EvaluationOptions(protocol="detector", detector=MissFirst(), progress=False))
    proto, summary = report["protocol"], report["subsets"]["lfpw/testset"]
    assert proto["crop"] == "detector" and proto["detector"] == "retinaface" and proto["miss_nme"] == MISS_NME
    assert proto["box_calibration"]["scale"] > 1  # RetinaFace's calibration, not the identity
    assert proto["misses"] == 1 and summary["misses"] == 1 and summary["count"] == 3
    first, *rest = report["per_image"]
    assert first["detected"] is False and first["nme"] == MISS_NME and first["pts"] is None
    assert all(r["detected"] and r["nme"] < 0.1 and len(r["box"]) == 4 for r in rest)
    assert summary["failure_rate"] == pytest.approx(100 / 3)  # the miss, and only the miss, fails
    nmes = np.array([r["nme"] for r in report["per_image"]])
    assert summary["nme"] == pytest.approx(100 * nmes.mean())
    assert summary["nme_detected"] == pytest.approx(100 * nmes[1:].mean())
    assert summary["auc"] == pytest.approx(np.mean(np.clip(0.1 - nmes[1:], 0, None)) / 0.1 * 2 / 3)
    assert sorted(p.name for p in (tmp_path / "e" / "pts").glob("*.pts")) == sorted(
        f"{r['name'].split('/')[-1]}.pts" for r in rest)
    table = format_table(report)
    assert table.splitlines()[0].split()[-4:] == ["misses", "NME", "found", "%"]
    assert "1 of 3 faces missed" in table and "NME = 1" in table


def test_detector_protocol_finds_all_faces_on_the_bundled_photos(three_faces, tmp_path, capsys):
    code = main(["evaluate", "--model", "kd-student-300w-lite", "--dataset", "300w", "--root", str(three_faces),
                 "--split", "lfpw/testset", "--protocol", "detector", "--out", str(tmp_path / "e")])
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "e" / "metrics.json").read_text())
    summary = report["subsets"]["lfpw/testset"]
    assert summary["misses"] == 0 and summary["nme"] == pytest.approx(summary["nme_detected"])
    assert summary["nme"] < 10


def test_detector_protocol_refuses_a_threshold_a_miss_would_pass(three_faces, tmp_path):
    with pytest.raises(ConfigError, match="below 1"):
        evaluate_model("kd-student-300w-lite", "300w", three_faces, "lfpw/testset", tmp_path / "e",
                       EvaluationOptions(protocol="detector", threshold=1.0, progress=False))
