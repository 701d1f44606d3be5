"""The quadratic toy task: minimise f(x) = (x - 3)^2 from x = 0 with the sampled optimizer.

There is no data and no model to load, so a trial takes milliseconds: it is the task for trying hps out
and for testing the service end to end. The optimizers and learning rates still show their character
(plain SGD with lr 0.1 converges within a few dozen steps, lr 1.5 overshoots further every step and
diverges), so a search over them has a real answer: the best ``val_loss`` is 0, at x = 3.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import torch
from torch import nn

from hps.catalog.tasks import DatasetEntry, ModelEntry
from hps.workers.tasks.base import Split

START = 0.0
TARGET = 3.0
# Far more placeholder batches than any sensible epoch: the training loop's ``max_steps_per_epoch``
# (20 by default for this task) is what sets the length of an epoch here, not this number.
BATCHES_PER_EPOCH = 1000


class QuadraticModel(nn.Module):
    """One scalar parameter ``x``; calling the model gives f(x) = (x - 3)^2 as a 0-d tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.tensor(START))

    def forward(self) -> torch.Tensor:
        return (self.x - TARGET) ** 2


def make_task(model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path) -> QuadraticTask:
    """The quadratic task. It has no model or dataset (the registry passes None for both) and caches
    nothing, so all three arguments are ignored."""
    return QuadraticTask()


class QuadraticTask:
    """f(x) = (x - 3)^2 as a :class:`~hps.workers.tasks.base.Task`: batches are placeholders (None) and both
    splits evaluate the same f(x), so ``val_loss`` is simply the objective."""

    def fresh_model(self, device: torch.device, seed: int) -> nn.Module:
        """A new :class:`QuadraticModel` at x = 0 on ``device``, in training mode. ``seed`` is unused:
        every trial starts from the same point so that only the optimizer makes a difference."""
        return QuadraticModel().to(device).train()

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[None]:
        """:data:`BATCHES_PER_EPOCH` placeholders (None), whatever ``batch_size``; nothing is shuffled,
        so ``generator`` is left untouched."""
        for _ in range(BATCHES_PER_EPOCH):
            yield None

    def loss(self, model: nn.Module, batch: None) -> torch.Tensor:
        """f(x) for the model's x: a 0-d tensor that requires grad."""
        return cast(torch.Tensor, model())

    def evaluate(
        self, model: nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """``{"loss": f(x)}``, the same for both splits, computed without gradients."""
        with torch.no_grad():
            return {"loss": float(cast(torch.Tensor, model()))}
