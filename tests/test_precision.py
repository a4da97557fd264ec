"""Precision per role: bf16 autocast where it pays (AMX-BF16 CPUs, ordinary convolutions), fp32 elsewhere."""
import pytest
import torch

from kdlandmarks.errors import ConfigError
from kdlandmarks.models import backbones
from kdlandmarks.training.config import load_recipe
from kdlandmarks.training.run import _hardware


@pytest.mark.parametrize("amx", [True, False])
def test_bf16_pays_only_for_ordinary_convolutions_on_amx(monkeypatch, amx):
    monkeypatch.setattr(backbones, "_cpu_has_amx_bf16", lambda: amx)
    assert backbones.bf16_pays("resnet34", "cpu") is amx
    assert backbones.bf16_pays("mobilenetv2_050", "cpu") is False
    assert backbones.bf16_pays("efficientnet_b3", "cpu") is False
    assert backbones.bf16_pays("mobilenetv2_100", "cuda") is True
    with backbones.teacher_autocast("resnet18", "cpu"):
        y = torch.nn.Linear(4, 4)(torch.ones(1, 4))
    assert y.dtype == (torch.bfloat16 if amx else torch.float32)


def test_role_precision_overrides_the_trainer_and_cpu_keeps_only_bf16():
    recipe = load_recipe("300w-cpu")
    assert _hardware(recipe, recipe.teacher) == ("cpu", "bf16-mixed")  # the recipe's teachers
    assert _hardware(recipe, recipe.student) == ("cpu", "32-true")  # depthwise students stay in fp32
    fp16 = load_recipe("300w-cpu", ["teacher.precision=16-mixed"])
    assert _hardware(fp16, fp16.teacher) == ("cpu", "32-true")  # no fast fp16 kernels on a CPU
    with pytest.raises(ConfigError, match="teacher.precision"):
        load_recipe("300w-cpu", ["teacher.precision=bf17"])
