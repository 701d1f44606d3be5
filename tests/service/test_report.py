"""The optimizer report (hps.report) built from real trials: studies driven through the real use cases
on SQLite and PostgreSQL, read back with ``gather_evidence``, importances computed by Optuna."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.stack import LEASE, Stack
from harness.synthetic import run_trials
from hps.report.build import build_report, lr_edge
from hps.report.html import render_report
from hps.server import studies, trials
from hps.server.api.render import study_out, trial_out
from hps.server.evidence import gather_evidence
from hps.wire.reports import LrRange, StudyReport
from hps.wire.studies import StudySpec
from hps.wire.trials import Completion, Report, TrialOut

NOW = datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC)


@dataclass
class StackDriver:
    """Drives a study through the use cases, as the API process would."""

    stack: Stack
    study_id: int

    def ask(self) -> tuple[int, dict[str, Any]]:
        asked = trials.ask_trial(self.stack.db, self.stack.sampling, self.study_id, lease=LEASE)
        return asked.number, dict(asked.params)

    def report(self, number: int, step: int, value: float) -> bool:
        point = Report(step=step, value=value)
        db, sampling = self.stack.db, self.stack.sampling
        return trials.report_trial(db, sampling, self.study_id, number, point, lease=LEASE).should_prune

    def complete(
        self, number: int, state: str, value: float | None, reason: str | None, attrs: dict[str, float]
    ) -> None:
        body: dict[str, Any] = {"state": state, "attrs": attrs}
        body.update({"value": value} if value is not None else {"reason": reason})
        completion = Completion.model_validate(body)
        trials.complete_trial(self.stack.db, self.stack.sampling, self.study_id, number, completion)


def create(stack: Stack, name: str, **overrides: Any) -> int:
    body: dict[str, Any] = {
        "name": name,
        "direction": "maximize",
        "metric": "val_accuracy",
        "search_space": {"preset": "optimizers"},
        "sampler": {"name": "tpe", "seed": 42},
        "pruner": {"name": "median"},
        "budget": {"n_trials": 30},
    }
    body.update(overrides)
    spec = StudySpec.model_validate(body)
    return studies.create_study(stack.db, spec, stack.registry).record.id


def report_of(stack: Stack, study_id: int) -> tuple[StudyReport, list[TrialOut]]:
    evidence = gather_evidence(stack.db, stack.sampling, study_id)
    shown = [trial_out(view) for view in evidence.trials]
    return build_report(study_out(evidence.study), shown, evidence.importances, now=NOW), shown


def test_a_driven_studys_report_agrees_with_its_trials(stack: Stack) -> None:
    study_id = create(stack, "driven")
    run_trials(StackDriver(stack, study_id), 30)
    report, shown = report_of(stack, study_id)

    complete = [t for t in shown if t.state == "complete"]
    assert len(shown) == 30 and len(complete) >= 5 and any(t.state == "pruned" for t in shown)
    assert report.generated_at == NOW and report.progress.complete == len(complete)

    # Per optimizer: counts add up, best first, values and shares computed from the trials themselves.
    assert sum(row.trials for row in report.optimizers) == 30
    bests = [row.best_value for row in report.optimizers if row.best_value is not None]
    assert bests == sorted(bests, reverse=True)
    for row in report.optimizers:
        mine = [t for t in shown if t.params["optimizer"] == row.optimizer]
        values = [t.value for t in mine if t.state == "complete" and t.value is not None]
        assert row.trials == len(mine)
        assert row.pruned_share == sum(t.state == "pruned" for t in mine) / len(mine)
        assert row.best_value == (max(values) if values else None)
        assert row.median_value == (statistics.median(values) if values else None)
        if values:
            best = next(t for t in mine if t.value == max(values))
            assert row.best_lr == best.params["lr"]
            assert row.median_convergence_epochs is not None and row.median_generalization_gap is not None

    # History: every complete trial in number order with a running maximum.
    assert [p.number for p in report.history] == [t.number for t in complete]
    running = -math.inf
    for point, trial in zip(report.history, complete, strict=True):
        running = max(running, trial.value or -math.inf)
        assert point.value == trial.value and point.best_so_far == running

    # Top curves: the five best complete trials, best first, with the curves they reported.
    ranked = sorted(complete, key=lambda t: (-(t.value or 0.0), t.number))[:5]
    assert [c.number for c in report.top_curves] == [t.number for t in ranked]
    assert report.top_curves[0].points == ranked[0].intermediate_values
    assert len(report.top_curves[0].points) == 4

    # lr against the metric: every finished trial, complete ones with their value.
    assert report.lr_range == LrRange(low=1e-5, high=1.0, scale="log")
    assert sum(len(s.points) for s in report.lr_vs_metric) == 30
    for series in report.lr_vs_metric:
        for point in series.points:
            trial = next(t for t in shown if t.number == point.number)
            assert point.lr == trial.params["lr"] and trial.params["optimizer"] == series.optimizer
            assert point.value == (trial.value if trial.state == "complete" else None)

    # Importances: Optuna's fANOVA over the shared params; conditional ones explained, not dropped silently.
    found = report.importances
    assert found.method == "fanova" and found.complete == len(complete)
    assert {p.param for p in found.params} == {"optimizer", "lr"}
    assert math.isclose(sum(p.importance for p in found.params), 1.0, abs_tol=1e-6)
    assert any("conditional parameters" in note and "momentum" in note for note in found.notes)

    # The recommendation backs the study's own best trial.
    best = studies.get_study(stack.db, study_id).best
    advice = report.recommendation
    assert best is not None and advice.best_trial == best.record.number
    assert advice.best_params == best.record.params and advice.best_value == best.record.value
    assert advice.best_optimizer == report.optimizers[0].optimizer
    assert advice.backing_trials == report.optimizers[0].complete
    assert advice.complete_trials == len(complete)
    assert advice.runner_up == report.optimizers[1].optimizer
    assert advice.gap_to_runner_up is not None and advice.gap_to_runner_up > 0
    assert advice.summary.startswith(f"Use {advice.best_optimizer} with lr ")
    assert f"(trial {advice.best_trial})" in advice.summary and advice.confidence in ("low", "medium", "high")


def test_a_study_without_trials_gets_a_report_that_says_so(stack: Stack) -> None:
    study_id = create(stack, "empty", search_space={"preset": "optimizers", "starts": []})
    report, _ = report_of(stack, study_id)
    assert report.optimizers == [] and report.history == [] and report.top_curves == []
    assert report.lr_vs_metric == [] and report.importances.params == []
    assert report.importances.notes == ["importances need at least 5 complete trials; there are 0."]
    advice = report.recommendation
    assert advice.confidence == "none" and advice.best_trial is None and advice.best_params == {}
    assert "nothing to recommend" in advice.summary

    page = render_report(report)  # and the HTML says so too, with no empty charts
    assert "<svg" not in page and "nothing to recommend" in page
    assert page.count("No complete trials yet.") == 1 and "No finished trials yet." in page


def test_a_best_lr_at_the_edge_says_widen_the_range_and_few_trials_mean_low_confidence(stack: Stack) -> None:
    # adamw peaks at lr 2e-3 (harness.synthetic), above this range: the best trial is the top lr.
    lrs = [1e-5, 1e-4, 3e-4, 1e-3]
    space = {
        "params": {
            "optimizer": {"type": "categorical", "choices": ["adamw"]},
            "lr": {"type": "float", "low": 1e-5, "high": 1e-3, "scale": "log"},
        },
        "starts": [{"optimizer": "adamw", "lr": lr} for lr in lrs],
    }
    study_id = create(stack, "edge", search_space=space, pruner={"name": "none"}, budget={"n_trials": 4})
    run_trials(StackDriver(stack, study_id), 4)
    report, _ = report_of(stack, study_id)
    advice = report.recommendation
    assert advice.best_params == {"optimizer": "adamw", "lr": 1e-3}
    assert advice.lr_edge == "high" and advice.confidence == "low"
    assert "high edge of the searched range [1e-05, 0.001]: widen the range upward" in advice.summary
    assert advice.runner_up is None and advice.gap_to_runner_up is None
    assert "Use adamw with lr 0.001 (trial 3)" in advice.summary
    assert report.importances.params == [] and "there are 4" in report.importances.notes[0]


def test_identical_results_and_divergence_are_explained_not_errors(stack: Stack) -> None:
    same = {
        "params": {"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "scale": "log"}},
        "starts": [{"lr": lr} for lr in (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)],
    }
    study_id = create(stack, "same", search_space=same, pruner={"name": "none"}, budget={"n_trials": 5})
    driver = StackDriver(stack, study_id)
    for _ in range(5):
        number, _ = driver.ask()
        driver.complete(number, "complete", 0.5, None, {})
    report, _ = report_of(stack, study_id)
    assert report.importances.params == []
    assert report.importances.notes == [
        "Optuna could not compute importances: every complete trial scored the same."
    ]
    # No optimizer param and no task whose workers would pick one: the report names no optimizer.
    assert report.optimizers[0].optimizer == "(not searched)"
    assert report.recommendation.summary.startswith("Use lr ")

    hot = {"params": {"lr": {"type": "float", "low": 0.5, "high": 1.0}}, "starts": []}
    study_id = create(stack, "hot", search_space=hot, pruner={"name": "none"}, budget={"n_trials": 3})
    run_trials(StackDriver(stack, study_id), 3)
    report, _ = report_of(stack, study_id)
    assert report.optimizers[0].diverged_share == 1.0 and report.history == []
    assert report.recommendation.confidence == "none"
    assert "Every finished trial diverged: the lr range may be too high." in report.recommendation.summary


@pytest.mark.parametrize(
    ("lr", "searched", "edge"),
    [
        (1e-5, LrRange(low=1e-5, high=1.0, scale="log"), "low"),
        (1.5e-5, LrRange(low=1e-5, high=1.0, scale="log"), "low"),  # 0.035 of the way, on the log scale
        (1e-3, LrRange(low=1e-5, high=1.0, scale="log"), None),
        (0.6, LrRange(low=1e-5, high=1.0, scale="log"), "high"),
        (0.6, LrRange(low=0.0, high=1.0, scale="linear"), None),
        (0.97, LrRange(low=0.0, high=1.0, scale="linear"), "high"),
        (3e-5, LrRange(low=2e-5, high=5e-5, scale="grid"), None),
        (5e-5, LrRange(low=2e-5, high=5e-5, scale="grid"), "high"),
    ],
)
def test_lr_edge_is_measured_on_the_ranges_own_scale(lr: float, searched: LrRange, edge: str | None) -> None:
    assert lr_edge(lr, searched) == edge


def test_a_grid_studys_lr_range_is_its_values(stack: Stack) -> None:
    study_id = create(
        stack, "grid", search_space={"preset": "bert-grid"}, sampler={"name": "grid"}, budget={}
    )
    report, _ = report_of(stack, study_id)
    assert report.lr_range == LrRange(low=2e-5, high=5e-5, scale="grid")


def test_a_tie_is_called_a_tie_and_the_table_agrees_with_the_recommendation(stack: Stack) -> None:
    space = {
        "params": {
            "optimizer": {"type": "categorical", "choices": ["adam", "adagrad"]},
            "lr": {"type": "float", "low": 1e-4, "high": 1e-1, "scale": "log"},
        },
        "starts": [{"optimizer": "adagrad", "lr": 1e-2}, {"optimizer": "adam", "lr": 1e-3}],
    }
    study_id = create(stack, "tie", search_space=space, pruner={"name": "none"}, budget={"n_trials": 2})
    driver = StackDriver(stack, study_id)
    for _ in range(2):
        number, _ = driver.ask()
        driver.complete(number, "complete", 0.9, None, {})
    report, _ = report_of(stack, study_id)
    advice = report.recommendation
    # adagrad reached 0.9 first: it is recommended, and listed first.
    assert advice.best_optimizer == "adagrad" == report.optimizers[0].optimizer
    assert advice.gap_to_runner_up == 0.0 and "by 0" not in advice.summary
    assert "It ties with the runner-up, adam (0.9)" in advice.summary
