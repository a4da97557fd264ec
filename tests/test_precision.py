"""Precision per role: bf16 autocast where it pays (CPUs with AMX- or AVX512-BF16, ordinary convolutions), fp32
elsewhere."""
import os

import numpy as np
import pytest
import torch

from kdlandmarks.errors import ConfigError
from kdlandmarks.models import backbones
from kdlandmarks.training.config import load_recipe
from kdlandmarks.training.run import _hardware


@pytest.mark.parametrize("amx", [True, False])
def test_bf16_pays_only_for_ordinary_convolutions_on_bf16_cpus(monkeypatch, amx):
    monkeypatch.setattr(backbones, "_cpu_has_fast_bf16", lambda: amx)
    assert backbones.bf16_pays("resnet34", "cpu") is amx
    assert backbones.bf16_pays("mobilenetv2_050", "cpu") is False
    assert backbones.bf16_pays("efficientnet_b3", "cpu") is False
    assert backbones.bf16_pays("mobilenetv2_100", "cuda") is True
    with backbones.teacher_autocast("resnet18", "cpu"):
        y = torch.nn.Linear(4, 4)(torch.ones(1, 4))
    assert y.dtype == (torch.bfloat16 if amx else torch.float32)


@pytest.mark.parametrize("flags, fast", [("fpu avx512f avx512_bf16 sse", True), ("fpu amx_bf16 amx_tile", True),
                                         ("fpu avx512f avx512_vnni", False), ("fpu avx512_bf16x", False)])
def test_bf16_instructions_are_read_from_the_cpu_flags(tmp_path, flags, fast):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: some CPU\nflags\t\t: {flags}\n\n")
    assert backbones._cpu_has_fast_bf16(str(cpuinfo)) is fast
    assert backbones._cpu_has_fast_bf16(str(tmp_path / "missing")) is False


def test_cpu_description_names_the_model_cores_and_bf16_instructions(tmp_path, monkeypatch):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Some CPU 9000\nflags\t\t: fpu avx512_bf16 amx_bf16\n\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert backbones.cpu_description(str(cpuinfo)) == "Some CPU 9000, 2 cores, bf16: amx_bf16, avx512_bf16"
    cpuinfo.write_text("processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu avx2\n\n")
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {1}, raising=False)
    assert backbones.cpu_description(str(cpuinfo)) == "Old CPU, 1 core, bf16: none"
    assert backbones.cpu_description(str(tmp_path / "missing")).startswith("unknown CPU, ")


@pytest.mark.parametrize("bf16_cpu", [True, False])
def test_role_precision_overrides_the_trainer_and_cpu_keeps_bf16_only_where_it_pays(monkeypatch, bf16_cpu):
    """Without bf16 instructions the CPU emulates bf16 (a ResNet-34 step 18x slower than fp32), so the recipe's
    bf16-mixed teachers fall back to fp32 there."""
    monkeypatch.setattr(backbones, "_cpu_has_fast_bf16", lambda: bf16_cpu)
    recipe = load_recipe("300w-cpu")
    assert _hardware(recipe, recipe.teacher) == ("cpu", "bf16-mixed" if bf16_cpu else "32-true")  # ResNet teachers
    assert _hardware(recipe, recipe.student) == ("cpu", "32-true")  # depthwise students stay in fp32
    forced = load_recipe("300w-cpu", ["student.precision=bf16-mixed"])
    assert _hardware(forced, forced.student) == ("cpu", "32-true")  # bf16 never pays for depthwise networks
    fp16 = load_recipe("300w-cpu", ["teacher.precision=16-mixed"])
    assert _hardware(fp16, fp16.teacher) == ("cpu", "32-true")  # no fast fp16 kernels on a CPU
    with pytest.raises(ConfigError, match="teacher.precision"):
        load_recipe("300w-cpu", ["teacher.precision=bf17"])


def test_teachers_run_under_bf16_autocast_where_it_pays_and_students_never(monkeypatch, tmp_path):
    """The torch backend runs a teacher (ResNet) under bf16 autocast where bf16_pays, and says so
    (LandmarkDetector.autocast, recorded in evaluate's metrics.json); a student stays at its stored precision."""
    from kdlandmarks.inference.detector import LandmarkDetector
    from kdlandmarks.models.backbones import create_model, save_model
    from kdlandmarks.models.info import ModelInfo

    monkeypatch.setattr(backbones, "_cpu_has_fast_bf16", lambda: True)
    paths = {}
    for role, arch in (("teacher", "resnet18"), ("student", "mobilenetv2_050")):
        torch.manual_seed(0)
        paths[role] = tmp_path / f"{role}.pt"
        save_model(paths[role], create_model(arch, 68), ModelInfo(arch=arch, num_points=68, input_size=32,
                                                                   metadata={"role": role}))
    teacher = LandmarkDetector(paths["teacher"], backend="torch", detector="none")
    student = LandmarkDetector(paths["student"], backend="torch", detector="none")
    assert (teacher.autocast, student.autocast) == ("bf16", None)
    monkeypatch.setattr(backbones, "_cpu_has_fast_bf16", lambda: False)
    assert LandmarkDetector(paths["teacher"], backend="torch", detector="none").autocast is None
    x = torch.rand(2, 3, 32, 32).numpy()
    fp32 = LandmarkDetector(paths["teacher"], backend="torch", detector="none")._run(x)
    bf16 = teacher._run(x)
    assert bf16.dtype == fp32.dtype == np.float32 and not np.array_equal(bf16, fp32)
    assert np.allclose(bf16, fp32, atol=0.05)
