"""Repository of ``hps_trials`` rows: attempts, leases, outcomes. All SQL about trials lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, delete, func, insert, or_, select, update
from sqlalchemy.orm import Session

from hps.server.store.mapping import record_of, values_of
from hps.server.store.models import StudyRow, TrialRow

TRIAL_STATES = ("running", "queued", "complete", "pruned", "diverged", "failed")
FINISHED_STATES = ("complete", "pruned", "diverged", "failed")


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """One attempt, detached from any session."""

    id: int
    study_id: int
    number: int
    optuna_trial_id: int
    state: str
    reason: str | None
    value: float | None
    params: dict[str, Any]
    attrs: dict[str, Any]
    attempt: int
    retry_of: int | None
    retried_by: int | None
    worker_id: str | None
    lease_expires_at: datetime | None
    completion: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    confirms: int | None = None
    device_seconds: float | None = None
    gpus: float | None = None
    gpu_seconds: float | None = None
    peak_memory_mb: float | None = None
    samples: int | None = None
    money: float | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    """Trial counts of one study. ``failed`` counts failures for good: an attempt that was
    retried is not counted, its retry is."""

    complete: int = 0
    pruned: int = 0
    diverged: int = 0
    failed: int = 0
    running: int = 0
    queued: int = 0
    retried: int = 0

    @property
    def counted(self) -> int:
        """What the budget is charged for."""
        return self.complete + self.pruned + self.diverged + self.failed + self.running + self.queued

    @property
    def attempts(self) -> int:
        """Every attempt ever made, retried ones included: also the next trial's number, because
        each attempt is one Optuna trial and hps creates all of a study's trials."""
        return self.counted + self.retried

    @property
    def finished(self) -> int:
        """Trials that will never run again."""
        return self.complete + self.pruned + self.diverged + self.failed


@dataclass(frozen=True, slots=True)
class CostSums:
    """What a study's finished trials cost together; ``trials`` counts those that sent a cost, ``priced``
    those that also had money (a price was set when they finished)."""

    trials: int = 0
    device_seconds: float = 0.0
    gpu_seconds: float = 0.0
    samples: int = 0
    peak_memory_mb: float | None = None
    priced: int = 0
    money: float = 0.0


@dataclass(frozen=True, slots=True)
class StudyTrialCounts:
    """One study's name and project with its trial counts (``Progress`` buckets), for monitoring."""

    study_id: int
    name: str
    project: str
    progress: Progress


def _progress_bucket() -> ColumnElement[str]:
    """The ``Progress`` field a row counts in: its state, but ``retried`` for a failed attempt that was
    retried (the budget counts the retry instead)."""
    counted_failure = and_(TrialRow.state == "failed", TrialRow.retried_by.is_(None))
    return case((TrialRow.state != "failed", TrialRow.state), (counted_failure, "failed"), else_="retried")


def _record(row: TrialRow) -> TrialRecord:
    return record_of(row, TrialRecord)


class TrialRepository:
    """``hps_trials`` within one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def progress(self, study_ids: Sequence[int]) -> dict[int, Progress]:
        """Counts by state for each study, in one query."""
        bucket = _progress_bucket()
        rows = self.session.execute(
            select(TrialRow.study_id, bucket, func.count())
            .where(TrialRow.study_id.in_(study_ids))
            .group_by(TrialRow.study_id, bucket)
        )
        counts: dict[int, dict[str, int]] = {study_id: {} for study_id in study_ids}
        for study_id, state, count in rows:
            counts[study_id][state] = int(count)
        return {study_id: Progress(**by_state) for study_id, by_state in counts.items()}

    def add(self, trial: TrialRecord) -> None:
        """Insert an attempt (running, or queued for a retry)."""
        self.session.execute(insert(TrialRow), [values_of(trial, without=("id",))])

    def get(self, study_id: int, number: int, *, lock: bool = False) -> TrialRecord | None:
        """One attempt by study and number; with ``lock``, its row stays locked."""
        query = select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.number == number)
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        return None if row is None else _record(row)

    def next_queued(self, study_id: int) -> TrialRecord | None:
        """The oldest queued attempt, to hand out before sampling anything new."""
        row = self.session.execute(
            select(TrialRow)
            .where(TrialRow.study_id == study_id, TrialRow.state == "queued")
            .order_by(TrialRow.number)
            .limit(1)
        ).scalar_one_or_none()
        return None if row is None else _record(row)

    def update(self, trial_id: int, **values: Any) -> None:
        """Write the given columns of one attempt."""
        self.session.execute(update(TrialRow).where(TrialRow.id == trial_id).values(**values))

    def page(
        self, study_id: int, *, state: str | None, limit: int, after_number: int | None
    ) -> list[TrialRecord]:
        """Trials in number order; ``after_number`` is the cursor."""
        query = select(TrialRow).where(TrialRow.study_id == study_id).order_by(TrialRow.number).limit(limit)
        if state is not None:
            query = query.where(TrialRow.state == state)
        if after_number is not None:
            query = query.where(TrialRow.number > after_number)
        return [_record(row) for row in self.session.execute(query).scalars()]

    def best(self, study_ids: Sequence[int], direction_of: dict[int, str]) -> dict[int, TrialRecord]:
        """The best complete trial of each study that has one."""
        best: dict[int, TrialRecord] = {}
        for study_id in study_ids:
            order = TrialRow.value.desc() if direction_of[study_id] == "maximize" else TrialRow.value
            row = self.session.execute(
                select(TrialRow)
                .where(TrialRow.study_id == study_id, TrialRow.state == "complete")
                .order_by(order, TrialRow.number)
                .limit(1)
            ).scalar_one_or_none()
            if row is not None:
                best[study_id] = _record(row)
        return best

    def top_complete(self, study_id: int, direction: str, limit: int) -> list[TrialRecord]:
        """The study's best complete trials, best first (ties: lower number first)."""
        order = TrialRow.value.desc() if direction == "maximize" else TrialRow.value
        query = (
            select(TrialRow)
            .where(TrialRow.study_id == study_id, TrialRow.state == "complete")
            .order_by(order, TrialRow.number)
            .limit(limit)
        )
        return [_record(row) for row in self.session.execute(query).scalars()]

    def has_confirmations(self, study_id: int) -> bool:
        """Whether the study's confirmation runs were ever queued."""
        query = (
            select(TrialRow.id).where(TrialRow.study_id == study_id, TrialRow.confirms.is_not(None)).limit(1)
        )
        return self.session.execute(query).first() is not None

    def queued(self, study_id: int) -> list[TrialRecord]:
        """Every queued attempt of the study."""
        query = select(TrialRow).where(TrialRow.study_id == study_id, TrialRow.state == "queued")
        return [_record(row) for row in self.session.execute(query).scalars()]

    def expired(self, now: datetime, limit: int) -> list[TrialRecord]:
        """Running attempts whose lease ran out, oldest first."""
        query = (
            select(TrialRow)
            .where(
                TrialRow.state == "running",
                or_(TrialRow.lease_expires_at.is_(None), TrialRow.lease_expires_at < now),
            )
            .order_by(TrialRow.lease_expires_at)
            .limit(limit)
        )
        return [_record(row) for row in self.session.execute(query).scalars()]

    def delete_study_trials(self, study_id: int) -> None:
        """Remove every attempt of the study."""
        self.session.execute(delete(TrialRow).where(TrialRow.study_id == study_id))

    def counts_by_study(self) -> list[StudyTrialCounts]:
        """Trial counts of every study (studies without trials included), in one query: what the
        ``hps_trials`` gauge shows at each scrape."""
        bucket = _progress_bucket()
        rows = self.session.execute(
            select(StudyRow.id, StudyRow.name, StudyRow.project, bucket, func.count(TrialRow.id))
            .outerjoin(TrialRow, TrialRow.study_id == StudyRow.id)
            .group_by(StudyRow.id, StudyRow.name, StudyRow.project, bucket)
            .order_by(StudyRow.id)
        )
        studies: dict[int, tuple[str, str]] = {}
        counts: dict[int, dict[str, int]] = {}
        for study_id, name, project, state, count in rows:
            studies[study_id] = (name, project)
            by_state = counts.setdefault(study_id, {})
            if count:  # a study without trials joins one row of NULLs, counted as 0
                by_state[state] = int(count)
        return [
            StudyTrialCounts(study_id, name, project, Progress(**counts[study_id]))
            for study_id, (name, project) in studies.items()
        ]

    def cost_sums(self, study_ids: Sequence[int]) -> dict[int, CostSums]:
        """Cost totals of the given studies (every id present; zeros for a study without costs), in one
        query."""
        sums = {study_id: CostSums() for study_id in study_ids}
        if not sums:
            return sums
        query = (
            select(
                TrialRow.study_id,
                func.count(TrialRow.device_seconds),
                func.coalesce(func.sum(TrialRow.device_seconds), 0.0),
                func.coalesce(func.sum(TrialRow.gpu_seconds), 0.0),
                func.coalesce(func.sum(TrialRow.samples), 0),
                func.max(TrialRow.peak_memory_mb),
                func.count(TrialRow.money),
                func.coalesce(func.sum(TrialRow.money), 0.0),
            )
            .where(TrialRow.study_id.in_(list(study_ids)), TrialRow.device_seconds.is_not(None))
            .group_by(TrialRow.study_id)
        )
        for study_id, count, device, gpu, samples, peak, priced, money in self.session.execute(query):
            sums[study_id] = CostSums(
                trials=int(count),
                device_seconds=float(device or 0.0),
                gpu_seconds=float(gpu or 0.0),
                samples=int(samples or 0),
                peak_memory_mb=None if peak is None else float(peak),
                priced=int(priced),
                money=float(money or 0.0),
            )
        return sums

    def count_live_leases(self, now: datetime) -> int:
        """Running attempts whose lease has not run out yet."""
        query = (
            select(func.count())
            .select_from(TrialRow)
            .where(TrialRow.state == "running", TrialRow.lease_expires_at >= now)
        )
        return int(self.session.execute(query).scalar_one())
