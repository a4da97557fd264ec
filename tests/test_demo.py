"""The README's main job, `kdlandmarks demo`, end to end at an even smaller scale."""
import pytest

from kdlandmarks.cli import main


@pytest.mark.slow
def test_demo_writes_report(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--out", str(out), "--quiet", "--set", "teacher.epochs=1", "--set", "student.epochs=1",
                 "--set", "teacher.arch=mobilenetv2_050", "--set", "input_size=32"])
    assert code == 0
    report = (out / "report.md").read_text()
    # the labels name the architectures the recipe trained (teacher.arch was overridden)
    for part in ("Tough-Teacher (MobileNetV2-0.5)", "Tolerant-Teacher (MobileNetV2-0.5)",
                 "MobileNetV2-1.0, L2 (baseline)", "MobileNetV2-1.0, KD-Loss (student)", "kd-student-300w",
                 "kd-teacher-300w-tough",
                 "comparison/ced.png", "photo_landmarks.jpg"):
        assert part in report
    assert (out / "comparison" / "ced.png").stat().st_size > 0
    assert (out / "photo_landmarks.jpg").stat().st_size > 0
    assert "report:" in capsys.readouterr().out
