"""A schedule whose template is cost-aware (SQLite and PostgreSQL): each run is a two-objective study, and
promotion still judges the metric alone."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from harness.api import unique
from harness.schedules import GRACE, T0, schedule_spec
from harness.stack import LEASE, Stack
from hps.server.schedules import use_cases as schedules
from hps.server.schedules.scheduler import tick
from hps.server.studies import get_study
from hps.server.trials import ask_trial, complete_trial
from hps.wire.schedules import ScheduleSpec
from hps.wire.studies import StudySpec
from hps.wire.trials import Completion

FIRST_SLOT = datetime(2026, 3, 2, 2, 0, tzinfo=T0.tzinfo)


def run_costed(stack: Stack, study_id: int, results: list[tuple[float, float]], now: datetime) -> None:
    """Complete one trial per (loss, seconds)."""
    for loss, seconds in results:
        trial = ask_trial(stack.db, stack.sampling, study_id, lease=LEASE, now=now)
        body = {"state": "complete", "value": loss, "cost": {"device_seconds": seconds}}
        complete_trial(
            stack.db, stack.sampling, study_id, trial.number, Completion.model_validate(body), now=now
        )


def test_promotion_of_a_cost_aware_schedule_judges_the_metric(stack: Stack) -> None:
    base = schedule_spec("x").model_dump(mode="json", exclude_unset=True)
    template = {**base["template"], "objectives": [{"metric": "loss"}, {"cost": "device_seconds"}]}
    body = {**base, "name": unique("costed"), "template": template, "concurrency": "allow"}
    body["promotion"] = {"margin": 0.05, "relative": False}
    schedule = schedules.create_schedule(
        stack.db, ScheduleSpec.model_validate(body), stack.registry, project="p", now=T0
    )
    days = [
        [(0.5, 10.0), (0.6, 1.0), (0.9, 2.0), (0.7, 3.0), (0.8, 4.0), (1.0, 5.0)],
        # The best loss (0.3) is the most expensive trial: promotion takes it, whatever it cost.
        [(0.3, 99.0), (0.45, 1.0), (0.9, 2.0), (0.7, 3.0), (0.8, 4.0), (1.0, 5.0)],
    ]
    for day, results in enumerate(days):
        moment = FIRST_SLOT + timedelta(days=day)
        tick(stack.db, stack.registry, moment, GRACE)
        runs, _ = schedules.list_runs(stack.db, schedule.id, limit=10, before_id=None, project=None)
        study_id = runs[0].study_id
        assert study_id is not None
        stored = StudySpec.model_validate(get_study(stack.db, study_id).record.spec)
        assert stored.cost_objective == "device_seconds" and stored.pruner.name == "none"
        run_costed(stack, study_id, results, moment)
        tick(stack.db, stack.registry, moment + timedelta(minutes=1), GRACE)
    runs, _ = schedules.list_runs(stack.db, schedule.id, limit=10, before_id=None, project=None)
    decisions = [run.promotion["decision"] if run.promotion else None for run in runs[::-1]]
    assert decisions == ["promoted", "promoted"]
    incumbent = schedules.get_schedule(stack.db, schedule.id, project=None).incumbent
    assert (
        incumbent is not None and incumbent["value"] == pytest.approx(0.3) and incumbent["metric"] == "loss"
    )
