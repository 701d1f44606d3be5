"""The frozen study spec: the contract between the API, the store and the workers.

A request body is validated into a :class:`StudySpec`; the stored spec is that model's JSON with every
default filled in and the search space resolved (presets expanded), so a study never changes meaning
when a preset file changes later.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, JsonValue, ValidationInfo, field_validator

from search_spaces import SearchSpace
from service.input_rules import RequestModel

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$"
REGISTRY_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
MAX_TRIALS = 10_000
MAX_ATTRS_BYTES = 256 * 1024
MAX_REASON = 500
# Steps of a learning curve (the Report's bound), and what pruners count in.
MAX_STEP = 10_000_000
Resource = Annotated[int, Field(ge=1, le=MAX_STEP)]


class Frozen(RequestModel):
    """Immutable, strict models: unknown fields are errors, not silently dropped, and every value meets
    the input rules (``service.input_rules``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


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


class BudgetSpec(Frozen):
    """How much a study may spend. ``n_trials`` counts every trial that was handed out, except
    failed attempts that were retried."""

    n_trials: int | None = Field(
        default=None, ge=1, le=MAX_TRIALS, description="Default 20; a grid's size for grid search."
    )
    max_parallel: int | None = Field(default=None, ge=1, le=1_000)
    max_failed: int = Field(default=10, ge=1, le=MAX_TRIALS)
    max_retries: int = Field(default=2, ge=0, le=10)
    timeout_s: float | None = Field(default=None, gt=0, le=366 * 86_400)


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

    @property
    def n_trials(self) -> int:
        """The trial budget; set on every stored spec (see ``studies.normalize_spec``)."""
        if self.budget.n_trials is None:
            raise ValueError("the spec was not normalized: budget.n_trials is unset")
        return self.budget.n_trials


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
