"""Per-optimizer summaries of a study's trials: the question every user asks — which optimizer, and
how sure are we? Works on the trials as the API returns them, so the CLI, the demo and reports share it."""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass

from hps.wire.trials import TrialOut


@dataclass(frozen=True)
class OptimizerSummary:
    """How one optimizer fared in a study."""

    optimizer: str
    trials: int
    complete: int
    pruned: int
    diverged: int
    failed: int
    best_value: float | None
    median_value: float | None
    median_convergence_epochs: float | None
    median_generalization_gap: float | None
    median_steps: float | None
    median_function_evals: float | None
    median_convergence_wall_time_s: float | None


# What a trial's optimizer is called when its study searches none and has no task whose workers would pick
# one: the report then never names an optimizer the study did not try.
NOT_SEARCHED = "(not searched)"


def summarize_by_optimizer(
    trials: Iterable[TrialOut], direction: str, default: str = NOT_SEARCHED
) -> list[OptimizerSummary]:
    """One row per optimizer, best first; between equal bests, the one that reached it first (the rule the
    recommendation follows). Trials without an ``optimizer`` param count as ``default``: the workers'
    default optimizer for a study with a task, :data:`NOT_SEARCHED` otherwise."""
    groups: dict[str, list[TrialOut]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.state in ("running", "queued"):
            continue
        groups.setdefault(optimizer_of(trial, default), []).append(trial)
    rows = [_summarize(name, group, direction) for name, group in groups.items()]
    sign = -1.0 if direction == "maximize" else 1.0
    first_best = {row.optimizer: _first_reaching(groups[row.optimizer], row.best_value) for row in rows}
    return sorted(
        rows, key=lambda r: (r.best_value is None, sign * (r.best_value or 0.0), first_best[r.optimizer])
    )


def optimizer_of(trial: TrialOut, default: str = NOT_SEARCHED) -> str:
    """The trial's optimizer, or ``default`` when its study's space has no ``optimizer`` param."""
    return str(trial.params.get("optimizer", default))


def _first_reaching(trials: list[TrialOut], best: float | None) -> int:
    """The number of the earliest complete trial with value ``best`` (trials are in number order)."""
    return next((t.number for t in trials if t.state == "complete" and t.value == best), 2**31)


def _summarize(name: str, trials: list[TrialOut], direction: str) -> OptimizerSummary:
    values = [t.value for t in trials if t.state == "complete" and t.value is not None]
    pick = max if direction == "maximize" else min
    return OptimizerSummary(
        optimizer=name,
        trials=len(trials),
        complete=sum(t.state == "complete" for t in trials),
        pruned=sum(t.state == "pruned" for t in trials),
        diverged=sum(t.state == "diverged" for t in trials),
        failed=sum(t.state == "failed" for t in trials),
        best_value=pick(values) if values else None,
        median_value=statistics.median(values) if values else None,
        median_convergence_epochs=_median_attr(trials, "convergence_epochs"),
        median_generalization_gap=_median_attr(trials, "generalization_gap"),
        median_steps=_median_attr(trials, "steps"),
        median_function_evals=_median_attr(trials, "function_evals"),
        median_convergence_wall_time_s=_median_attr(trials, "convergence_wall_time_s"),
    )


def _median_attr(trials: list[TrialOut], key: str) -> float | None:
    found = [
        float(t.attrs[key])
        for t in trials
        if t.state == "complete"
        and isinstance(t.attrs.get(key), int | float)
        and not isinstance(t.attrs.get(key), bool)
    ]
    return statistics.median(found) if found else None
