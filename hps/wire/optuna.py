"""Optuna's storage protocol on the wire (``/v1/optuna``): what ``hps.optuna.HpsStorage`` sends and the
server answers, so that any Optuna program can use hps as its storage.

JSON has no infinity or NaN, and Optuna's values may be either (an objective may return ``inf``; an
intermediate value may be NaN), so every float of Optuna's is a :data:`Real`: a JSON number when finite,
otherwise one of the strings ``"inf"``, ``"-inf"``, ``"nan"``. Attribute values travel as the JSON text
Optuna itself stores (``value_json``), which Python writes with ``NaN``/``Infinity`` and reads back as such.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, Strict, field_validator

from hps.wire.base import Out
from hps.wire.rules import Frozen

NonFinite = Literal["inf", "-inf", "nan"]
# Strict: a JSON number (or one of the names), never a numeric string.
Number = Annotated[float, Strict()]
Real = Number | NonFinite


def _whole(value: Any) -> Any:
    # JSON Schema's "integer" includes 87.0, so a client may send one; true and "87" stay refused.
    return int(value) if isinstance(value, float) and value.is_integer() else value


# A JSON integer, or a float with no fraction; never a bool (true is not 1) or a numeric string.
Whole = Annotated[int, BeforeValidator(_whole), Strict()]
# An objective's value: never NaN (Optuna's tell refuses it, and its value column cannot hold one).
ObjectiveValue = Number | Literal["inf", "-inf"]
TrialStateName = Literal["RUNNING", "COMPLETE", "PRUNED", "FAIL", "WAITING"]
DirectionName = Literal["MINIMIZE", "MAXIMIZE"]

# Optuna's studies.study_name column holds 512 characters; hps's own name column holds 128.
MAX_STUDY_NAME = 128
MAX_ATTR_KEY = 512
MAX_ATTR_JSON = 256 * 1024
MAX_OBJECTIVES = 16
MAX_STEP = 2**31 - 1  # Optuna's step column is a 32-bit integer
NAIVE_TIME = "ISO 8601 without a zone, as Optuna keeps it (its storages write naive times)."


def naive_time(moment: datetime | None) -> str | None:
    """A trial's time as it travels (Optuna's times are naive)."""
    return None if moment is None else moment.isoformat()


def parse_time(text: str | None) -> datetime | None:
    """A travelling time as Optuna's naive datetime."""
    return None if text is None else datetime.fromisoformat(text)


def to_real(value: float) -> Real:
    """A float as it travels: itself when finite, else its name."""
    if math.isnan(value):
        return "nan"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    return value


def from_real(value: Real) -> float:
    """A travelling float as a float again."""
    return float(value)


def _check_objective_values(values: list[ObjectiveValue] | None) -> list[ObjectiveValue] | None:
    # Optuna refuses NaN as an objective value (study.tell), and its value column cannot hold one.
    if values is not None and any(math.isnan(from_real(v)) for v in values):
        raise ValueError("an objective value cannot be NaN (Optuna's tell refuses it)")
    return values


def _check_json(text: str) -> str:
    # The size is checked here, not in the schema: a schema's maxLength invites bodies past the request
    # size limit, which are refused earlier (413).
    if len(text) > MAX_ATTR_JSON:
        raise ValueError(f"JSON text holds at most {MAX_ATTR_JSON} characters")
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        raise ValueError("value_json is not JSON text (or nests too deep)") from None
    return text


class NewStudy(Frozen):
    """``create_new_study``: a study in the token's project, sampled by its client."""

    study_name: str = Field(
        max_length=MAX_STUDY_NAME,
        description="Unique within the project; no '/'.",
        # The rule in the schema too, so clients know it; the validator below says why when it is broken.
        json_schema_extra={"pattern": "^[^/]*$"},
    )
    directions: list[DirectionName] = Field(min_length=1, max_length=MAX_OBJECTIVES)

    @field_validator("study_name")
    @classmethod
    def _no_slash(cls, name: str) -> str:
        if "/" in name:
            raise ValueError("a study name cannot hold '/' (it separates the project in Optuna's name)")
        return name


class AttrIn(Frozen):
    """One user or system attribute: its value as JSON text."""

    key: str = Field(max_length=MAX_ATTR_KEY)
    value_json: str = Field(description="JSON text, at most 256 KiB.")

    _json = field_validator("value_json")(_check_json)


class ParamIn(Frozen):
    """``set_trial_param``: the internal representation and the distribution as Optuna writes it."""

    name: str = Field(max_length=MAX_ATTR_KEY)
    value: Real
    distribution_json: str = Field(description="An Optuna distribution's JSON, at most 256 KiB.")

    @field_validator("distribution_json")
    @classmethod
    def _short(cls, text: str) -> str:
        if len(text) > MAX_ATTR_JSON:
            raise ValueError(f"distribution_json holds at most {MAX_ATTR_JSON} characters")
        return text


class StateIn(Frozen):
    """``set_trial_state_values``."""

    state: TrialStateName
    values: list[ObjectiveValue] | None = Field(default=None, min_length=1, max_length=MAX_OBJECTIVES)

    _values = field_validator("values")(_check_objective_values)


class IntermediateIn(Frozen):
    """``set_trial_intermediate_value``."""

    step: Whole = Field(ge=0, le=MAX_STEP)
    value: Real


class HeartbeatIn(Frozen):
    """A heartbeat: the client's ``grace_period`` travels with it, since the reaper fails a trial whose
    heartbeat is older than that."""

    grace_period_s: Whole = Field(ge=1, le=7 * 24 * 3600)


class TrialIn(Frozen):
    """A template trial (``create_new_trial(study_id, template_trial)``; ``enqueue_trial``, ``add_trial``)."""

    state: TrialStateName
    values: list[ObjectiveValue] | None = Field(default=None, min_length=1, max_length=MAX_OBJECTIVES)

    _values = field_validator("values")(_check_objective_values)
    datetime_start: datetime | None = Field(default=None, description=NAIVE_TIME)
    datetime_complete: datetime | None = Field(default=None, description=NAIVE_TIME)
    params: dict[str, Real] = Field(default_factory=dict, description="Internal representations.")
    distributions: dict[str, str] = Field(default_factory=dict, description="Distribution JSON per param.")
    user_attrs: dict[str, str] = Field(default_factory=dict, description="JSON text per key.")
    system_attrs: dict[str, str] = Field(default_factory=dict, description="JSON text per key.")
    intermediate_values: dict[int, Real] = Field(default_factory=dict)

    @field_validator("intermediate_values")
    @classmethod
    def _steps_fit(cls, values: dict[int, Real]) -> dict[int, Real]:
        if any(not 0 <= step <= MAX_STEP for step in values):
            raise ValueError(f"steps are integers from 0 to {MAX_STEP}")
        return values

    @field_validator("user_attrs", "system_attrs")
    @classmethod
    def _json_values(cls, attrs: dict[str, str]) -> dict[str, str]:
        for text in attrs.values():
            _check_json(text)
        return attrs

    @field_validator("datetime_start", "datetime_complete", mode="before")
    @classmethod
    def _iso_text(cls, moment: object) -> object:
        # Times travel as ISO 8601 text only (a number is not taken for a Unix time).
        if moment is not None and not isinstance(moment, str | datetime):
            raise ValueError("a time is ISO 8601 text")
        return moment

    @field_validator("datetime_start", "datetime_complete")
    @classmethod
    def _naive(cls, moment: datetime | None) -> datetime | None:
        # Optuna's columns hold naive times; an aware one is taken as the moment it names, in UTC.
        if moment is None or moment.tzinfo is None:
            return moment
        return moment.astimezone(UTC).replace(tzinfo=None)


class NewTrialIn(Frozen):
    """The body of ``create_new_trial``: no template makes a RUNNING trial."""

    template: TrialIn | None = None


class StudyRef(Out):
    """A study's id."""

    study_id: int


class StudyInfo(Out):
    """What a study is: name and directions never change; attrs do."""

    study_id: int
    study_name: str
    directions: list[DirectionName]
    user_attrs: dict[str, str]
    system_attrs: dict[str, str]


class StudyList(Out):
    """Every study of the project."""

    studies: list[StudyInfo]


class TrialWire(Out):
    """A trial as Optuna's ``FrozenTrial`` holds it (params in their internal representation)."""

    trial_id: int
    number: int
    state: TrialStateName
    values: list[Real] | None
    datetime_start: str | None = Field(description=NAIVE_TIME)
    datetime_complete: str | None = Field(description=NAIVE_TIME)
    params: dict[str, Real]
    distributions: dict[str, str]
    user_attrs: dict[str, str]
    system_attrs: dict[str, str]
    intermediate_values: dict[int, Real]


class TrialList(Out):
    """Trials of one study: those created after ``after`` plus the watched ones; ``changed`` is what the
    client must replace in its cache."""

    trials: list[TrialWire]


class TrialIdOut(Out):
    """A trial's id."""

    trial_id: int


class UpdatedOut(Out):
    """``set_trial_state_values``: False when a WAITING trial was taken by another client first; and the
    trial as it now is (a finished trial never changes again, so the client keeps it)."""

    updated: bool
    trial: TrialWire


class StaleOut(Out):
    """Trials of the study whose heartbeat is older than the caller's grace period (failed by the caller,
    as Optuna's ``fail_stale_trials`` does), and trials hps's reaper already failed that no client has
    reported yet (``reaped``: the caller runs its failed-trial callback on them)."""

    stale: list[int]
    reaped: list[int]


def attrs_out(attrs: dict[str, Any]) -> dict[str, str]:
    """Attribute values as JSON text, the way Optuna stores them."""
    return {key: json.dumps(value) for key, value in attrs.items()}
