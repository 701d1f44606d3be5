"""The Pareto front and the recommendation rules of a cost-aware study's report (pure functions)."""

from __future__ import annotations

from hps.report.pareto import pareto_front, pick
from hps.wire.reports import TradeOffPoint
from hps.wire.studies import BestUnder, CheapestWithin

# (number, value, cost)
POINTS = [(0, 0.80, 10.0), (1, 0.90, 30.0), (2, 0.70, 5.0), (3, 0.60, 40.0), (4, 0.85, 30.0), (5, 0.70, 5.0)]


def placed(maximize: bool) -> list[TradeOffPoint]:
    front = set(pareto_front(POINTS, maximize=maximize))
    return [
        TradeOffPoint(number=n, optimizer="adamw", value=v, cost=c, on_front=n in front) for n, v, c in POINTS
    ]


def test_the_front_is_what_nothing_dominates_cheapest_first() -> None:
    assert pareto_front(POINTS, maximize=True) == [2, 0, 1]
    # Minimizing the metric, the cheapest trial (0.70 at 5) dominates all but the 0.60 one at 40.
    assert pareto_front(POINTS, maximize=False) == [2, 3]
    assert pareto_front([], maximize=True) == []


def test_cheapest_within_picks_the_cheapest_close_enough_to_the_best() -> None:
    points = placed(maximize=True)
    assert pick(points, CheapestWithin(within=0.0), maximize=True).number == 1  # type: ignore[union-attr]
    assert pick(points, CheapestWithin(within=0.1), maximize=True).number == 0  # type: ignore[union-attr]
    assert pick(points, CheapestWithin(within=0.25), maximize=True).number == 2  # type: ignore[union-attr]


def test_best_under_picks_the_best_affordable_or_nothing() -> None:
    points = placed(maximize=True)
    assert pick(points, BestUnder(rule="best_under", max_cost=20.0), maximize=True).number == 0  # type: ignore[union-attr]
    assert pick(points, BestUnder(rule="best_under", max_cost=100.0), maximize=True).number == 1  # type: ignore[union-attr]
    assert pick(points, BestUnder(rule="best_under", max_cost=1.0), maximize=True) is None
    chosen = pick(placed(maximize=False), BestUnder(rule="best_under", max_cost=50.0), maximize=False)
    assert chosen is not None and chosen.number == 3
