"""The contract between the training loop and a task.

A task is registered by name (entry point group ``hps.tasks``) as a :class:`~hps.catalog.tasks.TaskInfo`:
pure metadata the service can read without importing torch. Workers import ``TaskInfo.implementation``, a
factory that builds a :class:`Task` for one registered model and dataset; the worker keeps that object for
as long as it runs, so pretrained weights and data are loaded once, and every trial starts from
:meth:`Task.fresh_model`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from hps.catalog.tasks import DatasetEntry, ModelEntry

if TYPE_CHECKING:
    import torch

Split = Literal["train", "val", "test"]


class Batch(Protocol):
    """Whatever a task's batches are; only the task itself looks inside."""


class Task(Protocol):
    """A task bound to one model and one dataset, loaded once per worker process."""

    def fresh_model(self, device: torch.device, seed: int) -> torch.nn.Module:
        """A new copy of the pretrained model (any new head initialised from ``seed``) on ``device``,
        in training mode. Never the same object twice."""
        ...

    def train_batches(
        self, batch_size: int, generator: torch.Generator, device: torch.device
    ) -> Iterator[Any]:
        """One epoch of shuffled training batches (shuffled with ``generator``), already on ``device``."""
        ...

    def loss(self, model: torch.nn.Module, batch: Any) -> torch.Tensor:
        """The mean training loss of ``model`` on ``batch``: a scalar tensor that requires grad."""
        ...

    def evaluate(
        self, model: torch.nn.Module, split: Split, batch_size: int, device: torch.device
    ) -> dict[str, float]:
        """Metrics of ``model`` on the whole split, e.g. ``{"accuracy": 0.93, "loss": 0.21}``, computed
        without gradients. The keys, prefixed ``val_``, are ``TaskInfo.metrics``."""
        ...


@runtime_checkable
class HeldOutTask(Task, Protocol):
    """A task whose dataset may also hold a test split: evaluated once, at the end of a complete trial,
    and kept out of everything the search sees (the sampler and the pruner get validation metrics only)."""

    def has_test_split(self) -> bool:
        """Whether ``evaluate(model, "test", ...)`` has rows to evaluate."""
        ...


class TaskFactory(Protocol):
    """What ``TaskInfo.implementation`` names: builds a task for a model and a dataset."""

    def __call__(self, model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path) -> Task: ...
