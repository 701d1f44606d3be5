"""HTTP request and response bodies (API.md): the wire format, shared by the API and its client.

Pure pydantic, no server imports, so that workers and users' scripts can parse answers with them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from search_spaces import ParamValue
from service.input_rules import RequestModel


class Out(BaseModel):
    """Response bodies: documented, no extra fields."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Out):
    """Every error answer."""

    error: str = Field(description="A stable, machine-readable code.")
    detail: str = Field(description="What is wrong, for a person.")
    field: str | None = Field(description="The request field at fault, dotted, or null.")


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
    started_at: datetime | None
    finished_at: datetime | None


class ProgressOut(Out):
    """Trial counts of a study; ``failed`` counts failures that were not retried."""

    complete: int
    pruned: int
    diverged: int
    failed: int
    running: int
    queued: int
    remaining: int


class SeedOut(Out):
    """One configuration a warm start queued."""

    trial_number: int = Field(description="The queued trial's number in this study.")
    source_trial: int = Field(description="The trial of the source study it came from.")
    source_value: float | None = Field(description="What that trial scored.")
    params: dict[str, ParamValue] = Field(description="The params as queued, fitted to this search space.")


class WarmStartOut(Out):
    """How a study was seeded with the best configurations of an earlier study."""

    source: str = Field(alias="from", description="`previous` (the schedule's last run) or a study's name.")
    top_k: int
    seeded_from: int | None = Field(description="The source study's id; null when there was none.")
    seeded_from_name: str | None
    configs: list[SeedOut] = Field(description="What was queued as the first trials, in order.")
    adjustments: list[str] = Field(
        description="Params clipped or dropped, configurations not seeded, and why."
    )
    note: str | None = Field(description="Why nothing was seeded, when nothing was.")


class StudyOut(Out):
    """A study (API.md)."""

    id: int
    name: str
    optuna_name: str = Field(
        description="The name Optuna knows the study by: `optuna.load_study(study_name=...)` takes it. The "
        "name itself in the `default` project, `<project>/<name>` in any other."
    )
    state: str = Field(description="running, paused, completed, cancelled or failed")
    state_reason: str | None
    direction: str
    metric: str
    spec: dict[str, Any] = Field(description="The normalized spec: every default filled in.")
    progress: ProgressOut
    best: TrialOut | None
    created_at: datetime
    finished_at: datetime | None
    warm_start: WarmStartOut | None = Field(
        default=None, description="How the study was seeded from an earlier one (docs/schedules.md), or null."
    )


class StudyPage(Out):
    """A page of studies."""

    items: list[StudyOut]
    next_cursor: str | None


class TrialPage(Out):
    """A page of trials."""

    items: list[TrialOut]
    next_cursor: str | None


class LeaseOut(Out):
    """A trial's lease: heartbeat, report or complete before it expires."""

    expires_at: datetime


class AskOut(Out):
    """A trial handed out by ask."""

    study_id: int
    number: int
    params: dict[str, ParamValue]
    attempt: int
    lease: LeaseOut


class AskIn(RequestModel):
    """Optional body of ask: who is asking, for the trial's record."""

    worker_id: str | None = Field(default=None, max_length=128)


class ReportOut(Out):
    """The answer to a report."""

    should_prune: bool
    should_stop: bool


class HeartbeatOut(Out):
    """The answer to a heartbeat."""

    lease: LeaseOut
    should_stop: bool


class SearchSpaceItem(Out):
    """A preset in the catalog; ``space`` is the JSON a study request may inline."""

    name: str
    space: dict[str, Any]


class SearchSpaceList(Out):
    """The presets."""

    items: list[SearchSpaceItem]


class Health(Out):
    """Liveness or readiness."""

    status: str
    detail: str | None = None


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


class TaskList(Out):
    """Registered tasks."""

    items: list[TaskOut]


class EntryList(Out):
    """Registered models or datasets."""

    items: list[EntryOut]


class TokenIn(RequestModel):
    """A token to create."""

    # Only admin and metrics-only tokens may be project-less, and metrics tokens must be; the schema says
    # so, as validation does.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["project"],
                    "properties": {
                        "project": {"type": "string"},
                        "scopes": {"not": {"contains": {"const": "metrics"}}},
                    },
                },
                {"properties": {"scopes": {"contains": {"const": "admin"}}, "project": {"type": "null"}}},
                {"properties": {"scopes": {"items": {"const": "metrics"}}, "project": {"type": "null"}}},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=128)
    scopes: list[Literal["admin", "write", "read", "worker", "metrics"]] = Field(min_length=1, max_length=5)
    project: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="The project the token sees: admin tokens may omit it, metrics tokens must.",
    )


class TokenOut(Out):
    """A token, without its secret."""

    id: str
    name: str
    scopes: list[str]
    project: str | None
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    """A token just created: ``token`` is the secret, shown this once and never again."""

    token: str


class TokenList(Out):
    """Tokens."""

    items: list[TokenOut]


# The optimizer report (GET /v1/studies/{id}/report; docs/report.md says how to read it).


class OptimizerRow(Out):
    """How one optimizer fared: results of its finished trials (running and queued ones left out)."""

    optimizer: str
    trials: int = Field(description="Finished trials that used this optimizer.")
    complete: int
    pruned: int
    diverged: int
    failed: int
    pruned_share: float = Field(description="pruned / trials, 0 to 1.")
    diverged_share: float = Field(description="diverged / trials, 0 to 1.")
    best_value: float | None = Field(description="Best metric of its complete trials.")
    median_value: float | None = Field(description="Median metric of its complete trials.")
    best_lr: float | None = Field(description="The lr of its best trial, when the space has an lr.")
    median_convergence_epochs: float | None = Field(
        description="Median attr convergence_epochs of its complete trials (tasks report it)."
    )
    median_generalization_gap: float | None = Field(
        description="Median attr generalization_gap of its complete trials (tasks report it)."
    )


class HistoryPoint(Out):
    """A complete trial in number order, with the best value found up to it."""

    number: int
    optimizer: str
    value: float
    best_so_far: float


class TrialCurve(Out):
    """The learning curve of one of the best trials."""

    number: int
    optimizer: str
    value: float
    params: dict[str, ParamValue]
    points: list[CurvePoint]


class LrPoint(Out):
    """One finished trial's lr and result; ``value`` is null unless it completed."""

    number: int
    lr: float
    value: float | None
    state: str


class LrSeries(Out):
    """lr against the metric for one optimizer."""

    optimizer: str
    points: list[LrPoint]


class LrRange(Out):
    """The searched lr range: a float range, or the grid's values."""

    low: float
    high: float
    scale: str = Field(description="linear, log or grid")


class ParamImportance(Out):
    """How much of the metric's variance one parameter explains (importances sum to 1)."""

    param: str
    importance: float


class OptimizerImportances(Out):
    """Importances among one optimizer's trials, where its own (conditional) params exist."""

    optimizer: str
    complete: int
    params: list[ParamImportance]


class Importances(Out):
    """Parameter importances; empty with a ``note`` saying why when they cannot be computed."""

    method: str = Field(description="The Optuna evaluator used.")
    complete: int = Field(description="Complete trials they are computed from.")
    params: list[ParamImportance] = Field(description="Over every complete trial, most important first.")
    by_optimizer: list[OptimizerImportances] = Field(
        description="Within each optimizer with enough complete trials, covering its conditional params."
    )
    notes: list[str] = Field(description="Why some or all importances are missing, for a person.")


class Recommendation(Out):
    """What to use, and how sure the report is."""

    summary: str = Field(description="The recommendation in plain language.")
    confidence: Literal["none", "low", "medium", "high"]
    reasons: list[str] = Field(description="What the confidence rests on, one sentence each.")
    best_trial: int | None
    best_value: float | None
    best_optimizer: str | None
    best_params: dict[str, ParamValue]
    complete_trials: int = Field(description="Complete trials in the study.")
    backing_trials: int = Field(description="Complete trials of the recommended optimizer.")
    runner_up: str | None = Field(description="The next best optimizer, by best value.")
    gap_to_runner_up: float | None = Field(
        description="Best value minus the runner-up's, in the better direction."
    )
    lr_edge: Literal["low", "high"] | None = Field(description="The best lr sits at this edge of the range.")


class StudyReport(Out):
    """The optimizer report: which optimizer, which learning rate, and how sure we are."""

    study_id: int
    study_name: str
    state: str
    metric: str
    direction: str
    progress: ProgressOut
    generated_at: datetime
    optimizers: list[OptimizerRow] = Field(description="One row per optimizer, best first.")
    history: list[HistoryPoint]
    top_curves: list[TrialCurve] = Field(
        description="Learning curves of the best complete trials, best first."
    )
    lr_range: LrRange | None
    lr_vs_metric: list[LrSeries]
    importances: Importances
    recommendation: Recommendation


# Schedules (docs/schedules.md).


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
