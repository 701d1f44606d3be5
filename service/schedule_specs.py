"""Schedule requests: a cron expression in a time zone, a study template, and the policies of its runs.

Validated like study specs: unknown fields, a bad cron expression or time zone, or an invalid template
are 422s naming the field (``cron``, ``timezone``, ``template.search_space.params.lr.low``, …).
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator

from service.cron import CronError, check_cron, check_timezone
from service.specs import NAME_PATTERN, Frozen, StudySpec

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
