"""The optimizer report on the wire (``GET /v1/studies/{id}/report``; docs/report.md says how to read it)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from hps.search_spaces import ParamValue
from hps.wire.base import Out
from hps.wire.costs import CostTotals
from hps.wire.range_tests import RangeTestOut
from hps.wire.studies import ProgressOut
from hps.wire.trials import CurvePoint


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
    median_steps: float | None = Field(
        default=None, description="Median attr steps (optimizer steps) of its complete trials."
    )
    median_function_evals: float | None = Field(
        default=None,
        description="Median attr function_evals (forward+backward passes, Hessian columns included) of its "
        "complete trials: the cost a second-order step hides.",
    )
    median_convergence_wall_time_s: float | None = Field(
        default=None,
        description="Median attr convergence_wall_time_s of its complete trials: seconds to the epoch that "
        "reached 95% of the best improvement.",
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


class ConfirmedConfig(Out):
    """A configuration re-run with fresh seeds after the search (``budget.confirm``), judged by those runs
    alone: the mean, the two-sided 90% Student-t interval and its pessimistic end, the ``bound`` it is
    ranked by (the lower end when maximizing, the upper when minimizing)."""

    trial: int = Field(description="The search trial whose configuration was confirmed.")
    optimizer: str
    params: dict[str, ParamValue]
    search_value: float | None = Field(description="What the search trial scored (a biased, lucky draw).")
    runs: list[int] = Field(description="The confirmation trials' numbers.")
    values: list[float] = Field(description="The metric of each complete confirmation run.")
    incomplete: int = Field(
        description="Confirmation runs that did not complete (diverged, failed, stopped)."
    )
    mean: float | None
    std: float | None
    low: float | None = Field(description="The interval's lower end (null with fewer than 2 values).")
    high: float | None
    bound: float | None = Field(description="The end of the interval the ranking uses.")


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
    ranked_by: Literal["best run", "confirmed bound"] = Field(
        default="best run",
        description="`confirmed bound` once confirmation runs (budget.confirm) have ended: the winner is the "
        "confirmed configuration with the best pessimistic end of its interval.",
    )
    distinguishable: bool | None = Field(
        default=None,
        description="Whether the confirmed winner's interval is apart from the runner-up's (null unless "
        "ranked by confirmed bound with two intervals to compare).",
    )


class TradeOffPoint(Out):
    """A complete trial placed by its metric and its cost."""

    number: int
    optimizer: str
    value: float
    cost: float
    on_front: bool = Field(description="No other trial is at least as good on both and better on one.")


class CostTradeOff(Out):
    """A cost-aware study's metric against its cost: every complete trial that sent the cost, its Pareto
    front, and the trial the study's rule (`recommend`) picks off the front."""

    cost: str = Field(
        description="The cost objective: gpu_seconds, device_seconds, money, peak_memory_mb, samples."
    )
    rule: str = Field(description="The rule, in words.")
    points: list[TradeOffPoint] = Field(description="Complete trials with the cost, cheapest first.")
    front: list[int] = Field(description="The Pareto front's trial numbers, cheapest first.")
    recommended: int | None = Field(description="The trial the rule picks; null when none qualifies.")
    recommended_value: float | None
    recommended_cost: float | None
    summary: str = Field(description="The pick in plain language, or why there is none.")


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
    confirmed: list[ConfirmedConfig] = Field(
        default_factory=list,
        description="Configurations re-run with fresh seeds (budget.confirm), best bound first.",
    )
    lr_range_tests: list[RangeTestOut] = Field(
        default_factory=list,
        description="The study's lr range tests (empty without `lr_range_test`): each optimizer's loss "
        "curve and the lr range read off it.",
    )
    cost: CostTotals | None = Field(default=None, description="What the study's finished trials cost.")
    trade_off: CostTradeOff | None = Field(
        default=None, description="Metric against cost with the Pareto front (a study with `objectives`)."
    )
