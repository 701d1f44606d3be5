"""Workers on the wire: a claim for work, and the trial it is answered with."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from hps.wire.base import Out
from hps.wire.range_tests import RangeTestWork
from hps.wire.rules import RequestModel
from hps.wire.trials import AskOut

WorkKind = Literal["trial", "lr_range_test"]


class ClaimIn(RequestModel):
    """A worker asking for work: who it is, what it runs on, which tasks it can run."""

    worker_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")
    device: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
    tasks: list[str] = Field(min_length=1, max_length=64)
    kinds: list[WorkKind] = Field(
        default_factory=lambda: list[WorkKind](["trial"]),
        min_length=1,
        max_length=2,
        description="The kinds of work the worker runs; `lr_range_test` only if it says so.",
    )


class ClaimOut(Out):
    """Claimed work and what the worker needs to run it: a trial (``kind`` ``trial``) or one optimizer's
    learning-rate range test (``kind`` ``lr_range_test``)."""

    kind: WorkKind = "trial"
    study_id: int
    trial: AskOut | None = Field(description="The trial, when `kind` is `trial`.")
    lr_range_test: RangeTestWork | None = Field(
        default=None, description="The range test, when `kind` is `lr_range_test`."
    )
    task: dict[str, Any] = Field(description="The study's task with every default filled in.")
    metric: str
    direction: str
    seed: int = Field(description="Seed for the training run (model head, data order).")
