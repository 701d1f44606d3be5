"""Ranking confirmed configurations by a confidence bound (hps/report/confirmed.py): the pure rule, on trials
as the API shows them."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from hps.report.confirmed import confirmed_configs, distinguishable, t95
from hps.wire.trials import TrialOut

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def trial(
    number: int, value: float | None, *, confirms: int | None = None, state: str = "complete"
) -> TrialOut:
    return TrialOut(
        number=number, state=state, params={"optimizer": "adamw", "lr": 1e-3 * (confirms or number + 1)},
        value=value if state == "complete" else None, reason=None, intermediate_values=[], attrs={},
        attempt=1, retry_of=None, confirms=confirms, started_at=NOW, finished_at=NOW,
    )  # fmt: skip


def label(found: TrialOut) -> str:
    return str(found.params["optimizer"])


def test_a_steady_configuration_beats_a_lucky_one_with_a_higher_mean() -> None:
    trials = [
        trial(0, 0.99),  # the lucky search run
        trial(1, 0.90),
        *[trial(n, v, confirms=0) for n, v in ((2, 0.99), (3, 0.70), (4, 0.95))],  # mean 0.88, wide
        *[trial(n, v, confirms=1) for n, v in ((5, 0.86), (6, 0.87), (7, 0.88))],  # mean 0.87, tight
    ]
    ranked = confirmed_configs(trials, "maximize", label)
    assert [c.trial for c in ranked] == [1, 0]
    steady, lucky = ranked
    assert steady.mean == pytest.approx(0.87) and lucky.mean == pytest.approx(0.88)
    half = t95(2) * 0.01 / math.sqrt(3)
    assert (steady.low, steady.high) == pytest.approx((0.87 - half, 0.87 + half))
    assert steady.bound == steady.low and lucky.search_value == 0.99
    assert distinguishable(steady, lucky) is False


def test_minimizing_ranks_by_the_upper_end_and_incomplete_runs_rank_last() -> None:
    trials = [
        trial(0, 1.0),
        trial(1, 2.0),
        trial(2, 3.0),
        *[trial(n, v, confirms=0) for n, v in ((3, 1.0), (4, 1.1), (5, 0.9))],
        *[trial(n, v, confirms=1) for n, v in ((6, 2.0), (7, 2.1), (8, 2.05))],
        trial(9, 0.1, confirms=2),
        trial(10, None, confirms=2, state="diverged"),
    ]
    ranked = confirmed_configs(trials, "minimize", label)
    assert [c.trial for c in ranked] == [0, 1, 2]
    assert ranked[0].bound == ranked[0].high and ranked[2].incomplete == 1
    assert distinguishable(ranked[0], ranked[1]) is True


def test_the_t_quantiles() -> None:
    assert t95(1) == 6.314 and t95(2) == 2.920 and t95(19) == 1.729
    assert t95(30) == pytest.approx(1.697, abs=0.005) and t95(10_000) == pytest.approx(1.645, abs=0.001)
