"""What the catalog knows of a task, a model and a dataset: names, metrics, defaults, which optimizers its
workers run and its model family. Pure metadata that the service reads without importing torch; the task's
code is named by ``TaskInfo.implementation`` and imported by workers only."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from hps.catalog.trial_params import OPTIMIZERS

Direction = Literal["minimize", "maximize"]
# Newton's cost grows with n² memory and n Hessian-vector products a step for n trainable params: about
# 100 MB and seconds a step on a CPU at this size.
DEFAULT_MAX_NEWTON_PARAMS = 5_000


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
    # The model family of its models unless a model names its own (``hps.catalog.families``): which
    # learning rates a study's preset is fitted to.
    family: str = "small-network"
    # The most trainable params a model may have for its workers to run ``newton`` on it (exact Hessian).
    max_newton_params: int = DEFAULT_MAX_NEWTON_PARAMS
    # Trainable params of the task's model when it has no model entries (a model entry says its own).
    trainable_params: int | None = None


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
    # How many params a trial trains (any new head included, sized for the default dataset), when known:
    # decides whether ``newton`` may run on it.
    trainable_params: int | None = None


@dataclass(frozen=True)
class DatasetEntry:
    """A dataset the operator registered (or hps ships or makes)."""

    name: str
    task: str
    description: str = ""
    path: Path | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
