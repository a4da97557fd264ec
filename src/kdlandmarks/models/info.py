"""What a model file says about its network and how it must be fed: torch-free, so ONNX inference
can read it without importing PyTorch."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from kdlandmarks.data.crop import DEFAULT_MARGIN

MODEL_FORMAT = "kdlandmarks-model/1"

# timm backbone name -> the name the README, the model cards and the command output give it
ARCH_LABELS: dict[str, str] = {
    "efficientnet_b3": "EfficientNet-B3",
    "resnet18": "ResNet-18",
    "mobilenetv2_100": "MobileNetV2-1.0",
    "mobilenetv2_050": "MobileNetV2-0.5",
}


def arch_label(arch: str) -> str:
    """A backbone's display name ("resnet18" -> "ResNet-18"); other timm names as they are."""
    return ARCH_LABELS.get(arch, arch)


@dataclass
class ModelInfo:
    """What a model file says about its network and how it must be fed."""

    arch: str
    num_points: int
    input_size: int
    dropout: float = 0.0
    space: str = "normalized"
    scheme: str = "300w"
    crop_margin: float = DEFAULT_MARGIN
    # Box-to-crop calibration per detector name: {"dx":..,"dy":..,"scale":..}
    box_calibrations: dict[str, dict[str, float]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
