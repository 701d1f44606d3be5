"""Cost as data and as an objective: what a completion's cost becomes in a trial row (money fixed at the
operator's price of the moment), the values a cost-aware study gives Optuna, and the checks a cost-aware
study request meets at the door.

A cost-aware study (``objectives``: the metric and one cost) is a two-objective Optuna study: the metric
in the study's direction, the cost minimized. hps's own ``value`` stays the metric alone, so the best
trial, schedules and promotion keep working on one number.
"""

from __future__ import annotations

from typing import Any

from hps.server.errors import InvalidInput
from hps.server.strategies import Direction
from hps.wire.costs import TrialCost
from hps.wire.studies import (
    CmaesSampler,
    CostObjective,
    MetricObjective,
    NoPruner,
    StudySpec,
)
from hps.wire.trials import Completion

SECONDS_PER_HOUR = 3600.0


def cost_columns(cost: TrialCost | None, price_per_gpu_hour: float | None) -> dict[str, Any]:
    """The ``hps_trials`` cost columns of a completion's ``cost`` (all null without one)."""
    if cost is None:
        return {}
    gpu_seconds = cost.gpu_seconds
    money = None if price_per_gpu_hour is None else gpu_seconds / SECONDS_PER_HOUR * price_per_gpu_hour
    return {
        "device_seconds": cost.device_seconds,
        "gpus": cost.gpus,
        "gpu_seconds": gpu_seconds,
        "peak_memory_mb": cost.peak_memory_mb,
        "samples": cost.samples,
        "money": money,
    }


def objective_values(
    spec: StudySpec, completion: Completion, columns: dict[str, Any], number: int
) -> list[float] | None:
    """What Optuna records as the values of a trial completed with ``completion`` and cost ``columns``:
    ``[metric, cost]`` for a complete trial of a cost-aware study; None for any other outcome of one
    (Optuna keeps no values for a multi-objective trial that did not complete). Raises
    :class:`InvalidInput` (422 on ``cost``) when a complete trial does not say what the objective needs."""
    name = spec.cost_objective
    if name is None or completion.state != "complete" or completion.value is None:
        return None
    if completion.cost is None:
        raise InvalidInput(
            f"trial {number} belongs to a study that minimizes {name}: its completion needs `cost`",
            field="cost",
        )
    cost = columns.get(name)
    if cost is None:
        why = (
            "the operator set no HPS_PRICE_PER_GPU_HOUR" if name == "money" else "the completion left it out"
        )
        raise InvalidInput(f"the study minimizes {name}, but {why}", field=f"cost.{name}")
    return [completion.value, float(cost)]


def check_objectives(spec: StudySpec) -> StudySpec:
    """Check a request's ``objectives`` and ``recommend`` (422 naming the field) and return the spec with
    its metric taken from the metric objective, and pruning off unless the request asked for a pruner
    (which is refused: Optuna's pruners judge one objective)."""
    if spec.objectives is None:
        if spec.recommend is not None:
            raise InvalidInput(
                "`recommend` picks off a Pareto front: it needs `objectives`", field="recommend"
            )
        return spec
    metrics = [(i, o) for i, o in enumerate(spec.objectives) if isinstance(o, MetricObjective)]
    costs = [(i, o) for i, o in enumerate(spec.objectives) if isinstance(o, CostObjective)]
    if len(metrics) != 1:
        field = f"objectives.{metrics[1][0]}" if len(metrics) > 1 else "objectives"
        raise InvalidInput('objectives must name exactly one metric (`{"metric": ...}`)', field=field)
    if len(costs) != 1:
        field = f"objectives.{costs[1][0]}" if len(costs) > 1 else "objectives"
        raise InvalidInput('objectives must name exactly one cost (`{"cost": ...}`)', field=field)
    metric_at, metric = metrics[0]
    if "metric" in spec.model_fields_set and spec.metric != metric.metric:
        raise InvalidInput(
            f"objectives name the metric {metric.metric!r}, but `metric` is {spec.metric!r}",
            field=f"objectives.{metric_at}.metric",
        )
    if isinstance(spec.sampler, CmaesSampler):
        raise InvalidInput(
            "the cmaes sampler optimizes one objective; use tpe, random, gp, qmc or grid",
            field="sampler.name",
        )
    if "pruner" in spec.model_fields_set and not isinstance(spec.pruner, NoPruner):
        raise InvalidInput(
            "Optuna's pruners judge one objective; a cost-aware study runs every trial to its end "
            '(leave `pruner` out or use {"name": "none"})',
            field="pruner.name",
        )
    return spec.model_copy(update={"metric": metric.metric, "pruner": NoPruner(name="none")})


def check_priced(spec: StudySpec, price_per_gpu_hour: float | None) -> None:
    """A study that minimizes money needs the operator's price per GPU-hour (422 on the objective)."""
    if spec.cost_objective == "money" and price_per_gpu_hour is None:
        at = next(i for i, o in enumerate(spec.objectives or ()) if isinstance(o, CostObjective))
        raise InvalidInput(
            "money needs a price per GPU-hour, and the operator set no HPS_PRICE_PER_GPU_HOUR",
            field=f"objectives.{at}.cost",
        )


def objective_names(spec: StudySpec) -> list[str]:
    """Optuna's ``metric_names`` of the study: the metric, then the cost when it has one."""
    name = spec.cost_objective
    return [spec.metric] if name is None else [spec.metric, name]


def objective_directions(spec: StudySpec) -> list[Direction]:
    """Optuna's directions of the study, in the order of :func:`objective_names`."""
    return [spec.direction] if spec.cost_objective is None else [spec.direction, "minimize"]
