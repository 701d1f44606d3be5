"""How studies and trials look in a terminal: the tables of ``hps study list|show|trials|best``.

Works on the API's answers (``StudyOut``, ``TrialOut``) only, so any client-side command can reuse it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table

from hps.wire.range_tests import RangeTestsOut
from hps.wire.studies import StudyOut
from hps.wire.trials import TrialOut

ENDED_STATES = ("completed", "cancelled", "failed")


def finished_count(study: StudyOut) -> int:
    """Trials that count against the budget and are over: complete, pruned, diverged, failed for good."""
    counts = study.progress
    return counts.complete + counts.pruned + counts.diverged + counts.failed


def budget_of(study: StudyOut) -> int:
    """The study's trial budget (``budget.n_trials`` of the normalized spec)."""
    return int(study.spec.get("budget", {}).get("n_trials", 0))


def format_value(value: float | None) -> str:
    """A metric value for people: four significant digits, ``-`` for none."""
    return "-" if value is None else f"{value:.4g}"


def format_params(params: Mapping[str, Any]) -> str:
    """``name=value`` pairs, floats to four significant digits."""
    return " ".join(f"{name}={_short(value)}" for name, value in params.items())


def format_time(moment: datetime | None) -> str:
    """A UTC timestamp to the second, ``-`` for none."""
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def studies_table(studies: Iterable[StudyOut]) -> Table:
    """One row per study: ``hps study list``."""
    table = Table(title="studies")
    for column in ("id", "name", "state", "metric", "trials", "best", "created (UTC)"):
        table.add_column(column, justify="right" if column in ("id", "trials", "best") else "left")
    for study in studies:
        table.add_row(
            str(study.id),
            study.name,
            study.state,
            f"{study.metric} ({study.direction})",
            f"{finished_count(study)}/{budget_of(study)}",
            format_value(study.best.value if study.best else None),
            format_time(study.created_at),
        )
    return table


def study_details(study: StudyOut, range_tests: RangeTestsOut | None = None) -> RenderableType:
    """Everything about one study: ``hps study show`` (with its lr range tests, when it has them)."""
    spec = study.spec
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("study", f"{study.id} {study.name}")
    grid.add_row("state", study.state + (f" ({study.state_reason})" if study.state_reason else ""))
    grid.add_row("metric", f"{study.metric} ({study.direction})")
    task = spec.get("task")
    grid.add_row("task", _mapping(task) if task else "none (external: ask, report, complete)")
    grid.add_row("sampler", _mapping(spec.get("sampler", {})))
    grid.add_row("pruner", _mapping(spec.get("pruner", {})))
    params = spec.get("search_space", {}).get("params", {})
    grid.add_row("parameters", ", ".join(params) or "-")
    grid.add_row("budget", _mapping(spec.get("budget", {})))
    grid.add_row("progress", _mapping(study.progress.model_dump()))
    grid.add_row("created", format_time(study.created_at))
    grid.add_row("finished", format_time(study.finished_at))
    parts: list[RenderableType] = [grid]
    if range_tests is not None and range_tests.items:
        parts.append(range_tests_table(range_tests))
    if study.best is not None:
        parts.append(trial_details(study.best, title=f"best trial ({study.metric})"))
    return Group(*parts)


def trials_table(trials: Iterable[TrialOut], title: str = "trials") -> Table:
    """One row per trial: ``hps study trials``."""
    table = Table(title=title)
    for column in ("number", "state", "value", "last step", "attempt", "params", "reason"):
        table.add_column(column, justify="right" if column in ("number", "value", "last step") else "left")
    for trial in trials:
        last = trial.intermediate_values[-1].step if trial.intermediate_values else None
        table.add_row(
            str(trial.number),
            trial.state,
            format_value(trial.value),
            "-" if last is None else str(last),
            str(trial.attempt),
            format_params(trial.params),
            trial.reason or "",
        )
    return table


def trial_details(trial: TrialOut, title: str = "trial") -> Table:
    """One trial, its params one per line: ``hps study best``."""
    table = Table(title=title, show_header=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("number", str(trial.number))
    table.add_row("state", trial.state + (f" ({trial.reason})" if trial.reason else ""))
    table.add_row("value", format_value(trial.value))
    for name, value in trial.params.items():
        table.add_row(name, _short(value))
    table.add_row("reported steps", str(len(trial.intermediate_values)))
    table.add_row("finished", format_time(trial.finished_at))
    return table


def _mapping(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{key} {_short(value)}" for key, value in values.items() if value is not None)


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def range_tests_table(tests: RangeTestsOut) -> Table:
    """One row per optimizer's lr range test: ``hps study range-tests`` and ``hps study show``."""
    table = Table(title="lr range tests")
    for column in ("optimizer", "state", "steps", "epochs", "tested", "searched", "lowest loss at", "why"):
        table.add_column(column, justify="right" if column in ("steps", "epochs") else "left")
    for test in tests.items:
        chosen = test.chosen
        searched = tests.lr_ranges.get(test.optimizer) if tests.lr_ranges else None
        table.add_row(
            test.optimizer,
            test.state + (f" (attempt {test.attempt})" if test.attempt > 1 else ""),
            str(len(test.points)),
            "-" if test.epochs is None else f"{test.epochs:.3g}",
            f"{test.low:.3g}..{test.high:.3g}",
            "-" if searched is None else f"{searched[0]:.3g}..{searched[1]:.3g}",
            "-" if chosen is None or chosen.lr_lowest is None else f"{chosen.lr_lowest:.3g}",
            (chosen.rule if chosen is not None else test.reason) or "",
        )
    return table
