"""Metric against cost for a cost-aware study: the Pareto front of its complete trials and the trial the
study's rule picks off it (``recommend``: the cheapest within some distance of the best metric, or the
best under a cost budget). Pure, like the rest of the report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from hps.wire.reports import CostTradeOff, TradeOffPoint
from hps.wire.studies import BestUnder, CheapestWithin, CostRule, StudySpec
from hps.wire.trials import TrialOut

Label = Callable[[TrialOut], str]


def trade_off(spec: StudySpec, trials: Sequence[TrialOut], label: Label) -> CostTradeOff | None:
    """The study's trade-off section; None for a study without a cost objective."""
    name = spec.cost_objective
    if name is None:
        return None
    maximize = spec.direction == "maximize"
    placed = [
        (trial.number, label(trial), trial.value, cost)
        for trial in trials
        if trial.state == "complete"
        and trial.value is not None
        and (cost := trial_cost(trial, name)) is not None
    ]
    front = set(pareto_front([(n, v, c) for n, _, v, c in placed], maximize=maximize))
    points = [
        TradeOffPoint(number=n, optimizer=o, value=v, cost=c, on_front=n in front)
        for n, o, v, c in sorted(placed, key=lambda p: (p[3], -p[2] if maximize else p[2], p[0]))
    ]
    rule = spec.recommend or CheapestWithin()
    chosen = pick(points, rule, maximize=maximize)
    return CostTradeOff(
        cost=name,
        rule=describe_rule(rule, spec.metric, name),
        points=points,
        front=[p.number for p in points if p.on_front],
        recommended=chosen.number if chosen else None,
        recommended_value=chosen.value if chosen else None,
        recommended_cost=chosen.cost if chosen else None,
        summary=_summary(chosen, rule, spec.metric, name, len(points)),
    )


def trial_cost(trial: TrialOut, name: str) -> float | None:
    """The named cost of a trial (a field of its ``cost``), or None when it has none."""
    if trial.cost is None:
        return None
    value = getattr(trial.cost, name)
    return None if value is None else float(value)


def pareto_front(points: Sequence[tuple[int, float, float]], *, maximize: bool) -> list[int]:
    """Numbers of the ``(number, value, cost)`` points no other point dominates (at least as good a value
    and at most the cost, better in one), cheapest first; of exact duplicates the lowest number stays."""
    sign = -1.0 if maximize else 1.0
    ordered = sorted(points, key=lambda p: (p[2], sign * p[1], p[0]))
    front: list[int] = []
    best: float | None = None
    for number, value, _ in ordered:
        score = sign * value  # lower is better
        if best is None or score < best:
            front.append(number)
            best = score
    return front


def pick(points: Sequence[TradeOffPoint], rule: CostRule, *, maximize: bool) -> TradeOffPoint | None:
    """The trial ``rule`` recommends among ``points``: always one on the front."""
    if not points:
        return None
    sign = -1.0 if maximize else 1.0
    if isinstance(rule, CheapestWithin):
        best = min(sign * p.value for p in points)
        near = [p for p in points if sign * p.value - best <= rule.within]
        return min(near, key=lambda p: (p.cost, sign * p.value, p.number))
    affordable = [p for p in points if p.cost <= rule.max_cost]
    if not affordable:
        return None
    return min(affordable, key=lambda p: (sign * p.value, p.cost, p.number))


def describe_rule(rule: CostRule, metric: str, cost: str) -> str:
    """The rule in words."""
    if isinstance(rule, BestUnder):
        return f"the best {metric} with {cost} at most {rule.max_cost:g}"
    return f"the lowest {cost} with {metric} within {rule.within:g} of the best"


def _summary(chosen: TradeOffPoint | None, rule: CostRule, metric: str, cost: str, count: int) -> str:
    if count == 0:
        return f"No complete trial with {cost} yet."
    if chosen is None:
        return (
            f"No complete trial has {cost} at most {rule.max_cost:g}." if isinstance(rule, BestUnder) else ""
        )
    return (
        f"Trial {chosen.number}: {metric} {chosen.value:.4g} for {chosen.cost:.4g} {cost} "
        f"({describe_rule(rule, metric, cost)}, among {count} complete trials)."
    )
