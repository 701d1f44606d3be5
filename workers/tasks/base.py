"""The contract between the training loop and a task.

A task is registered by name (entry point group ``hps.tasks``) as a :class:`TaskInfo`: pure metadata the
service can read without importing torch. Workers import ``TaskInfo.implementation``, a factory that
builds a :class:`Task` for one registered model and dataset; the worker keeps that object for as long as
it runs, so pretrained weights and data are loaded once, and every trial starts from
:meth:`Task.fresh_model`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from workers.trial_params import OPTIMIZERS

if TYPE_CHECKING:
    import torch

Direction = Literal["minimize", "maximize"]
Split = Literal["train", "val"]


@dataclass(frozen=True)
class TaskInfo:
    """What the service knows of a task. ``metrics`` are the names the training loop reports each
    epoch (``val_<name>`` for each name :meth:`Task.evaluate` returns) and which way is better."""

    name: str
    description: str
    metrics: Mapping[str, Direction]
    default_metric: str
    default_model: str | None
    default_dataset: str | None
    default_epochs: int
    default_batch_size: int
    default_max_steps_per_epoch: int | None
    implementation: str  # "package.module:factory", imported by workers only
    # The optimizers its workers run; a study's search space may choose among these only.
    optimizers: tuple[str, ...] = OPTIMIZERS
    # The model family of its models unless a model names its own (``workers.tasks.families``): which
    # learning rates a study's preset is fitted to.
    family: str = "small-network"


@dataclass(frozen=True)
class ModelEntry:
    """A pretrained model the operator registered (or hps ships). ``path`` is a local file or
    directory; ``options`` are the task's own settings (e.g. ``architecture``)."""

    name: str
    task: str
    description: str = ""
    path: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    family: str | None = None  # None: the task's family


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset the operator registered (or hps ships or makes)."""

    name: str
    task: str
    description: str = ""
    path: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)


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


class TaskFactory(Protocol):
    """What ``TaskInfo.implementation`` names: builds a task for a model and a dataset."""

    def __call__(self, model: ModelEntry | None, dataset: DatasetEntry | None, cache_dir: Path) -> Task: ...
