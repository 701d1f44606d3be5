"""Studies on the wire: the study request (``POST /v1/studies``: task, search space, sampler, pruner,
budget) and the study as the API answers it.

A request is validated into a :class:`StudySpec`; the service stores it normalized (every default filled
in, the search space resolved), so a study never changes meaning when a preset file changes later.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from hps.search_spaces import ParamValue, SearchSpace
from hps.wire.base import Out
from hps.wire.costs import CostName, CostTotals
from hps.wire.rules import Frozen
from hps.wire.trials import MAX_STEP, TrialOut

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
REGISTRY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
MAX_TRIALS = 10_000
# What pruners count in: a learning curve's steps.
Resource = Annotated[int, Field(ge=1, le=MAX_STEP)]


class TaskSpec(Frozen):
    """What a worker fine-tunes: a registered task, and optionally a registered model and dataset."""

    name: str = Field(pattern=REGISTRY_NAME, description="A registered task, e.g. `digits`.")
    model: str | None = Field(default=None, pattern=REGISTRY_NAME)
    dataset: str | None = Field(default=None, pattern=REGISTRY_NAME)
    epochs: int | None = Field(default=None, ge=1, le=1_000)
    batch_size: int | None = Field(default=None, ge=1, le=65_536)
    max_steps_per_epoch: int | None = Field(default=None, ge=1, le=1_000_000)


class TpeSampler(Frozen):
    """Optuna's TPE: the default; strong on conditional optimizer spaces."""

    name: Literal["tpe"] = "tpe"
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    n_startup_trials: int = Field(default=10, ge=0, le=MAX_TRIALS)
    n_ei_candidates: int = Field(default=24, ge=1, le=10_000)
    multivariate: bool = True
    group: bool = True
    constant_liar: bool = True


class RandomSampler(Frozen):
    """Uniform random search: the baseline every other sampler should beat."""

    name: Literal["random"]
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


class GpSampler(Frozen):
    """Gaussian-process Bayesian optimisation: sample-efficient on small continuous spaces."""

    name: Literal["gp"]
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    n_startup_trials: int = Field(default=10, ge=0, le=MAX_TRIALS)
    deterministic_objective: bool = False


class CmaesSampler(Frozen):
    """CMA-ES: continuous spaces, many trials; categorical params fall back to random sampling."""

    name: Literal["cmaes"]
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    n_startup_trials: int = Field(default=1, ge=0, le=MAX_TRIALS)
    sigma0: float | None = Field(default=None, gt=0)
    consider_pruned_trials: bool = False


class QmcSampler(Frozen):
    """Quasi-Monte Carlo: low-discrepancy space filling, a better random search."""

    name: Literal["qmc"]
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    qmc_type: Literal["sobol", "halton"] = "sobol"
    scramble: bool = True


class GridSampler(Frozen):
    """Exhaustive grid over a fully discrete space, in a seeded random order."""

    name: Literal["grid"]
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)


SamplerSpec = Annotated[
    TpeSampler | RandomSampler | GpSampler | CmaesSampler | QmcSampler | GridSampler,
    Field(discriminator="name"),
]


class NoPruner(Frozen):
    """Never prune."""

    name: Literal["none"]


class MedianPruner(Frozen):
    """Prune when a trial is worse than the median of earlier trials at the same step."""

    name: Literal["median"]
    n_startup_trials: int = Field(default=5, ge=0, le=MAX_TRIALS)
    n_warmup_steps: int = Field(default=0, ge=0, le=MAX_STEP)
    interval_steps: int = Field(default=1, ge=1, le=MAX_STEP)
    n_min_trials: int = Field(default=1, ge=1, le=MAX_TRIALS)


class PercentilePruner(Frozen):
    """Prune when a trial is outside the given percentile of earlier trials at the same step."""

    name: Literal["percentile"]
    percentile: float = Field(default=25.0, ge=0.0, le=100.0)
    n_startup_trials: int = Field(default=5, ge=0, le=MAX_TRIALS)
    n_warmup_steps: int = Field(default=0, ge=0, le=MAX_STEP)
    interval_steps: int = Field(default=1, ge=1, le=MAX_STEP)
    n_min_trials: int = Field(default=1, ge=1, le=MAX_TRIALS)


class SuccessiveHalvingPruner(Frozen):
    """Asynchronous successive halving: keep the top 1/reduction_factor at each rung."""

    name: Literal["successive_halving"]
    min_resource: Resource | Literal["auto"] = "auto"
    reduction_factor: int = Field(default=4, ge=2, le=100)
    min_early_stopping_rate: int = Field(default=0, ge=0, le=100)
    bootstrap_count: int = Field(default=0, ge=0, le=MAX_TRIALS)


class HyperbandPruner(Frozen):
    """Hyperband: several successive-halving brackets; the default pruner for epoch-based tasks."""

    name: Literal["hyperband"]
    min_resource: Resource = 1
    max_resource: Resource | Literal["auto"] = "auto"
    reduction_factor: int = Field(default=3, ge=2, le=100)
    bootstrap_count: int = Field(default=0, ge=0, le=MAX_TRIALS)

    @field_validator("max_resource")
    @classmethod
    def _max_at_least_min(cls, value: int | str, info: ValidationInfo) -> int | str:
        low = info.data.get("min_resource")
        if isinstance(value, int) and isinstance(low, int) and value < low:
            raise ValueError(f"max_resource ({value}) must be at least min_resource ({low})")
        return value


PrunerSpec = Annotated[
    NoPruner | MedianPruner | PercentilePruner | SuccessiveHalvingPruner | HyperbandPruner,
    Field(discriminator="name"),
]


class ConfirmSpec(Frozen):
    """After the search, re-run the ``top_k`` best configurations ``seeds`` times each with fresh seeds,
    and recommend by a confidence bound over those runs rather than by one run's value."""

    top_k: int = Field(default=3, ge=1, le=20, description="Distinct configurations to confirm (default 3).")
    seeds: int = Field(default=3, ge=2, le=20, description="Fresh-seed runs of each (default 3).")


class BudgetSpec(Frozen):
    """How much a study may spend. ``n_trials`` counts every trial that was handed out, except
    failed attempts that were retried; confirmation runs (``confirm``) come on top of it."""

    n_trials: int | None = Field(
        default=None, ge=1, le=MAX_TRIALS, description="Default 20; a grid's size for grid search."
    )
    max_parallel: int | None = Field(default=None, ge=1, le=1_000)
    max_failed: int = Field(default=10, ge=1, le=MAX_TRIALS)
    max_retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float | None = Field(default=None, gt=0, le=366 * 86_400)
    confirm: ConfirmSpec | None = Field(
        default=None, description="Re-run the best configurations with fresh seeds after the search."
    )


class LrRangeTestSpec(Frozen):
    """Before any trial, a learning-rate range test for each optimizer of the search space: a short run
    whose lr grows exponentially over the space's ``lr`` range; the service narrows that optimizer's range
    from its loss curve (docs/search-spaces.md, "Learning-rate range test")."""

    steps: int = Field(
        default=100, ge=10, le=5_000, description="Training steps of each optimizer's test (default 100)."
    )
    batch_size: int | None = Field(
        default=None, ge=1, le=65_536, description="Default: the study's batch size (task or search space)."
    )


class MetricObjective(Frozen):
    """The study's metric as an objective: ``{"metric": "val_accuracy"}``, optimized in ``direction``."""

    metric: str = Field(min_length=1, max_length=128)


class CostObjective(Frozen):
    """A cost as an objective, always minimized: ``{"cost": "gpu_seconds"}`` (hps.wire.costs)."""

    cost: CostName


Objective = MetricObjective | CostObjective


class CheapestWithin(Frozen):
    """Recommend the cheapest complete trial whose metric is within ``within`` (in the metric's own units)
    of the best one's."""

    rule: Literal["cheapest_within"] = "cheapest_within"
    within: float = Field(default=0.0, ge=0, le=1e12)


class BestUnder(Frozen):
    """Recommend the best complete trial whose cost is at most ``max_cost`` (in the cost's own units)."""

    rule: Literal["best_under"]
    max_cost: float = Field(gt=0, le=1e15)


CostRule = Annotated[CheapestWithin | BestUnder, Field(discriminator="rule")]


class StudySpec(Frozen):
    """A validated study request. See API.md, "A study request"."""

    name: str = Field(pattern=NAME_PATTERN)
    direction: Literal["minimize", "maximize"] = "minimize"
    metric: str = Field(default="value", min_length=1, max_length=128)
    task: TaskSpec | None = None
    search_space: SearchSpace
    sampler: SamplerSpec = Field(default_factory=TpeSampler)
    pruner: PrunerSpec = Field(default_factory=lambda: MedianPruner(name="median"))
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    lr_range_test: LrRangeTestSpec | None = Field(
        default=None, description="Run an lr range test per optimizer before sampling; null: none."
    )
    objectives: list[Objective] | None = Field(
        default=None,
        max_length=2,
        description="Cost-aware search: the metric and one cost, optimized together "
        '(`[{"metric": "val_accuracy"}, {"cost": "gpu_seconds"}]`); null: the metric alone.',
    )
    recommend: CostRule | None = Field(
        default=None,
        description="How a cost-aware study picks one trial off its Pareto front (default: the cheapest "
        "within 0 of the best); only with `objectives`.",
    )

    @property
    def cost_objective(self) -> CostName | None:
        """The cost a cost-aware study minimizes beside its metric; None for a single-objective study."""
        for objective in self.objectives or ():
            if isinstance(objective, CostObjective):
                return objective.cost
        return None

    @property
    def n_trials(self) -> int:
        """The trial budget; set on every stored spec (see ``studies.normalize_spec``)."""
        if self.budget.n_trials is None:
            raise ValueError("the spec was not normalized: budget.n_trials is unset")
        return self.budget.n_trials


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
    cost: CostTotals | None = Field(default=None, description="What its finished trials cost together.")


class StudyPage(Out):
    """A page of studies."""

    items: list[StudyOut]
    next_cursor: str | None
