"""Learning-rate range tests on the wire: the work a worker claims, how it completes it, and a test as the
API answers it (``GET /v1/studies/{id}/lr-range-tests``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field

from hps.search_spaces import ParamValue
from hps.wire.base import Out
from hps.wire.rules import Frozen
from hps.wire.trials import MAX_REASON, LeaseOut

MAX_POINTS = 5_000
RangeTestState = Literal["queued", "running", "complete", "failed"]


class RangeTestWork(Out):
    """One optimizer's range test for a worker: train ``steps`` steps with the optimizer ``params`` (their
    ``lr`` replaced), the lr growing exponentially from ``low`` to ``high``."""

    optimizer: str
    params: dict[str, ParamValue]
    low: float
    high: float
    steps: int
    batch_size: int
    attempt: int
    lease: LeaseOut


class RangeTestCompletion(Frozen):
    """How a range test ended: ``complete`` with its curve (one ``[lr, loss]`` per step, finite losses
    only), or ``failed`` with a reason."""

    state: Literal["complete", "failed"]
    points: list[tuple[float, float]] = Field(default_factory=list, max_length=MAX_POINTS)
    stopped_early: str | None = Field(default=None, max_length=MAX_REASON)
    epochs: float | None = Field(default=None, ge=0, le=1e9)
    wall_time_s: float | None = Field(default=None, ge=0, le=1e9)
    reason: str | None = Field(default=None, max_length=MAX_REASON)


class ChosenRangeOut(Out):
    """What the service read off the curve: the range the sampler searches for this optimizer."""

    low: float
    high: float
    lr_steepest: float | None = Field(description="Where the smoothed loss fell fastest.")
    lr_lowest: float | None = Field(description="Where the smoothed loss was lowest.")
    narrowed: bool = Field(description="False: the curve showed no clear minimum and the range was kept.")
    rule: str = Field(description="The rule that chose the range, in words.")


class RangeTestOut(Out):
    """One optimizer's range test."""

    optimizer: str
    state: RangeTestState
    attempt: int
    params: dict[str, Any]
    low: float
    high: float
    steps: int
    batch_size: int
    points: list[tuple[float, float]] = Field(description="[lr, loss] of each step taken.")
    stopped_early: str | None
    chosen: ChosenRangeOut | None = Field(description="Set once the test is complete.")
    epochs: float | None = Field(description="The test's cost, in epochs of the study's batch size.")
    wall_time_s: float | None
    reason: str | None
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None


class RangeTestsOut(Out):
    """A study's range tests, and the lr range each optimizer is searched over once they are done."""

    items: list[RangeTestOut]
    lr_ranges: dict[str, tuple[float, float]] | None = Field(
        description="Optimizer → [low, high] the sampler searches; null until every test has ended."
    )
