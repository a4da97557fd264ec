"""`kdlandmarks bench`: its options, and the pipeline rows it measures (tiny repeats; no timing asserted)."""
import argparse

import numpy as np
import pytest

from kdlandmarks.apps.bench import (LARGE_PHOTO, PIPELINE, SMALL_PHOTO, BenchOptions, _Face, format_report, run_bench,
                                    tiled_photo)
from kdlandmarks.cli import bench as bench_cli
from kdlandmarks.cli import main
from kdlandmarks.data.sample_faces import sample_folder
from kdlandmarks.errors import ConfigError
from kdlandmarks.models.zoo import DEFAULT_MODEL, resolve_model


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench_cli.register(parser.add_subparsers())
    return parser.parse_args(["bench", *argv])


def test_bench_options_parse():
    options = bench_cli.bench_options(parse())
    assert options == BenchOptions()  # the CLI's defaults are the library's
    assert options.teacher_arch == "resnet18" and options.pipeline and options.others and options.detector
    options = bench_cli.bench_options(parse("--no-pipeline", "--no-others", "--photos", "faces", "--max-photos", "3",
                                            "--batch", "1,4", "--teacher-arch", "none"))
    assert not options.pipeline and not options.others and options.detector
    assert options.photos == "faces" and options.max_photos == 3 and options.batches == (1, 4)
    with pytest.raises(ConfigError, match="max-photos"):
        bench_cli.bench_options(parse("--max-photos", "0"))


def test_bench_bad_photos_folder_is_one_line(tmp_path, capsys):
    assert main(["bench", "--photos", str(tmp_path / "missing"), "--teacher-arch", "none"]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "photos folder not found" in err[0]


def test_tiled_photo_keeps_the_face_and_its_size():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (60, 80, 3), dtype=np.uint8)
    face = _Face(image, np.array([10.0, 20.0, 50.0, 55.0]))
    photo, boxes = tiled_photo(face, (300, 130), count=4)
    assert photo.shape == (130, 300, 3) and photo.flags.c_contiguous
    assert boxes.tolist() == [[10, 20, 50, 55], [90, 20, 130, 55], [170, 20, 210, 55], [10, 80, 50, 115]]
    np.testing.assert_array_equal(photo[60:120, 0:80], image)


def test_bench_pipeline_rows_appear():
    report = run_bench(BenchOptions(resolve_model(DEFAULT_MODEL, backend="onnx"), teacher_arch=None, batches=(1,),
                                    repeats=1, min_seconds=0, budget_s=0.01, int8=False, flip_test=False,
                                    detector=False, photos=sample_folder(), max_photos=2))
    pipeline = {r.input_size: r for r in report.rows if r.model == PIPELINE}
    assert list(pipeline)[1:] == ["1 face, {}x{} (0.4 MP)".format(*SMALL_PHOTO),
                              "1 face, {}x{} (12 MP)".format(*LARGE_PHOTO), "10 faces, 12 MP"]
    assert list(pipeline)[0].startswith("2 photos, ~")
    assert all(r.ms_per_face > 0 and r.runtime.startswith("onnx") for r in pipeline.values())
    assert pipeline["10 faces, 12 MP"].batch == 10
    peers = {r.model: r for r in report.rows if r.model in ("dlib 68-pt", "mediapipe face mesh")}
    assert set(peers) == {"dlib 68-pt", "mediapipe face mesh"}
    for row in peers.values():  # measured, or skipped with the reason
        assert (row.ms_per_face or 0) > 0 or row.note.startswith("skipped:")
    text = format_report(report)
    assert "12 MP photo <= 2x the same face on 0.4 MP" in text and PIPELINE in text
