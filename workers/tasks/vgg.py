"""VGG networks whose module names and state-dict keys are torchvision's (``torchvision.models.vgg11_bn`` and
kin), so weights saved from torchvision load here unchanged, and the other way round, without torchvision.

The layout: ``features``, a sequence of 3x3 convolutions (each followed by batch norm in the ``_bn``
variants) and ReLUs with a 2x2 max-pool after each of the five stages; ``avgpool``, an adaptive average pool
to 7x7; ``classifier``, Linear-ReLU-Dropout twice and the last Linear (``classifier.6``, the head a
fine-tuning run replaces). torchvision's classifier is 4096 wide; ``classifier_width`` may narrow it (the
keys stay the same, only the shapes of ``classifier.0``, ``classifier.3`` and ``classifier.6.weight``
change), which hps's own small built-in model does: at 32x32 pixels a 4096-wide classifier would hold
most of the 130 M parameters and most of the time of a trial. Built here even when torchvision is installed,
because torchvision fixes the classifier's width; the networks are the same.
"""

from __future__ import annotations

from typing import cast

import torch
from torch import nn

# Output channels of each 3x3 convolution, "M" a max-pool: torchvision's configurations A, B, D and E.
STAGES: dict[str, tuple[int | str, ...]] = {
    name: tuple(int(item) if item.isdigit() else item for item in layout.split())
    for name, layout in {
        "vgg11": "64 M 128 M 256 256 M 512 512 M 512 512 M",
        "vgg13": "64 64 M 128 128 M 256 256 M 512 512 M 512 512 M",
        "vgg16": "64 64 M 128 128 M 256 256 256 M 512 512 512 M 512 512 512 M",
        "vgg19": "64 64 M 128 128 M 256 256 256 256 M 512 512 512 512 M 512 512 512 512 M",
    }.items()
}
ARCHITECTURES = tuple(sorted([*STAGES, *(f"{name}_bn" for name in STAGES)]))
TORCHVISION_CLASSIFIER_WIDTH = 4096
POOLED = 7  # the adaptive pool's output side: the classifier sees 512 * 7 * 7 features
HEAD = "classifier.6"


class VGG(nn.Module):
    """``features`` -> ``avgpool`` (7x7) -> flatten -> ``classifier`` (the last layer is the head)."""

    def __init__(
        self,
        stages: tuple[int | str, ...],
        batch_norm: bool,
        num_classes: int,
        classifier_width: int = TORCHVISION_CLASSIFIER_WIDTH,
        dropout: float = 0.5,
    ) -> None:
        super().__init__()
        self.features = _features(stages, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((POOLED, POOLED))
        self.classifier = nn.Sequential(
            nn.Linear(512 * POOLED * POOLED, classifier_width),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(classifier_width, classifier_width),
            nn.ReLU(True),
            nn.Dropout(p=dropout),
            nn.Linear(classifier_width, num_classes),
        )
        _initialise(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.avgpool(self.features(x)), 1)
        return cast(torch.Tensor, self.classifier(x))


def _features(stages: tuple[int | str, ...], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = 3
    for stage in stages:
        if stage == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            continue
        width = int(stage)
        layers.append(nn.Conv2d(channels, width, kernel_size=3, padding=1))
        if batch_norm:
            layers.append(nn.BatchNorm2d(width))
        layers.append(nn.ReLU(inplace=True))
        channels = width
    return nn.Sequential(*layers)


def _initialise(model: nn.Module) -> None:
    """torchvision's: He-normal convolutions (fan-out), unit-scale batch norms, N(0, 0.01) linear layers,
    zero biases."""
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0.0, 0.01)
            nn.init.zeros_(module.bias)


def is_vgg(architecture: str) -> bool:
    """Whether ``architecture`` names a VGG (``vgg11``, ``vgg16_bn``, ...), known or not."""
    return architecture.startswith("vgg")


def build_vgg(
    architecture: str, num_classes: int, classifier_width: int = TORCHVISION_CLASSIFIER_WIDTH
) -> nn.Module:
    """A randomly initialised ``architecture`` (one of :data:`ARCHITECTURES`) with ``num_classes`` outputs
    and torchvision's state-dict keys. ``ValueError`` for any other name."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"no VGG architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
    name, _, suffix = architecture.partition("_")
    return VGG(
        STAGES[name], batch_norm=suffix == "bn", num_classes=num_classes, classifier_width=classifier_width
    )
