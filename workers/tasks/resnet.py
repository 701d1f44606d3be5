"""ResNets whose module names and state-dict keys are torchvision's, so weights saved from torchvision load
here unchanged (and the other way round) without torchvision installed.

:func:`build_resnet` uses torchvision itself when it can be imported, which makes every architecture
torchvision knows available; without it, ResNet-18 and ResNet-34 are built by this module.
"""

from __future__ import annotations

from typing import Any, cast

import torch
from torch import nn

# Blocks per stage (layer1..layer4) of the BasicBlock ResNets.
BASIC_BLOCK_STAGES: dict[str, tuple[int, int, int, int]] = {
    "resnet18": (2, 2, 2, 2),
    "resnet34": (3, 4, 6, 3),
}
STAGE_WIDTHS = (64, 128, 256, 512)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut; the first convolution (and a 1x1 convolution on the shortcut,
    ``downsample``) strides when the block halves the resolution or changes the width."""

    def __init__(self, in_channels: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(channels, channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_channels != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False), nn.BatchNorm2d(channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return cast(torch.Tensor, self.relu(out + shortcut))


class ResNet(nn.Module):
    """The ImageNet ResNet layout: a strided 7x7 stem and max-pool, four stages of blocks (the last three
    halve the resolution), global average pooling and a linear classifier ``fc``."""

    def __init__(self, blocks_per_stage: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = _stage(64, STAGE_WIDTHS[0], blocks_per_stage[0], stride=1)
        self.layer2 = _stage(STAGE_WIDTHS[0], STAGE_WIDTHS[1], blocks_per_stage[1], stride=2)
        self.layer3 = _stage(STAGE_WIDTHS[1], STAGE_WIDTHS[2], blocks_per_stage[2], stride=2)
        self.layer4 = _stage(STAGE_WIDTHS[2], STAGE_WIDTHS[3], blocks_per_stage[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(STAGE_WIDTHS[3], num_classes)
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return cast(torch.Tensor, self.fc(torch.flatten(self.avgpool(x), 1)))


def _stage(in_channels: int, channels: int, blocks: int, stride: int) -> nn.Sequential:
    first = BasicBlock(in_channels, channels, stride)
    return nn.Sequential(first, *(BasicBlock(channels, channels, 1) for _ in range(blocks - 1)))


def _initialise(model: nn.Module) -> None:
    """He-normal convolutions (fan-out), unit-scale batch norms; ``fc`` keeps PyTorch's default."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


def build_resnet(architecture: str, num_classes: int) -> nn.Module:
    """A randomly initialised ``architecture`` with ``num_classes`` outputs, its state-dict keys those of
    ``torchvision.models.<architecture>``. ``ValueError`` for an architecture nobody here can build."""
    models = _torchvision_models()
    if models is not None:
        if architecture not in models.list_models():
            raise ValueError(f"torchvision has no architecture {architecture!r}")
        return cast(nn.Module, models.get_model(architecture, weights=None, num_classes=num_classes))
    if architecture not in BASIC_BLOCK_STAGES:
        known = ", ".join(sorted(BASIC_BLOCK_STAGES))
        raise ValueError(
            f"architecture {architecture!r} needs torchvision, which is not installed; without it: {known}"
        )
    return ResNet(BASIC_BLOCK_STAGES[architecture], num_classes)


def _torchvision_models() -> Any:
    """``torchvision.models``, or None when torchvision is missing or unusable."""
    try:
        import torchvision.models
    # A torchvision wheel built for another torch fails at import with a RuntimeError ("operator
    # torchvision::nms does not exist"); the ResNets here are the same networks, so fall back to them.
    except (ImportError, RuntimeError):
        return None
    return torchvision.models
