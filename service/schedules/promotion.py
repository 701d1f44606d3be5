"""Promotion: whether a run's winner replaces its schedule's incumbent.

The incumbent is the best configuration a schedule has found so far. A finished run's best trial takes
its place only when it is measured the same way (same metric, same direction) and beats it by the
schedule's margin: ``margin`` in the metric's units, or a fraction of the incumbent's value when
``relative``. The first run with a winner becomes the incumbent. Every decision, with both values, is
kept on the run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hps.wire.schedules import PromotionSpec


@dataclass(frozen=True)
class Candidate:
    """A finished run's best complete trial."""

    value: float
    metric: str
    direction: str
    params: dict[str, Any]
    study_id: int
    study_name: str
    trial_number: int


@dataclass(frozen=True)
class Decision:
    """What promotion decided about one run: ``promoted``, ``kept`` (not better by the margin),
    ``not_comparable`` (another metric or direction), ``no_winner`` or ``ineligible`` (the study was
    cancelled, failed or deleted)."""

    outcome: str
    reason: str
    candidate_value: float | None = None
    incumbent_value: float | None = None
    required: float | None = None

    def as_json(self, promotion: PromotionSpec) -> dict[str, Any]:
        """The run's ``promotion`` record."""
        return {
            "decision": self.outcome,
            "reason": self.reason,
            "candidate_value": self.candidate_value,
            "incumbent_value": self.incumbent_value,
            "required_improvement": self.required,
            "margin": promotion.margin,
            "relative": promotion.relative,
        }


def decide(incumbent: dict[str, Any] | None, candidate: Candidate, promotion: PromotionSpec) -> Decision:
    """Judge ``candidate`` against ``incumbent`` (None: there is none yet)."""
    if incumbent is None:
        return Decision("promoted", "the first run with a winner becomes the incumbent", candidate.value)
    held = float(incumbent["value"])
    if (incumbent["metric"], incumbent["direction"]) != (candidate.metric, candidate.direction):
        return Decision(
            "not_comparable",
            f"the incumbent was measured as {incumbent['direction']} {incumbent['metric']}, this run as "
            f"{candidate.direction} {candidate.metric}: no comparison; PATCH incumbent to null to start over",
            candidate.value,
            held,
        )
    required = promotion.margin * abs(held) if promotion.relative else promotion.margin
    improvement = candidate.value - held if candidate.direction == "maximize" else held - candidate.value
    # Float noise must not decide: 0.91 - 0.90 is 0.010000000000000009, which is not more than 0.01.
    if improvement > required and not math.isclose(improvement, required, rel_tol=1e-9, abs_tol=1e-12):
        reason = f"improves on the incumbent by {improvement:.6g} (more than the required {required:.6g})"
        return Decision("promoted", reason, candidate.value, held, required)
    reason = f"improves on the incumbent by {improvement:.6g}, not more than the required {required:.6g}"
    return Decision("kept", reason, candidate.value, held, required)


def incumbent_of(candidate: Candidate, run_id: int, now: datetime) -> dict[str, Any]:
    """The schedule's new incumbent record."""
    return {
        "params": candidate.params,
        "value": candidate.value,
        "metric": candidate.metric,
        "direction": candidate.direction,
        "study_id": candidate.study_id,
        "study_name": candidate.study_name,
        "trial_number": candidate.trial_number,
        "run_id": run_id,
        "promoted_at": now.isoformat(),
    }
