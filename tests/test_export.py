"""ONNX export, int8 quantisation, the onnxruntime runner, and the export/bench commands."""
from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from kdlandmarks.cli import main
from kdlandmarks.errors import ModelError
from kdlandmarks.export.onnx import METADATA_KEY, OnnxRegressor, export_onnx, face_crops, quantize_int8, to_batch
from kdlandmarks.models.backbones import ModelInfo, create_model, load_model, save_model

SIZE = 64
ARCH = "mobilenetv2_050"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = create_model(ARCH, 68).eval()
    info = ModelInfo(ARCH, 68, SIZE, box_calibrations={"test": {"dx": 0.0, "dy": 0.1, "scale": 1.2}},
                     metadata={"note": "test"})
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, net, info)
    return path


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    return out, export_onnx(tiny, out, check_count=4)


def _images(batch: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((batch, 3, SIZE, SIZE), dtype=np.float32)


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_matches_torch(tiny, exported, batch):
    net, _ = load_model(tiny)
    x = _images(batch, seed=batch)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    got = OnnxRegressor(exported[0])(x)
    assert got.shape == (batch, 136)
    assert np.abs(got - ref).max() < 1e-3


def test_export_report_and_metadata_round_trip(tiny, exported):
    path, report = exported
    runner = OnnxRegressor(path)
    _, info = load_model(tiny)
    assert asdict(runner.info) == asdict(info)
    assert runner.input_size == SIZE and runner.num_points == 68
    assert report["max_diff_px"] < 1e-3 * SIZE and report["check_faces"] == 4
    assert report["opset"] == 17 and "real faces" in report["check_source"]
    import onnx

    proto = onnx.load(str(path))
    assert [i.name for i in proto.graph.input] == ["images"] and [o.name for o in proto.graph.output] == ["landmarks"]
    assert json.loads({p.key: p.value for p in proto.metadata_props}[METADATA_KEY])["input_size"] == SIZE
    assert not list(path.parent.glob(".*.tmp"))  # atomic write left nothing behind


def test_static_batch_export_runs_any_batch(tiny, tmp_path):
    out = tmp_path / "static.onnx"
    export_onnx(tiny, out, dynamic_batch=False, check_images=[np.zeros((SIZE, SIZE, 3), np.uint8)])
    runner = OnnxRegressor(out)
    assert runner.fixed_batch == 1
    assert runner(_images(2)).shape == (2, 136)


def test_int8_runs_and_stays_close(exported, tmp_path):
    crops, points, _ = face_crops(SIZE, 8)
    out = tmp_path / "tiny_int8.onnx"
    report = quantize_int8(exported[0], out, crops, check_landmarks=points)
    q, fp = OnnxRegressor(out), OnnxRegressor(exported[0])
    assert q.quantization["method"] == "static" and q.info.input_size == SIZE
    assert out.stat().st_size < exported[0].stat().st_size
    x = to_batch(crops, SIZE)
    a, b = fp(x), q(x)
    # A random network is the worst case for int8; the bound only catches a broken graph.
    spread = np.abs(a - a.mean(0)).mean() + np.abs(a).mean()
    assert np.abs(a - b).mean() < 0.5 * spread
    assert report["max_diff_out"] == pytest.approx(np.abs(a - b).max(), rel=1e-4)


def test_bad_onnx_files_raise_model_error(tmp_path, exported):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not an onnx model at all")
    with pytest.raises(ModelError, match="bad.onnx"):
        OnnxRegressor(bad)
    with pytest.raises(ModelError, match="not found"):
        OnnxRegressor(tmp_path / "missing.onnx")
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(exported[0].read_bytes()[:5000])
    with pytest.raises(ModelError, match="truncated.onnx"):
        OnnxRegressor(truncated)
    with pytest.raises(ModelError, match="input must be"):
        OnnxRegressor(exported[0])(np.zeros((1, 3, SIZE + 1, SIZE), np.float32))


def test_onnx_without_metadata_is_refused(tmp_path, exported):
    import onnx

    proto = onnx.load(str(exported[0]))
    del proto.metadata_props[:]
    plain = tmp_path / "plain.onnx"
    onnx.save(proto, str(plain))
    with pytest.raises(ModelError, match="no kdlandmarks metadata"):
        OnnxRegressor(plain)


def test_cli_export(tiny, tmp_path, capsys):
    out = tmp_path / "cli.onnx"
    assert main(["export", "--model", str(tiny), "--format", "onnx", "--out", str(out), "--check-faces", "2"]) == 0
    text = capsys.readouterr().out
    assert out.is_file() and "max coordinate difference" in text and "2 real faces" in text
    assert OnnxRegressor(out).info.arch == ARCH


def test_cli_export_bad_model_is_one_line_exit_2(tmp_path, capsys):
    code = main(["export", "--model", str(tmp_path / "nope.pt"), "--format", "onnx", "--out", str(tmp_path / "x.onnx")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "nope.pt" in err
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.slow
def test_cli_export_int8(tiny, tmp_path, capsys):
    out = tmp_path / "cli_int8.onnx"
    assert main(["export", "--model", str(tiny), "--format", "onnx-int8", "--out", str(out),
                 "--check-faces", "4", "--calibration-faces", "8"]) == 0
    text = capsys.readouterr().out
    assert "int8 vs fp32" in text and "NME" in text
    assert OnnxRegressor(out).quantization is not None
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_export_onnx_int8_api(tiny, tmp_path):
    """export_onnx_int8 (what `export --format onnx-int8` runs) from Python: one int8 file, both reports."""
    from kdlandmarks.errors import ConfigError
    from kdlandmarks.export.onnx import export_onnx_int8

    with pytest.raises(ConfigError):
        export_onnx_int8(tiny, tmp_path / "never.onnx", calibration_faces=0)
    out = tmp_path / "api_int8.onnx"
    result = export_onnx_int8(tiny, out, check_faces=2, calibration_faces=2)
    assert set(result) == {"fp32", "int8", "calibration_faces"} and result["calibration_faces"] == 2
    assert result["fp32"]["num_points"] == 68 and result["int8"]["path"] == str(out)
    assert OnnxRegressor(out).quantization is not None
    assert [p.name for p in tmp_path.iterdir()] == ["api_int8.onnx"]  # the fp32 temporary is gone


def test_bench_api_tiny(tiny):
    from kdlandmarks.apps.bench import BenchOptions, format_report, run_bench

    before = torch.get_num_threads()
    report = run_bench(BenchOptions(tiny, teacher_arch=None, input_sizes=[SIZE], batches=[1, 2], repeats=2, int8=False,
                                    threads=1, detector=False, others=False, pipeline=False, min_seconds=0))
    assert torch.get_num_threads() == before
    assert {(r.runtime, r.batch) for r in report.rows} == {("torch", 1), ("torch", 2), ("onnxruntime", 1),
                                                           ("onnxruntime", 2)}
    assert all(r.ms_per_face > 0 and r.faces_per_s > 0 for r in report.rows)
    text = format_report(report)
    assert "ms/face" in text and "target: student onnxruntime fp32" in text and "peak memory" in text


@pytest.mark.slow
def test_cli_bench_tiny(tiny, capsys):
    assert main(["bench", "--model", str(tiny), "--teacher-arch", ARCH, "--input-size", str(SIZE),
                 "--batch", "1,2", "--repeats", "2", "--min-seconds", "0"]) == 0
    text = capsys.readouterr().out
    for needle in ("student", f"teacher {ARCH}", "onnxruntime int8", "face detector", "machine:", "peak memory"):
        assert needle in text


def test_time_call_samples_repeats_and_min_seconds():
    """Fast calls keep being timed for min_seconds (other tenants' bursts are shorter than that window)."""
    import time

    from kdlandmarks.apps.bench import time_call

    calls = []
    time_call(lambda: calls.append(1), repeats=3, warmup=2, min_seconds=0)
    assert len(calls) == 2 + 3
    calls.clear()
    start = time.perf_counter()
    median, best = time_call(lambda: (calls.append(1), time.sleep(0.01)), repeats=1, warmup=0, min_seconds=0.1)
    assert time.perf_counter() - start >= 0.1 and len(calls) >= 2  # one repeat asked, sampled for 0.1 s
    assert best >= 0.01 and median >= best


def test_cli_bench_bad_batch_is_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--batch", "0,x"])
    assert exc.value.code == 2


def test_unsupported_opset_is_refused_before_exporting(tiny, tmp_path, capsys):
    """The exporter's own failure dumps the whole graph to stdout; the range is checked first."""
    capsys.readouterr()
    code = main(["export", "--model", str(tiny), "--out", str(tmp_path / "x.onnx"), "--opset", "3"])
    out, err = capsys.readouterr()
    assert code == 2 and "opset 3" in err and len(err.strip().splitlines()) == 1 and out == ""
    assert not (tmp_path / "x.onnx").exists()


def test_load_model_names_what_is_wrong(exported, tmp_path):
    onnx_path, _ = exported
    with pytest.raises(ModelError, match="exported ONNX model"):
        load_model(onnx_path)
    newer = tmp_path / "newer.pt"
    torch.save({"format": "kdlandmarks-model/1", "info": {"arch": ARCH, "num_points": 68, "input_size": SIZE,
                                                            "from_the_future": 1}, "state_dict": {}}, newer)
    with pytest.raises(ModelError, match="unreadable model settings"):
        load_model(newer)


def test_unknown_coordinate_space_is_a_config_error():
    from kdlandmarks.data.codec import LandmarkCodec
    from kdlandmarks.errors import ConfigError

    with pytest.raises(ConfigError, match="coordinate space"):
        LandmarkCodec(64, "centimetres")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_export_of_an_in_memory_model_on_the_gpu(tmp_path):
    net = create_model(ARCH, 68).eval().cuda()
    report = export_onnx((net, ModelInfo(ARCH, 68, SIZE)), tmp_path / "gpu.onnx", check_count=2)
    assert report["max_diff_px"] < 0.5 and next(net.parameters()).is_cuda  # TF32 convolutions on the GPU
