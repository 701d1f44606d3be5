"""Workers on the wire: a claim for work, and the trial it is answered with."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from hps.wire.base import Out
from hps.wire.rules import RequestModel
from hps.wire.trials import AskOut


class ClaimIn(RequestModel):
    """A worker asking for work: who it is, what it runs on, which tasks it can run."""

    worker_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:@\-]+$")
    device: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:\-]+$")
    tasks: list[str] = Field(min_length=1, max_length=64)


class ClaimOut(Out):
    """A claimed trial and what the worker needs to run it."""

    study_id: int
    trial: AskOut
    task: dict[str, Any] = Field(description="The study's task with every default filled in.")
    metric: str
    direction: str
    seed: int = Field(description="Seed for the trial's training run (model head, data order).")
