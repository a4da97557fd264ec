"""Bad input through the command line: one line on stderr and exit 2, never a traceback (review regressions)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kdlandmarks.cli import main
from kdlandmarks.cli.predict import collect_inputs
from kdlandmarks.data.datasets import sample_root
from kdlandmarks.errors import ConfigError, DataError
from kdlandmarks.evaluation.report import load_evaluation
from kdlandmarks.training.config import load_recipe


def run_cli(capsys, *argv: str) -> str:
    """The one stderr line of a command that must fail with exit 2."""
    capsys.readouterr()
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("kdlandmarks: error: "), err
    return lines[0]


def metrics(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    subset = {"count": 1, "nme": 5.0, "failure_rate": 0.0, "auc": 0.5, "auc_paper_code": 0.7, "threshold": 0.1}
    (path / "metrics.json").write_text(json.dumps({"subsets": {"test": subset}, "per_image": [{"nme": 0.05}]}))
    return path


def test_out_path_taken_by_a_file_is_one_line(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("mine")
    line = run_cli(capsys, "report", "--eval", f"a={metrics(tmp_path / 'ev')}", "--out", str(taken))
    assert "taken" in line
    assert taken.read_text() == "mine"


@pytest.mark.parametrize("content,needle", [
    (json.dumps({"a": 1}), "not a metrics.json"),
    (json.dumps({"subsets": {}, "per_image": []}), "not a metrics.json"),
    (b"\xff\xfe\x00binary", "not a JSON text file"),
])
def test_report_refuses_files_that_are_not_evaluations(tmp_path, capsys, content, needle):
    bad = tmp_path / "m.json"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(DataError, match=needle):
        load_evaluation(bad)
    assert needle in run_cli(capsys, "report", "--eval", f"a={bad}", "--out", str(tmp_path / "rep"))


def test_report_refuses_a_label_given_twice(tmp_path, capsys):
    ev = metrics(tmp_path / "ev")
    line = run_cli(capsys, "report", "--eval", f"a={ev}", "--eval", f"a={ev}", "--out", str(tmp_path / "rep"))
    assert "'a' given twice" in line


@pytest.mark.parametrize("content,override,needle", [
    (b"\xff\xfe\x00binary", None, "not a YAML text file"),
    (b"just a string\n", None, "must be a mapping"),
    (None, "teacher.epochs=[1", "invalid YAML value"),
    (None, "space=foo", "space='foo'"),
    (None, "student.epochs=-1", "student.epochs=-1"),
    (None, "data.batch_size=0", "data.batch_size=0"),
])
def test_bad_recipes_are_config_errors(tmp_path, capsys, content, override, needle):
    config = "300w-cpu"
    if content is not None:
        config = str(tmp_path / "r.yaml")
        Path(config).write_bytes(content)
    overrides = [override] if override else []
    with pytest.raises(ConfigError, match=needle.replace("[", r"\[")):
        load_recipe(config, overrides)
    sets = ["--set", override] if override else []
    line = run_cli(capsys, "train", "teacher", "--kind", "tough", "--config", config, *sets,
                   "--out", str(tmp_path / "run"))
    assert needle in line and not (tmp_path / "run").exists()


def test_renamed_stems_never_collide(tmp_path):
    for name in ("x.jpg", "x.png", "x_1.jpg"):
        (tmp_path / name).write_bytes(b"")
    stems = [stem for _, stem, _ in collect_inputs([str(tmp_path)])]
    assert len(set(stems)) == 3 and stems[0] == "x"


def test_box_far_larger_than_the_image_is_refused(tmp_path, capsys):
    """Issue 26: a box thousands of times the image holds no face of it (it gave landmarks around 5e11)."""
    photo = sample_root() / "lfpw" / "testset" / "image_0001.jpg"
    assert main(["predict", str(photo), "--boxes", "0,0,1000000,1000000", "--out", str(tmp_path)]) == 2
    assert "box 0 (0,0,1e+06,1e+06) is more than 10 times the size of the 390x401 image" in capsys.readouterr().err
    assert not (tmp_path / "image_0001.json").exists()


def test_corrupt_video_is_exactly_one_line(tmp_path):
    """FFmpeg's own complaint used to precede the error line; a fresh process, as OpenCV reads its log
    level once per process."""
    bad = tmp_path / "clip.mp4"
    bad.write_bytes(os.urandom(3000))
    env = {k: v for k, v in os.environ.items() if k != "OPENCV_FFMPEG_LOGLEVEL"}
    proc = subprocess.run([sys.executable, "-m", "kdlandmarks", "predict", str(bad), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300, env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and "clip.mp4" in lines[0], proc.stderr


def named_metrics(path: Path, nme: list[float]) -> Path:
    """A metrics.json with named per-face scores, as `kdlandmarks evaluate` writes them."""
    path.mkdir(parents=True, exist_ok=True)
    subset = {"count": len(nme), "nme": 100 * float(np.mean(nme)), "failure_rate": 0.0, "auc": 0.5,
              "auc_paper_code": 0.7, "threshold": 0.1}
    faces = [{"name": f"t/face_{i:03d}", "subset": "test", "nme": v} for i, v in enumerate(nme)]
    (path / "metrics.json").write_text(json.dumps({"subsets": {"test": subset}, "per_image": faces}))
    return path


def test_report_pairs_models_face_by_face_against_a_baseline(tmp_path, capsys):
    rng = np.random.default_rng(1)
    base = 0.05 + 0.01 * rng.random(100)
    better = base - 0.004 + 0.001 * rng.standard_normal(100)  # 0.4 NME points better, face by face
    same = base[::-1].copy()  # the same scores on other faces: no paired advantage at all
    evals = [f"base={named_metrics(tmp_path / 'b', base.tolist())}",
             f"better={named_metrics(tmp_path / 'm', better.tolist())}"]
    assert main(["report", *sum((["--eval", e] for e in evals), []), "--baseline", "base",
                 "--out", str(tmp_path / "rep")]) == 0
    table = (tmp_path / "rep" / "table.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| better |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    mean, ci = cells[7].split(" ", 1)
    low, high = (float(v) for v in ci.strip("[]").split(", "))
    assert low < float(mean) < high < 0 and abs(float(mean) + 0.4) < 0.05
    assert abs(float(cells[8]) - better.mean() / base.mean()) < 1e-3
    assert cells[10].startswith("≤")  # no sign flip of 10,000 reaches a gap this consistent
    assert "| base |" in table and "baseline" in table

    from kdlandmarks.evaluation.report import paired_difference
    identical = paired_difference(base, base)
    assert identical["mean_difference"] == 0 and identical["p_value"] == 1.0
    shuffled = paired_difference(same, base)
    assert shuffled["ci95_low"] < 0 < shuffled["ci95_high"] and shuffled["p_value"] > 0.05


def test_report_baseline_must_be_a_label_and_faces_must_match(tmp_path, capsys):
    a = named_metrics(tmp_path / "a", [0.05, 0.06, 0.07])
    b = named_metrics(tmp_path / "b", [0.05, 0.06])
    line = run_cli(capsys, "report", "--eval", f"a={a}", "--eval", f"b={b}", "--baseline", "c",
                   "--out", str(tmp_path / "rep"))
    assert "baseline 'c' is not one of the labels" in line
    line = run_cli(capsys, "report", "--eval", f"a={a}", "--eval", f"b={b}", "--baseline", "a",
                   "--out", str(tmp_path / "rep"))
    assert "scored different faces" in line
    assert not (tmp_path / "rep" / "table.md").exists()


def test_report_pairs_every_scored_face_when_subsets_are_groups(tmp_path):
    """300-W --split full reports common/challenging/full over folders: pairing uses every scored face."""
    from kdlandmarks.evaluation.report import compare
    summary = {"count": 4, "nme": 5.0, "failure_rate": 0.0, "auc": 0.5, "auc_paper_code": 0.7, "threshold": 0.1}
    folders = ["lfpw/testset", "lfpw/testset", "helen/testset", "ibug"]
    for label, nme in (("a", [0.05, 0.06, 0.07, 0.08]), ("b", [0.04, 0.05, 0.06, 0.07])):
        faces = [{"name": f"{f}/img{i}", "subset": f, "nme": v} for i, (f, v) in enumerate(zip(folders, nme))]
        (tmp_path / label).mkdir()
        (tmp_path / label / "metrics.json").write_text(json.dumps(
            {"subsets": {"common": summary, "full": summary}, "per_image": faces}))
    table = compare({"a": tmp_path / "a", "b": tmp_path / "b"}, tmp_path / "rep", subset="common", baseline="a")
    assert "| b | common | 4 |" in table and "-1.00 [-1.00, -1.00] | 0.846 | 4 / 0 |" in table
    assert "all 4 faces scored" in table


def test_predict_errors_speak_the_library_and_the_cli_names_its_flags():
    import pytest as _pytest

    from kdlandmarks.apps.predict import RunOptions
    from kdlandmarks.cli import cli_message
    from kdlandmarks.errors import ConfigError

    for options, flag in ((RunOptions(formats="bogus"), "--format 'bogus'"), (RunOptions(boxes="abc"), "--boxes 'abc'"),
                          (RunOptions(batch_size=0), "--batch-size must")):
        with _pytest.raises(ConfigError) as caught:
            options.checked()
        assert "--" not in str(caught.value)  # the library's own terms: formats, boxes, batch_size
        assert cli_message(caught.value).startswith(flag)
