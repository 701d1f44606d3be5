"""Repository of ``hps_studies`` rows. All SQL about studies lives here."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from optuna.storages._rdb import models as om
from sqlalchemy import delete, or_, select, update
from sqlalchemy.orm import Session

from hps.server.store.mapping import record_of, values_of
from hps.server.store.models import StudyRow

OPTUNA_STUDIES = om.StudyModel.__table__
OPTUNA_TRIALS = om.TrialModel.__table__

STUDY_STATES = ("running", "paused", "completed", "cancelled", "failed")
DEFAULT_PROJECT = "default"


@dataclass(frozen=True, slots=True)
class StudyRecord:
    """A study as stored, detached from any session."""

    id: int
    name: str
    optuna_name: str  # the name Optuna knows it by (``optuna.load_study``); see ``optuna_study_name``
    project: str
    state: str
    state_reason: str | None
    direction: str
    metric: str
    task_name: str | None
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    deadline_at: datetime | None
    finished_at: datetime | None
    last_claimed_at: datetime | None = None
    warm_start: dict[str, Any] | None = None
    lr_ranges: dict[str, Any] | None = None


def optuna_study_name(project: str, name: str) -> str:
    """The name of a new study in Optuna's tables. Names are unique within a project; Optuna's must be
    unique in the database, so outside the ``default`` project the project comes first, as
    ``<project>/<name>`` (neither a project nor a name can hold a ``/``)."""
    return name if project == DEFAULT_PROJECT else f"{project}/{name}"


def _record(row: StudyRow) -> StudyRecord:
    return record_of(row, StudyRecord)


class StudyRepository:
    """``hps_studies`` within one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, study: StudyRecord) -> None:
        """Insert a new study row."""
        self.session.add(StudyRow(**values_of(study, without=("last_claimed_at",))))
        self.session.flush()

    def get(self, study_id: int) -> StudyRecord | None:
        """One study."""
        query = select(StudyRow).where(StudyRow.id == study_id)
        row = self.session.execute(query).scalar_one_or_none()
        return None if row is None else _record(row)

    def get_by_name(self, name: str, project: str) -> StudyRecord | None:
        """The study of ``project`` with this name, if any."""
        query = select(StudyRow).where(StudyRow.project == project, StudyRow.name == name)
        row = self.session.execute(query).scalar_one_or_none()
        return None if row is None else _record(row)

    def ids_in(self, project: str) -> frozenset[int]:
        """Ids of the project's studies (equal to Optuna's study ids)."""
        query = select(StudyRow.id).where(StudyRow.project == project)
        return frozenset(int(study_id) for study_id in self.session.execute(query).scalars())

    def owns_study(self, project: str, study_id: int) -> bool:
        """True when the study exists and belongs to ``project``."""
        query = select(StudyRow.id).where(StudyRow.id == study_id, StudyRow.project == project)
        return self.session.execute(query).first() is not None

    def owns_trial(self, project: str, optuna_trial_id: int) -> bool:
        """True when Optuna's trial ``optuna_trial_id`` exists in one of ``project``'s studies."""
        query = (
            select(StudyRow.id)
            .join(OPTUNA_TRIALS, OPTUNA_TRIALS.c.study_id == StudyRow.id)
            .where(OPTUNA_TRIALS.c.trial_id == optuna_trial_id, StudyRow.project == project)
        )
        return self.session.execute(query).first() is not None

    def lock(self, study_id: int) -> StudyRecord | None:
        """Read and lock the study for this unit of work: its hps row and Optuna's ``studies`` row (the
        row Optuna itself locks before numbering a trial), in one statement. SQLite has no row locks;
        its write transactions are exclusive already."""
        query = (
            select(StudyRow)
            .join(OPTUNA_STUDIES, OPTUNA_STUDIES.c.study_id == StudyRow.id)
            .where(StudyRow.id == study_id)
            .with_for_update()
        )
        row = self.session.execute(query).scalar_one_or_none()
        return None if row is None else _record(row)

    def page(
        self,
        *,
        state: str | None,
        limit: int,
        before_id: int | None,
        project: str | None = None,
        name: str | None = None,
    ) -> list[StudyRecord]:
        """Newest first; ``before_id`` is the cursor (the last id of the previous page)."""
        query = select(StudyRow).order_by(StudyRow.id.desc()).limit(limit)
        if state is not None:
            query = query.where(StudyRow.state == state)
        if name is not None:
            query = query.where(StudyRow.name == name)
        if before_id is not None:
            query = query.where(StudyRow.id < before_id)
        if project is not None:
            query = query.where(StudyRow.project == project)
        return [_record(row) for row in self.session.execute(query).scalars()]

    def with_state(self, state: str) -> list[StudyRecord]:
        """Every study in ``state``, oldest first."""
        query = select(StudyRow).where(StudyRow.state == state).order_by(StudyRow.id)
        return [_record(row) for row in self.session.execute(query).scalars()]

    def claimable(self, task_names: Sequence[str], now: datetime, project: str | None) -> list[StudyRecord]:
        """Running studies of these tasks (in ``project``, unless None), before their deadline; least
        recently served first."""
        query = (
            select(StudyRow)
            .where(
                StudyRow.state == "running",
                StudyRow.task_name.in_(task_names),
                or_(StudyRow.deadline_at.is_(None), StudyRow.deadline_at > now),
            )
            .order_by(StudyRow.last_claimed_at.asc().nulls_first(), StudyRow.id)
        )
        if project is not None:
            query = query.where(StudyRow.project == project)
        return [_record(row) for row in self.session.execute(query).scalars()]

    def past_deadline(self, now: datetime) -> list[int]:
        """Ids of running studies whose ``timeout_s`` has passed."""
        query = select(StudyRow.id).where(StudyRow.state == "running", StudyRow.deadline_at <= now)
        return [int(study_id) for study_id in self.session.execute(query).scalars()]

    def mark_claimed(self, study_id: int, now: datetime) -> None:
        """Stamp the study as just served, so the next claim prefers the others."""
        self.session.execute(update(StudyRow).where(StudyRow.id == study_id).values(last_claimed_at=now))

    def set_state(self, study_id: int, state: str, *, reason: str | None, now: datetime) -> None:
        """Move a study to ``state``; a terminal state also stamps ``finished_at``."""
        finished = now if state in ("completed", "cancelled", "failed") else None
        self.session.execute(
            update(StudyRow)
            .where(StudyRow.id == study_id)
            .values(state=state, state_reason=reason, updated_at=now, finished_at=finished)
        )

    def set_lr_ranges(self, study_id: int, ranges: dict[str, Any], now: datetime) -> None:
        """Record the lr range each optimizer is searched over (once the study's range tests ended)."""
        self.session.execute(
            update(StudyRow).where(StudyRow.id == study_id).values(lr_ranges=ranges, updated_at=now)
        )

    def delete(self, study_id: int) -> None:
        """Remove the study row; delete its trials first (``TrialRepository.delete_study_trials``)."""
        self.session.execute(delete(StudyRow).where(StudyRow.id == study_id))
