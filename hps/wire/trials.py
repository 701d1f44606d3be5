"""Trials on the wire: ask, report, heartbeat and complete (one path for workers and external clients),
and the trial as the API answers it."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, JsonValue, ValidationInfo, field_validator

from hps.search_spaces import ParamValue
from hps.wire.base import Out
from hps.wire.costs import CostOut, TrialCost
from hps.wire.rules import Frozen, RequestModel

# Steps of a learning curve (a report's bound), and what pruners count in.
MAX_STEP = 10_000_000

MAX_ATTRS_BYTES = 256 * 1024
MAX_REASON = 500


class Report(Frozen):
    """One point of a trial's learning curve: the study's metric after ``step`` (e.g. an epoch)."""

    # NaN or infinity is how a diverging run reports; the service prunes it.
    non_finite_fields = frozenset({"value"})

    step: int = Field(ge=0, le=MAX_STEP)
    value: float


class Completion(Frozen):
    """How a trial ended. ``complete`` carries the final metric; the others a reason."""

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "oneOf": [
                {
                    "properties": {"state": {"const": "complete"}, "value": {"type": "number"}},
                    "required": ["value"],
                },
                {
                    "properties": {
                        "state": {"enum": ["pruned", "failed", "diverged"]},
                        "value": {"type": "null"},
                    },
                },
            ]
        },
    )

    state: Literal["complete", "pruned", "failed", "diverged"]
    value: float | None = Field(default=None, validate_default=True)
    reason: str | None = Field(default=None, max_length=MAX_REASON)
    attrs: dict[str, JsonValue] = Field(default_factory=dict, max_length=100)
    cost: TrialCost | None = Field(
        default=None,
        description='What the trial used (docs/api.md, "Cost"); required to complete a trial '
        "of a study whose objectives name a cost.",
    )

    @field_validator("value")
    @classmethod
    def _value_matches_state(cls, value: float | None, info: ValidationInfo) -> float | None:
        state = info.data.get("state")
        if state == "complete":
            if value is None or not math.isfinite(value):
                raise ValueError("a complete trial needs a finite value; report NaN/inf as diverged")
        elif value is not None and state is not None:
            raise ValueError(f"a {state} trial carries a reason, not a value")
        return value

    @field_validator("attrs")
    @classmethod
    def _attrs_are_plain_json(cls, attrs: dict[str, JsonValue]) -> dict[str, JsonValue]:
        try:
            encoded = json.dumps(attrs, allow_nan=False)
        except ValueError:
            raise ValueError("attrs must not hold NaN or infinity; use null") from None
        if len(encoded) > MAX_ATTRS_BYTES:
            raise ValueError(f"attrs must encode to at most {MAX_ATTRS_BYTES} bytes of JSON")
        return attrs


class CurvePoint(Out):
    """One learning-curve point; non-finite values (a diverging run) are shown as null."""

    step: int
    value: float | None


class TrialOut(Out):
    """A trial (API.md)."""

    number: int
    state: str = Field(description="running, queued, complete, pruned, diverged or failed")
    params: dict[str, ParamValue]
    value: float | None
    reason: str | None
    intermediate_values: list[CurvePoint]
    attrs: dict[str, Any]
    attempt: int
    retry_of: int | None
    confirms: int | None = Field(
        default=None,
        description="A confirmation run: the number of the search trial whose configuration it re-runs "
        "with a fresh seed (`budget.confirm`); null for a search trial.",
    )
    cost: CostOut | None = Field(default=None, description="What it cost; null until it finishes with one.")
    started_at: datetime | None
    finished_at: datetime | None


class TrialPage(Out):
    """A page of trials."""

    items: list[TrialOut]
    next_cursor: str | None


class LeaseOut(Out):
    """A trial's lease: heartbeat, report or complete before it expires."""

    expires_at: datetime


class AskIn(RequestModel):
    """Optional body of ask: who is asking, for the trial's record."""

    worker_id: str | None = Field(default=None, max_length=128)


class AskOut(Out):
    """A trial handed out by ask."""

    study_id: int
    number: int
    params: dict[str, ParamValue]
    attempt: int
    lease: LeaseOut


class ReportOut(Out):
    """The answer to a report."""

    should_prune: bool
    should_stop: bool


class HeartbeatOut(Out):
    """The answer to a heartbeat."""

    lease: LeaseOut
    should_stop: bool
