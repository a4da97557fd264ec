"""The shipped models: files and cards present, torch and ONNX forms agree, real accuracy on bundled faces."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from kdlandmarks.cli import main
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.errors import ModelError
from kdlandmarks.models.zoo import (DEFAULT_MODEL, SHIPPED, TORCH_ONLY, card_metadata, has_onnx, model_card, resolve_model,
                                   shipped_names)

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
        assert f"---\n# Model card: `{name}`" in card and "Licence" in card
        assert "{" not in SHIPPED[name]  # every figure filled in


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_shipped_model_is_accurate_on_bundled_test_faces(name, tmp_path):
    from kdlandmarks.evaluation.protocols import EvaluationOptions, evaluate_model

    metrics = evaluate_model(name, "300w", sample_root(), "lfpw/testset", tmp_path, EvaluationOptions(progress=False))
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
    by_onnx = LandmarkDetector(f"{name}:fp32", detector=lambda im: []).detect(image, boxes=box)
    assert np.abs(by_torch[0].landmarks - by_onnx[0].landmarks).max() < 0.05  # pixels
    by_int8 = LandmarkDetector(f"{name}:int8", detector=lambda im: []).detect(image, boxes=box)
    assert np.abs(by_torch[0].landmarks - by_int8[0].landmarks).mean() < 1.0  # pixels, on a ~200 px face


@pytest.mark.parametrize("kind", ["tough", "tolerant"])
def test_shipped_teachers_can_teach_the_shipped_students(kind):
    """A shipped teacher passes what `train student --tough kd-teacher-300w-tough` checks against the shipped
    students' recipe and store (points, output space, crop; a teacher may take a larger input), and runs as a
    detector on the torch backend by default."""
    from types import SimpleNamespace

    from kdlandmarks.inference.detector import LandmarkDetector
    from kdlandmarks.models.backbones import load_model
    from kdlandmarks.training.config import load_recipe
    from kdlandmarks.training.run import _check_teacher

    name = f"kd-teacher-300w-{kind}"
    assert name in TORCH_ONLY
    _, teacher = load_model(resolve_model(name))
    _, student = load_model(resolve_model("kd-student-300w"))
    assert teacher.metadata["role"] == "teacher" and teacher.metadata["kind"] == kind
    assert teacher.scheme == student.scheme
    store = SimpleNamespace(num_points=student.num_points, margin=student.crop_margin)
    recipe = load_recipe("300w-cpu", [f"input_size={student.input_size}"])
    path, input_size = _check_teacher(name, kind, store, recipe)
    assert path == resolve_model(name) and input_size == teacher.input_size
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
    card = capsys.readouterr().out
    assert card.startswith("---\n") and f"\n---\n# Model card: `{DEFAULT_MODEL}`" in card  # metadata, then the card


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


def test_weights_missing_from_a_wheel_say_where_they_are(tmp_path, monkeypatch, capsys):
    """A wheel leaves the PyTorch weights out (they come with the source checkout): the students still run
    (ONNX), asking for a .pt by name is a one-line error that says where to get it, and the listing marks the
    teachers, which have nothing else."""
    import shutil

    from kdlandmarks.models import zoo

    for path in zoo.WEIGHTS_DIR.iterdir():
        if path.suffix != ".pt":
            shutil.copy(path, tmp_path / path.name)
    monkeypatch.setattr(zoo, "WEIGHTS_DIR", tmp_path)
    assert zoo.installed_names() == sorted(set(SHIPPED) - zoo.CHECKOUT_ONLY)
    assert resolve_model(DEFAULT_MODEL, backend="onnx").parent == tmp_path
    for name in ("kd-teacher-300w-tough", DEFAULT_MODEL):
        with pytest.raises(ModelError, match="source checkout, not the wheel"):
            resolve_model(name)
    assert main(["train", "student", "--loss", "kd", "--tough", "kd-teacher-300w-tough",
                 "--tolerant", "kd-teacher-300w-tolerant", "--store", str(tmp_path / "no-store"),
                 "--out", str(tmp_path / "run")]) == 2
    assert main(["models"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert [line for line in listing if "not in this installation" in line] == \
        [line for line in listing if line.startswith("kd-teacher-")]


# The scores of a shipped model are written once, in its card's metadata block; everything else that shows
# them is read from it (`kdlandmarks models`) or checked against it here (the card's own scores table, and
# the README's results table).
REPO = Path(__file__).resolve().parents[1]
NME_COLUMN = "LFPW NME"  # the header cell of the results table's LFPW test NME column (README.md or docs/)


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _number(cell: str) -> float:
    return float(cell.replace("*", "").strip())


def documented_nme(text: str) -> dict[str, list[float]]:
    """{model name: LFPW NMEs} from every Markdown table with a NME_COLUMN header cell whose first cell names
    a shipped model in backticks."""
    found: dict[str, list[float]] = {}
    column = None
    for line in text.splitlines():
        if not line.startswith("|"):
            column = None
            continue
        cells = _cells(line)
        if NME_COLUMN in cells:
            column = cells.index(NME_COLUMN)
        elif column is not None and column < len(cells):
            for name in set(re.findall(r"`([^`]+)`", cells[0])) & set(SHIPPED):
                found.setdefault(name, []).append(_number(cells[column]))
    return found


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_the_card_table_agrees_with_the_card_metadata(name):
    card = model_card(name).read_text(encoding="utf-8")
    headline = [line for line in card.splitlines() if line.startswith(f"| **{name}** |")]
    assert len(headline) == 1, "the card's scores table has one bold row for the model itself"
    assert _number(_cells(headline[0])[1]) == pytest.approx(float(card_metadata(name)["lfpw_nme"]), abs=0.005)


def test_the_readme_results_table_agrees_with_the_cards():
    texts = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    documented: dict[str, list[float]] = {}
    for path in texts:
        for name, values in documented_nme(path.read_text(encoding="utf-8")).items():
            documented.setdefault(name, []).extend(values)
    # every student has a row; a teacher's row is checked once it names its model like the students' rows
    assert set(SHIPPED) - TORCH_ONLY <= set(documented)
    wrong = {name: values for name, values in documented.items()
             if any(abs(v - float(card_metadata(name)["lfpw_nme"])) > 0.005 for v in values)}
    assert wrong == {}


def test_the_table_reader_finds_rows_and_mismatches():
    table = (f"| model | val NME | {NME_COLUMN} |\n|---|---|---|\n| **KD** (`kd-student-300w`) | 5.11 | **4.69** |\n"
             f"| other (`not-shipped`) | 1 | 2 |\n\ntext `kd-student-300w-lite` 9.99\n")
    assert documented_nme(table) == {"kd-student-300w": [4.69]}


def test_models_lists_the_card_metadata(capsys):
    assert main(["models"]) == 0
    listing = capsys.readouterr().out
    for name in shipped_names():
        line = next(line for line in listing.splitlines() if line.startswith(name + " "))
        assert f"LFPW test NME {float(card_metadata(name)['lfpw_nme']):.2f} %" in line
        assert str(card_metadata(name)["runtime"]) in line


def test_students_ship_int8_exports_and_the_lite_runs_int8_by_default():
    from kdlandmarks.inference.detector import LandmarkDetector
    from kdlandmarks.inference.runtime import OnnxRegressor

    lite = "kd-student-300w-lite"
    assert resolve_model(lite, backend="onnx").name == f"{lite}.int8.onnx"
    assert resolve_model(f"{lite}:fp32", backend="onnx").name == f"{lite}.onnx"
    assert resolve_model("kd-student-300w", backend="onnx").name == "kd-student-300w.onnx"
    assert resolve_model("kd-student-300w:int8", backend="onnx").name == "kd-student-300w.int8.onnx"
    for name in ("kd-student-300w", lite):
        fp32 = OnnxRegressor(resolve_model(f"{name}:fp32", backend="onnx"))
        int8 = OnnxRegressor(resolve_model(f"{name}:int8", backend="onnx"))
        assert fp32.quantization is None and int8.quantization["weights"] == "int8"
        assert int8.info == fp32.info
    with pytest.raises(ModelError, match="precision"):
        resolve_model(f"{lite}:int8")  # the torch backend has one precision
    assert LandmarkDetector().quantization is not None and LandmarkDetector(f"{lite}:fp32").quantization is None
    assert has_onnx(f"{lite}:fp32") and not has_onnx("kd-teacher-300w-tough:int8")
