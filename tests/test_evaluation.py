"""End-to-end evaluation on a synthetic 300-W layout with a tiny model whose output is a fixed shape."""
import csv
import json

import cv2
import numpy as np
import pytest
import torch

from kdlandmarks.cli import main
from kdlandmarks.data.codec import LandmarkCodec
from kdlandmarks.data.crop import gt_crop
from kdlandmarks.data.datasets.pts import read_pts, write_pts
from kdlandmarks.errors import ModelError
from kdlandmarks.evaluation.protocols import EvaluationOptions, evaluate_model
from kdlandmarks.models.backbones import ModelInfo, create_model, save_model
from kdlandmarks.models.zoo import SHIPPED, resolve_model

SIZE = 64
rng = np.random.default_rng(0)
TEMPLATE = rng.uniform(0, 1, size=(68, 2))
TEMPLATE[36], TEMPLATE[45] = (0.1, 0.3), (0.9, 0.3)  # eye corners well apart
# Each face: the template scaled and shifted (a similarity), in images of different sizes.
FACES = {
    "helen/testset/h1": (120, 90, 60.0, (20.0, 15.0)),
    "lfpw/testset/l1": (200, 160, 100.0, (50.0, 30.0)),
    "ibug/i1": (90, 100, 40.0, (30.0, 35.0)),
}


@pytest.fixture(scope="module")
def w300(tmp_path_factory):
    root = tmp_path_factory.mktemp("300w")
    for name, (w, h, scale, (ox, oy)) in FACES.items():
        path = root / f"{name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        img = np.full((h, w, 3), 128, np.uint8)
        cv2.circle(img, (w // 2, h // 2), min(w, h) // 4, (200, 100, 50), -1)
        cv2.imwrite(str(path), img)
        write_pts(path.with_suffix(".pts"), TEMPLATE * scale + [ox, oy])
    return root


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """An untrained network whose head always outputs the template's crop-frame shape."""
    torch.manual_seed(0)
    net = create_model("mobilenetv2_050", 68)
    info = ModelInfo(arch="mobilenetv2_050", num_points=68, input_size=SIZE)
    crop_shape = gt_crop(TEMPLATE * 60.0, SIZE, info.crop_margin).to_crop(TEMPLATE * 60.0)
    with torch.no_grad():
        net.head.weight.zero_()
        net.head.bias.copy_(torch.from_numpy(LandmarkCodec(SIZE).encode(crop_shape)).float())
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_model(path, net, info)
    return path


def test_evaluate_model_api(w300, model_file, tmp_path):
    out = tmp_path / "eval"
    report = evaluate_model(model_file, "300w", w300, "full", out, EvaluationOptions(batch_size=2, progress=False))
    assert list(report["subsets"]) == ["common", "challenging", "full"]
    assert [report["subsets"][k]["count"] for k in ("common", "challenging", "full")] == [2, 1, 3]
    for s in report["subsets"].values():
        assert set(s) >= {"nme", "failure_rate", "auc", "auc_paper_code", "count", "normalizer", "threshold"}
        # The predicted shape equals every face's crop-frame ground truth: NME ~ 0 in image coordinates.
        assert s["nme"] < 0.01 and s["failure_rate"] == 0 and s["auc"] > 0.999
    proto = report["protocol"]
    assert proto["crop"] == "gt" and proto["crop_margin"] == pytest.approx(0.1)
    assert proto["normalizer"] == "inter-ocular" and proto["threshold"] == 0.1
    assert proto["model"] == str(model_file) and proto["input_size"] == SIZE and proto["count"] == 3

    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(report))
    assert {p["name"] for p in on_disk["per_image"]} == set(FACES)
    assert (out / "ced.png").stat().st_size > 0
    rows = list(csv.reader((out / "ced.csv").open()))
    assert rows[0] == ["threshold", "common", "challenging", "full"]

    pts = sorted(p.name for p in (out / "pts").glob("*.pts"))
    assert pts == ["h1.pts", "i1.pts", "l1.pts"]
    # Predictions are in each original image's frame: they match its ground truth, not the 64 px crop.
    for name, (w, h, scale, (ox, oy)) in FACES.items():
        pred = read_pts(out / "pts" / f"{name.split('/')[-1]}.pts", 68)
        np.testing.assert_allclose(pred, TEMPLATE * scale + [ox, oy], atol=0.02 * scale)
        assert pred[:, 0].min() > -0.5 and pred[:, 0].max() < w - 0.5
        assert pred[:, 1].min() > -0.5 and pred[:, 1].max() < h - 0.5


def test_normalizer_and_missing_folder(w300, model_file, tmp_path):
    # Only 'common' folders are requested: one subset; a different normaliser is recorded.
    report = evaluate_model(model_file, "300w", w300, "common", tmp_path / "c",
                            EvaluationOptions(normalizer="box", progress=False))
    assert list(report["subsets"]) == ["common"]
    assert report["subsets"]["common"]["normalizer"] == "box"
    assert "landmark extent" in report["protocol"]["normalizer_points"]


def test_cli_evaluate(w300, model_file, tmp_path, capsys):
    out = tmp_path / "cli"
    code = main(["evaluate", "--model", str(model_file), "--dataset", "300w", "--root", str(w300),
                 "--split", "full", "--out", str(out), "--batch-size", "3"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    lines = captured.out.splitlines()
    assert lines[0].split()[:2] == ["subset", "count"] and "AUC(paper" in lines[0]
    assert [ln.split()[0] for ln in lines[1:4]] == ["common", "challenging", "full"]
    assert any(ln.startswith("protocol: crop=gt") and "inter-ocular" in ln for ln in lines)
    assert (out / "metrics.json").is_file() and len(list((out / "pts").glob("*.pts"))) == 3


def test_cli_bad_model_path(w300, tmp_path, capsys):
    code = main(["evaluate", "--model", str(tmp_path / "nope.pt"), "--dataset", "300w", "--root", str(w300),
                 "--split", "full", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and "nope.pt" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()


def test_cli_box_protocol_without_calibration(w300, model_file, tmp_path, capsys):
    code = main(["evaluate", "--model", str(model_file), "--dataset", "300w", "--root", str(w300),
                 "--split", "full", "--out", str(tmp_path / "o"), "--protocol", "box"])
    assert code == 2 and "calibration" in capsys.readouterr().err


def test_resolve_model(tmp_path, model_file, monkeypatch):
    assert resolve_model(model_file) == model_file
    with pytest.raises(ModelError, match="shipped: kd-student-300w"):
        resolve_model("student-300w")
    weights = tmp_path / "weights"
    weights.mkdir()
    (weights / "student-300w.pt").write_bytes(b"x")
    monkeypatch.setattr("kdlandmarks.models.zoo.WEIGHTS_DIR", weights)
    monkeypatch.setitem(SHIPPED, "student-300w", "a test model")
    assert resolve_model("student-300w") == weights / "student-300w.pt"
    monkeypatch.setitem(SHIPPED, "broken", "a test model without files")
    with pytest.raises(ModelError, match="missing"):
        resolve_model("broken")


def test_skip_bad_image(w300, model_file, tmp_path, capsys):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(w300, root)
    (root / "ibug" / "i1.jpg").write_bytes(b"not a jpeg")
    args = ["evaluate", "--model", str(model_file), "--dataset", "300w", "--root", str(root),
            "--split", "full", "--out", str(tmp_path / "o")]
    assert main(args) == 2
    assert "i1.jpg" in capsys.readouterr().err
    report = evaluate_model(model_file, "300w", root, "full", tmp_path / "o",
                            EvaluationOptions(skip_bad=True, progress=False))
    assert report["protocol"]["count"] == 2 and len(report["skipped"]) == 1
    assert list(report["subsets"]) == ["common", "full"]  # challenging is empty once i1 is skipped
