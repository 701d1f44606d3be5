"""Helpers for schedule tests: a schedule spec, a fixed clock, and running a study's trials through the
real ask/complete use cases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from harness.stack import LEASE, Stack
from hps.server.trials import ask_trial, complete_trial
from hps.wire.schedules import ScheduleSpec
from hps.wire.trials import Completion

GRACE = timedelta(minutes=5)
# Sunday 2026-03-01, noon UTC: a fixed "now" the tests move forward by hand.
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def schedule_spec(name: str, **overrides: Any) -> ScheduleSpec:
    """A nightly schedule of an external study over lr (log) and an optimizer choice."""
    body: dict[str, Any] = {
        "name": name,
        "cron": "0 2 * * *",
        "timezone": "UTC",
        "template": {
            "direction": "minimize",
            "metric": "loss",
            "search_space": {
                "params": {
                    "optimizer": {"type": "categorical", "choices": ["sgd", "adam"]},
                    "lr": {"type": "float", "low": 1e-5, "high": 1e-1, "scale": "log"},
                    "momentum": {"type": "float", "low": 0.0, "high": 0.99, "when": {"optimizer": ["sgd"]}},
                }
            },
            "sampler": {"name": "random", "seed": 7},
            "budget": {"n_trials": 6},
        },
    }
    body.update(overrides)
    return ScheduleSpec.model_validate(body)


def run_trials(stack: Stack, study_id: int, values: Sequence[float], now: datetime) -> list[dict[str, Any]]:
    """Ask one trial per value and complete it with that value; returns the params asked, in order."""
    asked = []
    for value in values:
        trial = ask_trial(stack.db, stack.sampling, study_id, lease=LEASE, now=now)
        completion = Completion(state="complete", value=value)
        complete_trial(stack.db, stack.sampling, study_id, trial.number, completion, now=now)
        asked.append(dict(trial.params))
    return asked
