"""The shipped models: files and cards present, torch and ONNX forms agree, real accuracy on bundled faces."""
from __future__ import annotations

import numpy as np
import pytest

from kdlandmarks.cli import main
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.errors import ModelError
from kdlandmarks.models.zoo import DEFAULT_MODEL, SHIPPED, TORCH_ONLY, has_onnx, model_card, resolve_model, shipped_names

# On the 12 bundled LFPW test faces the shipped kd-student-300w scores 4.9 % NME, while predicting
# those faces' own mean shape in each ground-truth crop scores 13.3 %: 8 % separates a model that
# localises from one that only learnt the average face.
MAX_BUNDLED_NME = 8.0


def test_every_shipped_model_has_weights_onnx_card_and_summary():
    assert DEFAULT_MODEL in SHIPPED and has_onnx(DEFAULT_MODEL) and TORCH_ONLY <= set(SHIPPED)
    for name in shipped_names():
        assert resolve_model(name).suffix == ".pt" and resolve_model(name).is_file()
        if has_onnx(name):
            onnx = resolve_model(name, backend="onnx")
            assert onnx.suffix == ".onnx" and onnx.is_file()
        else:
            with pytest.raises(ModelError, match="no ONNX export"):
                resolve_model(name, backend="onnx")
        card = model_card(name).read_text(encoding="utf-8")
        assert card.startswith(f"# Model card: `{name}`") and "Licence" in card
        assert "{" not in SHIPPED[name]  # every figure filled in


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_accurate_on_bundled_test_faces(name, tmp_path):
    from kdlandmarks.evaluation.protocols import evaluate_model

    metrics = evaluate_model(name, "300w", sample_root(), "lfpw/testset", tmp_path, progress=False)
    scores = metrics["subsets"]["lfpw/testset"]
    assert scores["count"] == 12
    assert scores["nme"] < MAX_BUNDLED_NME


@pytest.mark.parametrize("name", sorted(set(SHIPPED) - TORCH_ONLY))
def test_shipped_onnx_matches_shipped_torch_weights(name):
    from kdlandmarks.data.datasets import read_image
    from kdlandmarks.inference.detector import LandmarkDetector

    photo = sorted((sample_root() / "lfpw" / "testset").glob("*.jpg"))[0]
    image = read_image(photo)
    box = [[0.2 * image.shape[1], 0.2 * image.shape[0], 0.8 * image.shape[1], 0.8 * image.shape[0]]]
    by_torch = LandmarkDetector(name, backend="torch", detector=lambda im: []).detect(image, boxes=box)
    by_onnx = LandmarkDetector(name, detector=lambda im: []).detect(image, boxes=box)
    assert np.abs(by_torch[0].landmarks - by_onnx[0].landmarks).max() < 0.05  # pixels


@pytest.mark.parametrize("kind", ["tough", "tolerant"])
def test_shipped_teachers_can_teach_the_shipped_students(kind):
    """A shipped teacher sees the students' inputs and speaks their output space (what `train student
    --tough kd-teacher-300w-tough` checks), and runs as a detector on the torch backend by default."""
    from kdlandmarks.inference.detector import LandmarkDetector
    from kdlandmarks.models.backbones import load_model

    name = f"kd-teacher-300w-{kind}"
    assert name in TORCH_ONLY
    _, teacher = load_model(resolve_model(name))
    _, student = load_model(resolve_model("kd-student-300w"))
    assert teacher.metadata["role"] == "teacher" and teacher.metadata["kind"] == kind
    for field in ("num_points", "input_size", "space", "scheme", "crop_margin"):
        assert getattr(teacher, field) == getattr(student, field), field
    assert LandmarkDetector(name, detector=lambda im: []).backend == "torch"


def test_default_detector_uses_the_default_shipped_model_on_onnxruntime():
    from kdlandmarks.inference.detector import LandmarkDetector

    det = LandmarkDetector(detector=lambda im: [])
    assert det.backend == "onnx" and det.model_path == resolve_model(DEFAULT_MODEL, backend="onnx")


def test_cli_models_lists_and_prints_cards(capsys):
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == shipped_names()
    assert sum("(default)" in line for line in lines) == 1
    assert main(["models", DEFAULT_MODEL]) == 0
    assert capsys.readouterr().out.startswith(f"# Model card: `{DEFAULT_MODEL}`")


def test_cli_models_unknown_name_is_one_line_error(capsys):
    assert main(["models", "no-such-model"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "unknown shipped model 'no-such-model'" in err
    with pytest.raises(ModelError):
        model_card("no-such-model")


def test_the_accuracy_bound_rejects_a_model_that_only_knows_the_mean_face():
    """What MAX_BUNDLED_NME separates from: the bundled test faces' own mean shape, in each gt crop."""
    from kdlandmarks.data.crop import gt_crop
    from kdlandmarks.data.datasets.pts import read_pts
    from kdlandmarks.evaluation.metrics import per_image_nme
    from kdlandmarks.data.schemes import get_scheme

    truths = [read_pts(p) for p in sorted((sample_root() / "lfpw" / "testset").glob("*.pts"))]
    crops = [gt_crop(points, 128) for points in truths]
    mean_shape = np.mean([c.to_crop(points) for c, points in zip(crops, truths)], axis=0)
    predicted = np.stack([c.to_image(mean_shape) for c in crops])
    nme = 100 * per_image_nme(predicted, np.stack(truths), get_scheme("300w")).mean()
    assert nme == pytest.approx(13.26, abs=0.01)
    assert nme > MAX_BUNDLED_NME
