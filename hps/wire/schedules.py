"""Schedules on the wire: a cron expression in a time zone, a study template, the policies of its runs;
and schedules and their runs as the API answers them.

Validated like study requests: unknown fields, a bad cron expression or time zone, or an invalid template
are 422s naming the field (``cron``, ``timezone``, ``template.search_space.params.lr.low``, …). A cron must
fire within :data:`FIRING_HORIZON`; a time zone must be an IANA key.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any, Literal
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterError, croniter
from pydantic import ConfigDict, Field, field_validator

from hps.search_spaces import ParamValue
from hps.wire.base import Out
from hps.wire.rules import Frozen
from hps.wire.studies import NAME_PATTERN, StudyOut, StudySpec

# A cron must fire within this long from now: long enough for "0 0 29 2 *" (eight years apart around
# 2100), short enough to refuse expressions that never fire, such as "0 0 30 2 *".
FIRING_HORIZON = timedelta(days=366 * 10)


class CronError(ValueError):
    """A cron expression or time zone hps cannot use; the message says why."""


def check_cron(expression: str) -> str:
    """The expression, stripped, if it is a valid standard 5-field cron expression."""
    fields = expression.split()
    if len(fields) != 5:
        raise CronError(
            f"{expression!r} has {len(fields)} fields; a cron expression has 5 fields: "
            "minute hour day-of-month month day-of-week"
        )
    normalized = " ".join(fields)
    if not croniter.is_valid(normalized):
        raise CronError(f"{expression!r} is not a valid cron expression")
    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        first = croniter(normalized, now).get_next(datetime)
    except CroniterError:
        first = None
    if first is None or first > now + FIRING_HORIZON:
        raise CronError(f"{expression!r} never fires in the next ten years (e.g. February 30th)")
    return normalized


def check_timezone(name: str) -> ZoneInfo:
    """The IANA time zone ``name`` (e.g. ``Europe/Berlin``, ``UTC``): a zone's key, never a folder of
    zones such as ``Europe`` or a path."""
    if name not in _zone_keys():
        raise CronError(f"{name!r} is not a known IANA time zone, e.g. 'UTC' or 'Europe/Berlin'")
    return ZoneInfo(name)


@cache
def _zone_keys() -> frozenset[str]:
    return frozenset(available_timezones())


# Run studies are named "<schedule>-<YYYYMMDDTHHMMSSZ>" and study names are at most 128 characters.
SCHEDULE_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,99}$"
MAX_TOP_K = 100

Misfire = Literal["skip", "run_once"]
Concurrency = Literal["skip", "allow"]


class StudyTemplate(StudySpec):
    """The body of ``POST /v1/studies`` without ``name``: each run's study is named after the schedule
    and the slot it runs for."""

    # A template has no name of its own; the field stays so that a name sent anyway is refused by name.
    name: str | None = Field(  # type: ignore[assignment]
        default=None, description="Leave out: each run's study is named <schedule name>-<UTC slot>."
    )

    @field_validator("name")
    @classmethod
    def _no_name(cls, name: str | None) -> None:
        if name is not None:
            raise ValueError("leave name out: each run's study is named <schedule name>-<UTC slot>")
        return None


class WarmStartSpec(Frozen):
    """Seed each run's study with the best configurations of an earlier study."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    source: str = Field(
        default="previous",
        alias="from",
        pattern=NAME_PATTERN,
        description="`previous` (the schedule's last run that started a study) or a study's name.",
    )
    top_k: int = Field(default=5, ge=1, le=MAX_TOP_K, description="How many of its best configurations.")


class PromotionSpec(Frozen):
    """When a run's winner replaces the schedule's incumbent: only when it beats it by ``margin``."""

    margin: float = Field(default=0.0, ge=0.0, allow_inf_nan=False)
    relative: bool = Field(
        default=False, description="The margin is a fraction of the incumbent's value, not an amount."
    )


def _checked_cron(expression: str) -> str:
    try:
        return check_cron(expression)
    except CronError as exc:
        raise ValueError(str(exc)) from None


def _checked_timezone(name: str) -> str:
    try:
        return check_timezone(name).key
    except CronError as exc:
        raise ValueError(str(exc)) from None


class ScheduleSpec(Frozen):
    """A schedule to create (``POST /v1/schedules``)."""

    name: str = Field(pattern=SCHEDULE_NAME_PATTERN)
    cron: str = Field(max_length=128, description="A standard 5-field cron expression, e.g. `0 2 * * *`.")
    timezone: str = Field(default="UTC", max_length=64, description="The IANA zone the cron is read in.")
    template: StudyTemplate
    misfire: Misfire = Field(
        default="run_once",
        description="Slots missed while the service was down: `run_once` runs one of them, `skip` none.",
    )
    concurrency: Concurrency = Field(
        default="skip", description="`skip` a slot while the previous run's study still runs, or `allow`."
    )
    warm_start: WarmStartSpec | None = None
    promotion: PromotionSpec = Field(default_factory=PromotionSpec)

    @field_validator("cron")
    @classmethod
    def _cron(cls, expression: str) -> str:
        return _checked_cron(expression)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str) -> str:
        return _checked_timezone(name)


class SchedulePatch(Frozen):
    """Changes to a schedule (``PATCH /v1/schedules/{id}``): only the fields sent with a value change.
    ``warm_start`` null turns warm starts off; ``incumbent`` null forgets the incumbent (e.g. after changing
    the metric); null for any other field keeps it."""

    # Null, like leaving a field out, keeps its value (only warm_start and incumbent mean something by null).
    cron: str | None = Field(default=None, max_length=128)
    timezone: str | None = Field(default=None, max_length=64)
    template: StudyTemplate | None = None
    misfire: Misfire | None = None
    concurrency: Concurrency | None = None
    warm_start: WarmStartSpec | None = None
    promotion: PromotionSpec | None = None
    incumbent: None = Field(default=None, description="Send null to forget the incumbent.")

    @field_validator("cron")
    @classmethod
    def _cron(cls, expression: str | None) -> str | None:
        return None if expression is None else _checked_cron(expression)

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, name: str | None) -> str | None:
        return None if name is None else _checked_timezone(name)


class WarmStartSettingOut(Out):
    """Where a schedule's runs take their first configurations from."""

    source: str = Field(alias="from", description="`previous` or a study's name.")
    top_k: int


class PromotionOut(Out):
    """When a run's winner replaces the incumbent: it must beat it by ``margin`` (relative: a fraction)."""

    margin: float
    relative: bool


class IncumbentOut(Out):
    """The best configuration a schedule has found so far."""

    params: dict[str, ParamValue]
    value: float
    metric: str
    direction: str
    study_id: int
    study_name: str
    trial_number: int
    run_id: int
    promoted_at: datetime


class ScheduleOut(Out):
    """A schedule: a cron in a time zone, the study template each run creates, its policies, its incumbent."""

    id: int
    name: str
    state: str = Field(description="active or paused")
    cron: str
    timezone: str
    template: dict[str, Any] = Field(description="The normalized study template (no name).")
    misfire: str = Field(description="skip or run_once")
    concurrency: str = Field(description="skip or allow")
    warm_start: WarmStartSettingOut | None
    promotion: PromotionOut
    incumbent: IncumbentOut | None
    next_run_at: datetime | None = Field(description="The next slot (UTC); while paused, the one it had.")
    created_at: datetime
    updated_at: datetime


class SchedulePage(Out):
    """A page of schedules."""

    items: list[ScheduleOut]
    next_cursor: str | None


class RunPromotionOut(Out):
    """What promotion decided about a finished run, with both values."""

    decision: str = Field(description="promoted, kept, not_comparable, no_winner or ineligible")
    reason: str
    candidate_value: float | None = None
    incumbent_value: float | None = None
    required_improvement: float | None = None
    margin: float | None = None
    relative: bool | None = None


class ScheduleRunOut(Out):
    """One slot of a schedule: the study it started (and what seeded it), or why it did not."""

    id: int
    schedule_id: int
    scheduled_for: datetime
    trigger: str = Field(description="schedule, catch_up or manual")
    outcome: str = Field(description="started, skipped or failed")
    detail: str | None
    study_id: int | None
    study_name: str | None
    seeded_from: int | None = Field(description="The study whose best configurations seeded this run's.")
    seeded: int = Field(description="How many configurations were queued from it.")
    promotion: RunPromotionOut | None = Field(description="Null until the run's study finishes.")
    evaluated_at: datetime | None
    created_at: datetime


class ScheduleRunPage(Out):
    """A page of a schedule's runs, newest first."""

    items: list[ScheduleRunOut]
    next_cursor: str | None


class ScheduleRunStarted(Out):
    """The answer to ``POST /v1/schedules/{id}/run``: the run, and its study when it started one."""

    run: ScheduleRunOut
    study: StudyOut | None
