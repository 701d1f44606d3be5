"""Repository of ``hps_lr_range_tests`` rows. All SQL about learning-rate range tests lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, or_, select, update
from sqlalchemy.orm import Session

from hps.server.store.mapping import record_of, values_of
from hps.server.store.models import RangeTestRow

ENDED_STATES = ("complete", "failed")


@dataclass(frozen=True, slots=True)
class RangeTestRecord:
    """One optimizer's range test, detached from any session."""

    id: int
    study_id: int
    optimizer: str
    state: str
    attempt: int
    params: dict[str, Any]
    low: float
    high: float
    steps: int
    batch_size: int
    points: list[Any]
    stopped_early: str | None
    chosen: dict[str, Any] | None
    epochs: float | None
    wall_time_s: float | None
    reason: str | None
    worker_id: str | None
    lease_expires_at: datetime | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


def _record(row: RangeTestRow) -> RangeTestRecord:
    return record_of(row, RangeTestRecord)


class RangeTestRepository:
    """``hps_lr_range_tests`` within one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, tests: Sequence[RangeTestRecord]) -> None:
        """Insert new tests."""
        if tests:
            self.session.execute(insert(RangeTestRow), [values_of(test, without=("id",)) for test in tests])

    def of_study(self, study_id: int, *, lock: bool = False) -> list[RangeTestRecord]:
        """The study's tests in the order they were created; with ``lock``, their rows stay locked."""
        query = select(RangeTestRow).where(RangeTestRow.study_id == study_id).order_by(RangeTestRow.id)
        if lock:
            query = query.with_for_update()
        return [_record(row) for row in self.session.execute(query).scalars()]

    def get(self, study_id: int, optimizer: str, *, lock: bool = False) -> RangeTestRecord | None:
        """One study's test of one optimizer."""
        query = select(RangeTestRow).where(
            RangeTestRow.study_id == study_id, RangeTestRow.optimizer == optimizer
        )
        if lock:
            query = query.with_for_update()
        row = self.session.execute(query).scalar_one_or_none()
        return None if row is None else _record(row)

    def update(self, test_id: int, **values: Any) -> None:
        """Write the given columns of one test."""
        self.session.execute(update(RangeTestRow).where(RangeTestRow.id == test_id).values(**values))

    def expired(self, now: datetime, limit: int) -> list[RangeTestRecord]:
        """Running tests whose lease ran out, oldest first."""
        query = (
            select(RangeTestRow)
            .where(
                RangeTestRow.state == "running",
                or_(RangeTestRow.lease_expires_at.is_(None), RangeTestRow.lease_expires_at < now),
            )
            .order_by(RangeTestRow.lease_expires_at)
            .limit(limit)
        )
        return [_record(row) for row in self.session.execute(query).scalars()]
