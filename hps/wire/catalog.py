"""The catalog on the wire: search-space presets, registered tasks, models and datasets."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hps.wire.base import Out


class SearchSpaceItem(Out):
    """A preset in the catalog; ``space`` is the JSON a study request may inline."""

    name: str
    space: dict[str, Any]


class SearchSpaceList(Out):
    """The presets."""

    items: list[SearchSpaceItem]


class LearningRatesOut(Out):
    """The learning rates a model family's studies get when they use a preset."""

    low: float = Field(description="The lr range searched (log scale)...")
    high: float = Field(description="...up to here.")
    starts: dict[str, float] = Field(description="The lr each optimizer's start uses.")


class TaskOut(Out):
    """A registered task."""

    name: str
    description: str
    metrics: dict[str, str] = Field(description="What it reports each epoch, and which way is better.")
    default_metric: str
    optimizers: list[str] = Field(
        description="The optimizers its workers run: a search space may choose these."
    )
    max_newton_params: int = Field(
        description="The most trainable params a model may have for optimizer newton (exact Hessian) to run."
    )
    family: str = Field(description="The model family of its models, unless a model names its own.")
    learning_rates: LearningRatesOut | None = Field(
        description="What a study's preset lr range and starts are fitted to; null: the preset's own."
    )
    defaults: dict[str, Any]


class EntryOut(Out):
    """A registered model or dataset (its location stays on the operator's machines)."""

    name: str
    task: str
    description: str
    family: str | None = Field(default=None, description="A model's family; null: its task's.")
    trainable_params: int | None = Field(
        default=None, description="How many params a trial trains, for a model that says (newton's limit)."
    )


class TaskList(Out):
    """Registered tasks."""

    items: list[TaskOut]


class EntryList(Out):
    """Registered models or datasets."""

    items: list[EntryOut]
