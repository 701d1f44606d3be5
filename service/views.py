"""Read models returned by the use cases: a study with its progress and best trial, a trial with its
learning curve. Assembled from the store in a few queries; frozen, so they can cross any boundary.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.orm import Session

from hps.server.store.optuna_storage import OptunaStorageTables, is_storage_study
from hps.server.store.optuna_tables import OptunaTables
from hps.server.store.studies import StudyRecord
from hps.server.store.trials import CostSums, Progress, TrialRecord, TrialRepository


@dataclass(frozen=True, slots=True)
class TrialView:
    """A trial as clients see it."""

    record: TrialRecord
    intermediate_values: list[tuple[int, float | None]]


@dataclass(frozen=True, slots=True)
class StudyView:
    """A study as clients see it."""

    record: StudyRecord
    progress: Progress
    remaining: int
    best: TrialView | None
    cost: CostSums = field(default_factory=CostSums)


def finite_or_none(value: float | None) -> float | None:
    """JSON has no NaN or infinity; a diverged curve shows those points as null."""
    return value if value is not None and math.isfinite(value) else None


def trial_views(session: Session, records: Sequence[TrialRecord]) -> list[TrialView]:
    """Attach learning curves (from Optuna's table) to trial records, in one query."""
    curves = OptunaTables(session).intermediate_values(r.optuna_trial_id for r in records)
    return [
        TrialView(
            record=record,
            intermediate_values=[
                (step, finite_or_none(value)) for step, value in curves[record.optuna_trial_id]
            ],
        )
        for record in records
    ]


def study_views(session: Session, records: Sequence[StudyRecord]) -> list[StudyView]:
    """Attach progress counts and best trials to study records."""
    ids = [r.id for r in records]
    trials = TrialRepository(session)
    progress = trials.progress(ids)
    best = trials.best(ids, {r.id: r.direction for r in records})
    costs = trials.cost_sums(ids)
    best_views = {view.record.study_id: view for view in trial_views(session, list(best.values()))}
    storage_ids = [r.id for r in records if is_storage_study(r)]
    progress.update(_storage_progress(session, storage_ids))
    views = []
    for record in records:
        counts = progress[record.id]
        if is_storage_study(record):  # made by an Optuna client: no budget, no hps trial rows
            views.append(StudyView(record=record, progress=counts, remaining=0, best=None))
            continue
        n_trials = int(record.spec["budget"]["n_trials"])
        views.append(
            StudyView(
                record=record,
                progress=counts,
                remaining=max(0, n_trials - counts.counted),
                best=best_views.get(record.id),
                cost=costs[record.id],
            )
        )
    return views


def _storage_progress(session: Session, study_ids: list[int]) -> dict[int, Progress]:
    """Progress of studies made by an Optuna client, counted on Optuna's own trial rows."""
    counts = OptunaStorageTables(session).trial_counts(study_ids)
    return {
        study_id: Progress(
            complete=by_state.get("complete", 0),
            pruned=by_state.get("pruned", 0),
            failed=by_state.get("fail", 0),
            running=by_state.get("running", 0),
            queued=by_state.get("waiting", 0),
        )
        for study_id, by_state in counts.items()
    }
