"""The optimizer report: which optimizer, which learning rate, and how sure we are.

Pure: it takes a study, its trials (as the API shows them) and their parameter importances, and returns
the report; nothing here reads a database or calls Optuna. docs/report.md explains each section and the
rules behind the recommendation's confidence, which are the constants below.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Literal

from pydantic import ValidationError

from hps.catalog.trial_params import DEFAULT_OPTIMIZER
from hps.report.confirmed import confirmed_configs, distinguishable
from hps.report.pareto import trade_off
from hps.report.summary import NOT_SEARCHED, OptimizerSummary, optimizer_of, summarize_by_optimizer
from hps.search_spaces import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    SearchSpaceError,
    compile_space,
)
from hps.wire.range_tests import RangeTestOut
from hps.wire.reports import (
    ConfirmedConfig,
    CostTradeOff,
    HistoryPoint,
    Importances,
    LrPoint,
    LrRange,
    LrSeries,
    OptimizerRow,
    Recommendation,
    StudyReport,
    TrialCurve,
)
from hps.wire.studies import StudyOut, StudySpec
from hps.wire.trials import TrialOut

Confidence = Literal["none", "low", "medium", "high"]
Label = Callable[[TrialOut], str]  # a trial's optimizer, as the report calls it
Edge = Literal["low", "high"]

TOP_CURVES = 5
LR = "lr"
# A best lr in the outer 5% of the range (on the range's own scale) may have a better value outside it.
EDGE_SHARE = 0.05
# Fewer complete trials than these, overall or for the winning optimizer, and the winner may be luck.
MIN_COMPLETE = 5
MIN_BACKING = 3
# High confidence needs this many complete trials, and this many for the winning optimizer.
CONFIDENT_COMPLETE = 20
CONFIDENT_BACKING = 5
# A runner-up whose best is within this share of the spread of all results is practically tied.
CLOSE_SHARE = 0.05
_LEVELS: tuple[Confidence, ...] = ("none", "low", "medium", "high")


def build_report(
    study: StudyOut,
    trials: Sequence[TrialOut],
    importances: Importances,
    *,
    top: int = TOP_CURVES,
    now: datetime | None = None,
    range_tests: Sequence[RangeTestOut] = (),
) -> StudyReport:
    """The report of ``study`` from its ``trials`` (any order), their ``importances`` and its lr
    ``range_tests``. Confirmation runs (``budget.confirm``) show in the history and the curves; the
    per-optimizer table and the search's ranking are of the search trials alone."""
    finished = sorted((t for t in trials if t.state not in ("running", "queued")), key=lambda t: t.number)
    searched = [t for t in finished if t.confirms is None]
    ranked = rank_complete(searched, study.direction)
    # A study with a task runs its workers' default optimizer when its space names none.
    default = DEFAULT_OPTIMIZER if study.spec.get("task") else NOT_SEARCHED
    label: Label = partial(optimizer_of, default=default)
    summaries = summarize_by_optimizer(searched, study.direction, default)
    lr_range = searched_lr_range(study.spec)
    confirmed = confirmed_configs(finished, study.direction, label)
    recommendation = recommend(study, searched, ranked, summaries, lr_range, label)
    if confirmed and confirmed[0].bound is not None:
        recommendation = recommend_confirmed(recommendation, confirmed, study.metric)
    return StudyReport(
        study_id=study.id,
        study_name=study.name,
        state=study.state,
        metric=study.metric,
        direction=study.direction,
        progress=study.progress,
        generated_at=now or datetime.now(UTC),
        optimizers=[_row(summary, ranked, label) for summary in summaries],
        history=_history(finished, study.direction, label),
        top_curves=[_curve(trial, label) for trial in ranked[:top]],
        lr_range=lr_range,
        lr_vs_metric=_lr_series(searched, [s.optimizer for s in summaries], label),
        importances=importances,
        recommendation=recommendation,
        confirmed=confirmed,
        lr_range_tests=list(range_tests),
        cost=study.cost,
        trade_off=_trade_off(study, searched, label),
    )


def _trade_off(study: StudyOut, searched: list[TrialOut], label: Label) -> CostTradeOff | None:
    """The metric-against-cost section of a study with a cost objective (None otherwise, and for a stored
    spec this hps can no longer read: the rest of the report still stands)."""
    if not study.spec.get("objectives"):
        return None
    try:
        spec = StudySpec.model_validate(study.spec)
    except ValidationError:
        return None
    return trade_off(spec, searched, label)


def rank_complete(trials: Sequence[TrialOut], direction: str) -> list[TrialOut]:
    """Complete trials with a value, best first; ties go to the earlier trial."""
    sign = -1.0 if direction == "maximize" else 1.0
    complete = [t for t in trials if t.state == "complete" and t.value is not None]
    return sorted(complete, key=lambda t: (sign * (t.value or 0.0), t.number))


def searched_lr_range(spec: dict[str, object]) -> LrRange | None:
    """The lr range the study searches: a float range, or a grid's (or categorical's) values."""
    try:
        param = compile_space(SearchSpace.model_validate(spec.get("search_space"))).params.get(LR)
    except (SearchSpaceError, ValidationError):
        return None
    if isinstance(param, FloatParam | IntParam):
        scale = "log" if param.scale == "log" else "linear"
        return LrRange(low=float(param.low), high=float(param.high), scale=scale)
    if isinstance(param, CategoricalParam):
        values = [v for v in map(_number, param.choices) if v is not None]
        return LrRange(low=min(values), high=max(values), scale="grid") if values else None
    return None


def lr_edge(lr: float, searched: LrRange) -> Edge | None:
    """Which edge of the searched range ``lr`` sits at, if any."""
    if searched.high <= searched.low:
        return None
    if searched.scale == "grid":
        return "low" if lr <= searched.low else "high" if lr >= searched.high else None
    if searched.scale == "log" and searched.low > 0 and lr > 0:
        position = math.log(lr / searched.low) / math.log(searched.high / searched.low)
    else:
        position = (lr - searched.low) / (searched.high - searched.low)
    return "low" if position <= EDGE_SHARE else "high" if position >= 1 - EDGE_SHARE else None


def _row(summary: OptimizerSummary, ranked: list[TrialOut], label: Label) -> OptimizerRow:
    best = next((t for t in ranked if label(t) == summary.optimizer), None)
    return OptimizerRow(
        optimizer=summary.optimizer,
        trials=summary.trials,
        complete=summary.complete,
        pruned=summary.pruned,
        diverged=summary.diverged,
        failed=summary.failed,
        pruned_share=summary.pruned / summary.trials,
        diverged_share=summary.diverged / summary.trials,
        best_value=summary.best_value,
        median_value=summary.median_value,
        best_lr=_lr_of(best) if best else None,
        median_convergence_epochs=summary.median_convergence_epochs,
        median_generalization_gap=summary.median_generalization_gap,
        median_steps=summary.median_steps,
        median_function_evals=summary.median_function_evals,
        median_convergence_wall_time_s=summary.median_convergence_wall_time_s,
    )


def _history(finished: list[TrialOut], direction: str, label: Label) -> list[HistoryPoint]:
    pick = max if direction == "maximize" else min
    points: list[HistoryPoint] = []
    for trial in finished:
        if trial.state != "complete" or trial.value is None:
            continue
        best = trial.value if not points else pick(points[-1].best_so_far, trial.value)
        point = HistoryPoint(number=trial.number, optimizer=label(trial), value=trial.value, best_so_far=best)
        points.append(point)
    return points


def _curve(trial: TrialOut, label: Label) -> TrialCurve:
    return TrialCurve(
        number=trial.number,
        optimizer=label(trial),
        value=trial.value if trial.value is not None else math.nan,
        params=trial.params,
        points=trial.intermediate_values,
    )


def _lr_series(finished: list[TrialOut], order: list[str], label: Label) -> list[LrSeries]:
    series: dict[str, list[LrPoint]] = {name: [] for name in order}
    for trial in finished:
        lr = _lr_of(trial)
        if lr is not None:
            value = trial.value if trial.state == "complete" else None
            point = LrPoint(number=trial.number, lr=lr, value=value, state=trial.state)
            series[label(trial)].append(point)
    return [LrSeries(optimizer=name, points=points) for name, points in series.items() if points]


def recommend(
    study: StudyOut,
    finished: list[TrialOut],
    ranked: list[TrialOut],
    summaries: list[OptimizerSummary],
    searched: LrRange | None,
    label: Label = optimizer_of,
) -> Recommendation:
    """What to use and how sure we are (docs/report.md, "The recommendation")."""
    if not ranked:
        return _nothing_yet(study, finished)
    best = ranked[0]
    winner = label(best)
    backing = sum(label(t) == winner for t in ranked)
    runner = next((s for s in summaries if s.optimizer != winner and s.best_value is not None), None)
    value = best.value if best.value is not None else math.nan
    gap = None
    if runner is not None and runner.best_value is not None:
        gap = value - runner.best_value if study.direction == "maximize" else runner.best_value - value
    lr = _lr_of(best)
    edge = lr_edge(lr, searched) if lr is not None and searched is not None else None
    confidence, reasons = _confidence(ranked, winner, backing, runner, gap, edge)
    use = _describe(best.params) if winner == NOT_SEARCHED else f"{winner} with {_describe(best.params)}"
    summary = f"Use {use} (trial {best.number}): {study.metric} {value:.4g}."
    if runner is not None and gap is not None and gap > 0:
        summary += f" It beats the runner-up, {runner.optimizer} ({runner.best_value:.4g}), by {gap:.4g}."
    elif runner is not None:
        summary += (
            f" It ties with the runner-up, {runner.optimizer} ({runner.best_value:.4g}), which reached the "
            "same best later: more trials of both would separate them."
        )
    if edge is not None and searched is not None and lr is not None:
        way = "downward" if edge == "low" else "upward"
        summary += (
            f" The best lr ({lr:.3g}) sits at the {edge} edge of the searched range "
            f"[{searched.low:.3g}, {searched.high:.3g}]: widen the range {way} and search again."
        )
    return Recommendation(
        summary=summary,
        confidence=confidence,
        reasons=reasons,
        best_trial=best.number,
        best_value=best.value,
        best_optimizer=winner,
        best_params=best.params,
        complete_trials=len(ranked),
        backing_trials=backing,
        runner_up=runner.optimizer if runner else None,
        gap_to_runner_up=gap,
        lr_edge=edge,
    )


def recommend_confirmed(
    searched: Recommendation, confirmed: list[ConfirmedConfig], metric: str
) -> Recommendation:
    """The recommendation once confirmation runs have ended: the confirmed configuration with the best
    pessimistic bound (docs/report.md, "Confirmed configurations"), and whether it is distinguishable from
    the runner-up."""
    winner = confirmed[0]
    assert winner.mean is not None and winner.low is not None and winner.high is not None
    runner = confirmed[1] if len(confirmed) > 1 else None
    apart = distinguishable(winner, runner) if runner is not None else None
    summary = (
        f"Use {winner.optimizer} with {_describe(winner.params)} (trial {winner.trial}, confirmed): {metric} "
        f"{winner.mean:.4g} on average over {len(winner.values)} fresh seeds, 90% interval "
        f"[{winner.low:.4g}, {winner.high:.4g}]"
    )
    if winner.search_value is not None:
        summary += f" (its search run scored {winner.search_value:.4g})"
    summary += "."
    reasons = [
        f"Ranked by the pessimistic end of each confirmed configuration's 90% interval over fresh seeds; "
        f"{len(confirmed)} configuration(s) confirmed."
    ]
    if runner is None:
        level: Confidence = "medium"
        reasons.append("Only one configuration was confirmed: nothing to compare it with.")
    elif apart:
        level = "high"
        summary += (
            f" It is ahead of the runner-up, trial {runner.trial} ({_mean(runner)}), beyond both intervals."
        )
        reasons.append("The winner's interval lies apart from the runner-up's.")
    else:
        level = "medium"
        summary += (
            f" It is not distinguishable from the runner-up, trial {runner.trial} ({_mean(runner)}): their "
            "intervals overlap, so either will do; confirm with more seeds to separate them."
        )
        reasons.append("The winner's and the runner-up's intervals overlap.")
    if winner.incomplete:
        level = _at_most(level, "medium")
        reasons.append(f"{winner.incomplete} of the winner's confirmation runs did not complete.")
    gap = None
    if runner is not None and runner.mean is not None:
        gap = abs(winner.mean - runner.mean)
    return searched.model_copy(
        update={
            "summary": summary,
            "confidence": level,
            "reasons": reasons,
            "best_trial": winner.trial,
            "best_value": winner.mean,
            "best_optimizer": winner.optimizer,
            "best_params": winner.params,
            "runner_up": runner.optimizer if runner is not None else None,
            "gap_to_runner_up": gap,
            "ranked_by": "confirmed bound",
            "distinguishable": apart,
        }
    )


def _mean(config: ConfirmedConfig) -> str:
    if config.mean is None or config.low is None or config.high is None:
        return f"{config.incomplete} of its runs did not complete"
    return f"{config.mean:.4g}, interval [{config.low:.4g}, {config.high:.4g}]"


def _confidence(
    ranked: list[TrialOut],
    winner: str,
    backing: int,
    runner: OptimizerSummary | None,
    gap: float | None,
    edge: Edge | None,
) -> tuple[Confidence, list[str]]:
    """The confidence level and the sentences it rests on; each caveat can only lower the level."""
    reasons = [f"{len(ranked)} complete trial(s) in all, {backing} of them with {winner}."]
    if len(ranked) < MIN_COMPLETE or backing < MIN_BACKING:
        level: Confidence = "low"
        reasons.append(
            f"Too few complete trials to rule out luck (want at least {MIN_COMPLETE} in all and "
            f"{MIN_BACKING} with the winner)."
        )
    elif len(ranked) >= CONFIDENT_COMPLETE and backing >= CONFIDENT_BACKING:
        level = "high"
    else:
        level = "medium"
        reasons.append(
            f"High confidence needs {CONFIDENT_COMPLETE} complete trials and {CONFIDENT_BACKING} "
            "with the winner."
        )
    values = [t.value for t in ranked if t.value is not None]
    spread = max(values) - min(values)
    if runner is None:
        reasons.append("No other optimizer has a complete trial to compare with.")
    elif gap is not None and gap <= CLOSE_SHARE * spread:
        level = _at_most(level, "medium")
        reasons.append(
            f"The runner-up {runner.optimizer} is within {CLOSE_SHARE:.0%} of the spread of all results: "
            "practically tied; more trials of both would separate them."
        )
    else:
        reasons.append(
            f"The runner-up {runner.optimizer} is behind by {gap:.4g}, more than {CLOSE_SHARE:.0%} of the "
            "spread of all results."
        )
    if edge is not None:
        level = _at_most(level, "medium")
        reasons.append(f"The best lr is at the {edge} edge of the searched range: better may lie beyond.")
    return level, reasons


def _nothing_yet(study: StudyOut, finished: list[TrialOut]) -> Recommendation:
    counts = study.progress
    if not finished and counts.running == 0:
        summary = "No trial has finished yet: there is nothing to recommend. Run trials, then report again."
    else:
        summary = (
            f"No trial has completed yet ({counts.pruned} pruned, {counts.diverged} diverged, "
            f"{counts.failed} failed, {counts.running} running): there is nothing to recommend yet."
        )
        if finished and all(t.state == "diverged" for t in finished):
            summary += " Every finished trial diverged: the lr range may be too high."
    return Recommendation(
        summary=summary,
        confidence="none",
        reasons=["No complete trial."],
        best_trial=None,
        best_value=None,
        best_optimizer=None,
        best_params={},
        complete_trials=0,
        backing_trials=0,
        runner_up=None,
        gap_to_runner_up=None,
        lr_edge=None,
    )


def _at_most(level: Confidence, cap: Confidence) -> Confidence:
    return level if _LEVELS.index(level) <= _LEVELS.index(cap) else cap


def _describe(params: Mapping[str, object]) -> str:
    shown = [f"{name} {_format(value)}" for name, value in params.items() if name != "optimizer"]
    return ", ".join(shown) if shown else "its defaults"


def _format(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _lr_of(trial: TrialOut) -> float | None:
    return _number(trial.params.get(LR))


def _number(value: object) -> float | None:
    """``value`` as a finite float, or None for anything else (booleans and strings included)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None
