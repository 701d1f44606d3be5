"""The registry: which tasks, models and datasets exist, by name.

Tasks are code, published through the ``hps.tasks`` entry-point group. Models and datasets are files on
the machines that run them, registered by the operator in a YAML file (``HPS_REGISTRY``)::

    models:
      my-bert: {task: text-classification, path: /models/bert-base, description: "BERT base",
                family: transformer, trainable_params: 109483778}
    datasets:
      tickets:
        task: text-classification
        path: /data/tickets.csv
        options: {text_column: body, label_column: label}

Relative paths are relative to the file. The service validates study requests against the registry; the
workers resolve names to files with it. Requests only ever carry names (no paths, URLs or import strings).
Importing this module does not import torch.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hps.catalog.builtins import builtin_datasets, builtin_models
from hps.catalog.families import FAMILIES
from hps.catalog.tasks import DatasetEntry, ModelEntry, TaskInfo

ENTRY_POINT_GROUP = "hps.tasks"
Entry = TypeVar("Entry", ModelEntry, DatasetEntry)
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class RegistryError(Exception):
    """The registry file or an entry point is wrong; the message says which entry and why."""


class UnknownName(KeyError):
    """A request named a task, model or dataset nobody registered."""

    def __init__(self, kind: str, name: str, known: list[str]) -> None:
        listing = ", ".join(sorted(known)) or "none"
        super().__init__(f"no {kind} named {name!r} is registered (registered: {listing})")
        self.kind = kind
        self.message = str(self.args[0])


class _FileEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    task: str
    path: str | None = None
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    family: str | None = None
    trainable_params: int | None = Field(default=None, ge=1)


class _RegistryFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    models: dict[str, _FileEntry] = Field(default_factory=dict)
    datasets: dict[str, _FileEntry] = Field(default_factory=dict)


@dataclass(frozen=True)
class ResolvedTask:
    """A study's task with every default applied: what a worker needs to run a trial."""

    info: TaskInfo
    model: ModelEntry | None
    dataset: DatasetEntry | None
    epochs: int
    batch_size: int
    max_steps_per_epoch: int | None

    @property
    def family(self) -> str:
        """The model family whose learning rates a preset is fitted to (``hps.catalog.families``)."""
        if self.model is not None and self.model.family is not None:
            return self.model.family
        return self.info.family

    @property
    def trainable_params(self) -> int | None:
        """How many params a trial trains (None: unknown), as the model entry or the task declares it."""
        if self.model is not None:
            return self.model.trainable_params
        return self.info.trainable_params

    def describe(self) -> str:
        """The task and model, for messages: ``task digits, model digits-cnn``."""
        model = "" if self.model is None else f", model {self.model.name}"
        return f"task {self.info.name}{model}"


@dataclass(frozen=True)
class Registry:
    """Every registered task, model and dataset."""

    tasks: Mapping[str, TaskInfo]
    models: Mapping[str, ModelEntry]
    datasets: Mapping[str, DatasetEntry]

    def task(self, name: str) -> TaskInfo:
        """The task called ``name``, or :class:`UnknownName`."""
        if name not in self.tasks:
            raise UnknownName("task", name, list(self.tasks))
        return self.tasks[name]

    def resolve(
        self,
        task: str,
        model: str | None = None,
        dataset: str | None = None,
        epochs: int | None = None,
        batch_size: int | None = None,
        max_steps_per_epoch: int | None = None,
    ) -> ResolvedTask:
        """Apply the task's defaults and check that the model and dataset belong to the task."""
        info = self.task(task)
        model_entry = self._entry(self.models, "model", model or info.default_model, info.name)
        dataset_entry = self._entry(self.datasets, "dataset", dataset or info.default_dataset, info.name)
        return ResolvedTask(
            info=info,
            model=model_entry,
            dataset=dataset_entry,
            epochs=epochs or info.default_epochs,
            batch_size=batch_size or info.default_batch_size,
            max_steps_per_epoch=max_steps_per_epoch or info.default_max_steps_per_epoch,
        )

    @staticmethod
    def _entry(entries: Mapping[str, Entry], kind: str, name: str | None, task: str) -> Entry | None:
        if name is None:
            return None
        if name not in entries:
            raise UnknownName(kind, name, [n for n, e in entries.items() if e.task == task])
        entry = entries[name]
        if entry.task != task:
            fitting = [n for n, e in entries.items() if e.task == task]
            raise UnknownName(kind, f"{name} (it belongs to task {entry.task})", fitting)
        return entry


def load_registry(config: Path | None = None) -> Registry:
    """Built-ins, entry points, then the operator's file (which may not redefine a name)."""
    tasks = _entry_point_tasks()
    models = {m.name: m for m in builtin_models()}
    datasets = {d.name: d for d in builtin_datasets()}
    if config is not None:
        parsed = _read_file(config)
        base = config.resolve().parent
        for kind, target, found in (("model", models, parsed.models), ("dataset", datasets, parsed.datasets)):
            for name, entry in found.items():
                target[name] = _file_entry(kind, name, entry, base, tasks, target)  # type: ignore[assignment]
    return Registry(tasks=tasks, models=models, datasets=datasets)


def _entry_point_tasks() -> dict[str, TaskInfo]:
    tasks: dict[str, TaskInfo] = {}
    for point in entry_points(group=ENTRY_POINT_GROUP):
        info = point.load()
        if not isinstance(info, TaskInfo):
            raise RegistryError(f"entry point {point.name!r} in {ENTRY_POINT_GROUP} is not a TaskInfo")
        if info.name != point.name:
            raise RegistryError(f"entry point {point.name!r} names task {info.name!r}; they must agree")
        tasks[info.name] = info
    return tasks


def _read_file(config: Path) -> _RegistryFile:
    try:
        raw = yaml.safe_load(config.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise RegistryError(f"cannot read registry {config}: {exc}") from None
    try:
        return _RegistryFile.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise RegistryError(f"registry {config}: {where}: {first['msg']}") from None


def _file_entry(
    kind: str,
    name: str,
    entry: _FileEntry,
    base: Path,
    tasks: Mapping[str, TaskInfo],
    existing: Mapping[str, ModelEntry | DatasetEntry],
) -> ModelEntry | DatasetEntry:
    if not re.match(NAME_PATTERN, name):
        raise RegistryError(f"{kind} name {name!r} must match {NAME_PATTERN}")
    if name in existing:
        raise RegistryError(f"{kind} {name!r} is already registered (built in); pick another name")
    if entry.task not in tasks:
        raise RegistryError(f"{kind} {name!r} names task {entry.task!r}, which is not registered")
    if entry.trainable_params is not None and kind != "model":
        raise RegistryError(f"{kind} {name!r}: trainable_params is for models")
    if entry.family is not None and (kind != "model" or entry.family not in FAMILIES):
        known = ", ".join(FAMILIES)
        raise RegistryError(f"{kind} {name!r}: family is for models, one of {known}; got {entry.family!r}")
    path = None if entry.path is None else (base / entry.path).resolve()
    made: ModelEntry | DatasetEntry
    if kind == "model":
        made = ModelEntry(
            name=name,
            task=entry.task,
            description=entry.description,
            options=entry.options,
            family=entry.family,
            trainable_params=entry.trainable_params,
        )
    else:
        made = DatasetEntry(name=name, task=entry.task, description=entry.description, options=entry.options)
    return replace(made, path=path)
