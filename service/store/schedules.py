"""Repository of ``hps_schedules`` and ``hps_schedule_runs``. All SQL about schedules lives here.

Rules the scheduler relies on:

- ``lock`` takes the schedule's row lock for the unit of work; with ``skip_locked`` a row another
  transaction holds is not waited for (None is returned), so racing replicas each take different due
  schedules. SQLite has no row locks: its write transactions are exclusive already.
- ``advance`` moves ``next_run_at`` only from the value the caller read (compare-and-set), and a run's
  ``(schedule_id, scheduled_for)`` is unique, so a slot can be claimed by one transaction only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from hps.server.store.mapping import record_of, values_of
from hps.server.store.models import ScheduleRow, ScheduleRunRow, StudyRow

SCHEDULE_STATES = ("active", "paused")
RUN_OUTCOMES = ("started", "skipped", "failed")
RUN_TRIGGERS = ("schedule", "catch_up", "manual")
_FINISHED_STUDY_STATES = ("completed", "cancelled", "failed")


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule as stored, detached from any session."""

    id: int
    name: str
    project: str
    state: str
    cron: str
    timezone: str
    template: dict[str, Any]
    misfire: str
    concurrency: str
    warm_start: dict[str, Any] | None
    promotion: dict[str, Any]
    incumbent: dict[str, Any] | None
    next_run_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ScheduleRunRecord:
    """One slot of a schedule, detached from any session."""

    id: int
    schedule_id: int
    scheduled_for: datetime
    trigger: str
    outcome: str
    detail: str | None
    study_id: int | None
    study_name: str | None
    seeded_from: int | None
    seeded: int
    promotion: dict[str, Any] | None
    evaluated_at: datetime | None
    created_at: datetime


def _schedule(row: ScheduleRow) -> ScheduleRecord:
    return record_of(row, ScheduleRecord)


def _run(row: ScheduleRunRow) -> ScheduleRunRecord:
    return record_of(row, ScheduleRunRecord)


class ScheduleRepository:
    """``hps_schedules`` and their runs within one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Insert a schedule (its ``id`` is ignored) and return it with the id the database gave it."""
        row = ScheduleRow(**values_of(schedule, without=("id",)))
        self.session.add(row)
        self.session.flush()
        return _schedule(row)

    def get(self, schedule_id: int) -> ScheduleRecord | None:
        """One schedule."""
        row = self.session.execute(
            select(ScheduleRow).where(ScheduleRow.id == schedule_id)
        ).scalar_one_or_none()
        return None if row is None else _schedule(row)

    def get_by_name(self, name: str, project: str) -> ScheduleRecord | None:
        """The schedule of ``project`` with this name, if any."""
        query = select(ScheduleRow).where(ScheduleRow.project == project, ScheduleRow.name == name)
        row = self.session.execute(query).scalar_one_or_none()
        return None if row is None else _schedule(row)

    def lock(self, schedule_id: int, *, skip_locked: bool = False) -> ScheduleRecord | None:
        """Read and lock the schedule for this unit of work; None if it does not exist or, with
        ``skip_locked``, another transaction holds it."""
        query = (
            select(ScheduleRow)
            .where(ScheduleRow.id == schedule_id)
            .with_for_update(skip_locked=skip_locked)
            .execution_options(populate_existing=True)
        )
        row = self.session.execute(query).scalar_one_or_none()
        return None if row is None else _schedule(row)

    def page(self, *, limit: int, before_id: int | None, project: str | None) -> list[ScheduleRecord]:
        """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
        query = select(ScheduleRow).order_by(ScheduleRow.id.desc()).limit(limit)
        if before_id is not None:
            query = query.where(ScheduleRow.id < before_id)
        if project is not None:
            query = query.where(ScheduleRow.project == project)
        return [_schedule(row) for row in self.session.execute(query).scalars()]

    def update(self, schedule_id: int, **values: Any) -> None:
        """Write the given columns of one schedule."""
        self.session.execute(update(ScheduleRow).where(ScheduleRow.id == schedule_id).values(**values))

    def advance(self, schedule_id: int, *, seen: datetime, to: datetime, now: datetime) -> bool:
        """Move ``next_run_at`` from ``seen`` to ``to``; False (and nothing written) if it moved meanwhile."""
        result = self.session.execute(
            update(ScheduleRow)
            .where(ScheduleRow.id == schedule_id, ScheduleRow.next_run_at == seen)
            .values(next_run_at=to, updated_at=now)
        )
        return bool(getattr(result, "rowcount", 0) == 1)

    def delete(self, schedule_id: int) -> None:
        """Remove the schedule and its run history (the studies its runs created stay)."""
        self.session.execute(delete(ScheduleRunRow).where(ScheduleRunRow.schedule_id == schedule_id))
        self.session.execute(delete(ScheduleRow).where(ScheduleRow.id == schedule_id))

    def due(self, now: datetime, limit: int) -> list[int]:
        """Ids of active schedules whose next slot has come, most overdue first."""
        query = (
            select(ScheduleRow.id)
            .where(ScheduleRow.state == "active", ScheduleRow.next_run_at <= now)
            .order_by(ScheduleRow.next_run_at, ScheduleRow.id)
            .limit(limit)
        )
        return [int(schedule_id) for schedule_id in self.session.execute(query).scalars()]

    # Runs

    def add_run(self, run: ScheduleRunRecord) -> ScheduleRunRecord:
        """Insert a run (its ``id`` is ignored); a second run for the same slot violates the unique key."""
        row = ScheduleRunRow(**values_of(run, without=("id",)))
        self.session.add(row)
        self.session.flush()
        return _run(row)

    def get_run(self, run_id: int) -> ScheduleRunRecord | None:
        """One run."""
        row = self.session.execute(
            select(ScheduleRunRow).where(ScheduleRunRow.id == run_id)
        ).scalar_one_or_none()
        return None if row is None else _run(row)

    def update_run(self, run_id: int, **values: Any) -> None:
        """Write the given columns of one run."""
        self.session.execute(update(ScheduleRunRow).where(ScheduleRunRow.id == run_id).values(**values))

    def runs_page(self, schedule_id: int, *, limit: int, before_id: int | None) -> list[ScheduleRunRecord]:
        """A schedule's runs, newest first; ``before_id`` is the cursor."""
        query = (
            select(ScheduleRunRow)
            .where(ScheduleRunRow.schedule_id == schedule_id)
            .order_by(ScheduleRunRow.id.desc())
            .limit(limit)
        )
        if before_id is not None:
            query = query.where(ScheduleRunRow.id < before_id)
        return [_run(row) for row in self.session.execute(query).scalars()]

    def last_started_run(self, schedule_id: int) -> ScheduleRunRecord | None:
        """The schedule's latest run that started a study."""
        row = self.session.execute(
            select(ScheduleRunRow)
            .where(ScheduleRunRow.schedule_id == schedule_id, ScheduleRunRow.outcome == "started")
            .order_by(ScheduleRunRow.id.desc())
            .limit(1)
        ).scalar_one_or_none()
        return None if row is None else _run(row)

    def runs_to_evaluate(self, limit: int) -> list[ScheduleRunRecord]:
        """Started runs not yet judged for promotion whose study has finished or is gone, oldest first."""
        query = (
            select(ScheduleRunRow)
            .outerjoin(StudyRow, StudyRow.id == ScheduleRunRow.study_id)
            .where(
                ScheduleRunRow.outcome == "started",
                ScheduleRunRow.evaluated_at.is_(None),
                or_(StudyRow.id.is_(None), StudyRow.state.in_(_FINISHED_STUDY_STATES)),
            )
            .order_by(ScheduleRunRow.id)
            .limit(limit)
        )
        return [_run(row) for row in self.session.execute(query).scalars()]


def count_runs_by_outcome(session: Session) -> dict[str, int]:
    """How many runs ended each way (``started``, ``skipped``, ``failed``), zeros included: the
    ``hps_schedule_runs`` metric."""
    counts = dict.fromkeys(RUN_OUTCOMES, 0)
    query = select(ScheduleRunRow.outcome, func.count()).group_by(ScheduleRunRow.outcome)
    for outcome, count in session.execute(query):
        counts[str(outcome)] = int(count)
    return counts
