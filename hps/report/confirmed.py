"""Ranking confirmed configurations (``budget.confirm``) by a confidence bound over their fresh-seed runs.

Pure, like the rest of the report. For each search trial that was confirmed, only its confirmation runs
count: the search run itself was picked for being best and is biased upward. Each configuration gets the
mean of its complete runs and a two-sided :data:`LEVEL` Student-t interval; configurations are ranked by the
interval's pessimistic end (the lower end when maximizing, the upper when minimizing), so a configuration
must be good on every seed, not lucky on one. A configuration whose fresh runs did not all complete (pruned
by a stop, diverged or failed) ranks after every configuration whose runs all did. The winner is
*distinguishable* from the runner-up when their intervals do not overlap.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence

from hps.wire.reports import ConfirmedConfig
from hps.wire.trials import TrialOut

LEVEL = 0.90
# Student's t at 0.95 (the upper end of a two-sided 90% interval) by degrees of freedom 1..19; ``confirm``
# runs at most 20 seeds. Beyond the table, the Cornish-Fisher expansion is within 0.3%.
_T95 = (6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812, 1.796, 1.782, 1.771, 1.761,
        1.753, 1.746, 1.740, 1.734, 1.729)  # fmt: skip
_Z95 = 1.6449


def t95(degrees: int) -> float:
    """The 0.95 quantile of Student's t with ``degrees`` degrees of freedom (at least 1)."""
    if degrees <= len(_T95):
        return _T95[degrees - 1]
    return _Z95 + (_Z95**3 + _Z95) / (4 * degrees)


def confirmed_configs(
    trials: Sequence[TrialOut], direction: str, label: Callable[[TrialOut], str]
) -> list[ConfirmedConfig]:
    """The confirmed configurations of a study's finished ``trials``, best first."""
    searched = {trial.number: trial for trial in trials if trial.confirms is None}
    # A failed attempt that was retried is replaced by its retry.
    retried = {trial.retry_of for trial in trials if trial.retry_of is not None}
    runs: dict[int, list[TrialOut]] = {}
    for trial in trials:
        if trial.confirms is None or trial.number in retried or trial.state in ("running", "queued"):
            continue
        runs.setdefault(trial.confirms, []).append(trial)
    found = [
        _summarize(searched.get(number), number, group, direction, label) for number, group in runs.items()
    ]
    sign = 1.0 if direction == "maximize" else -1.0
    return sorted(
        found, key=lambda c: (c.incomplete > 0, -sign * c.bound if c.bound is not None else math.inf)
    )


def _summarize(
    source: TrialOut | None,
    number: int,
    runs: list[TrialOut],
    direction: str,
    label: Callable[[TrialOut], str],
) -> ConfirmedConfig:
    values = [run.value for run in runs if run.state == "complete" and run.value is not None]
    mean = statistics.fmean(values) if values else None
    std = statistics.stdev(values) if len(values) > 1 else None
    low = high = bound = None
    if mean is not None and std is not None:
        half = t95(len(values) - 1) * std / math.sqrt(len(values))
        low, high = mean - half, mean + half
        bound = low if direction == "maximize" else high
    params = source.params if source is not None else runs[0].params
    return ConfirmedConfig(
        trial=number,
        optimizer=label(source if source is not None else runs[0]),
        params=params,
        search_value=source.value if source is not None else None,
        runs=[run.number for run in runs],
        values=values,
        incomplete=len(runs) - len(values),
        mean=mean,
        std=std,
        low=low,
        high=high,
        bound=bound,
    )


def distinguishable(winner: ConfirmedConfig, runner_up: ConfirmedConfig) -> bool | None:
    """Whether the two intervals are apart (None when either has none)."""
    if None in (winner.low, winner.high, runner_up.low, runner_up.high):
        return None
    assert winner.low is not None and winner.high is not None  # for the type checker
    assert runner_up.low is not None and runner_up.high is not None
    return winner.low > runner_up.high or winner.high < runner_up.low
