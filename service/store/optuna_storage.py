"""SQL of the Optuna storage protocol (``/v1/optuna``) that Optuna's own ``RDBStorage`` cannot do for hps:
studies made by an Optuna client (the Optuna rows and the ``hps_studies`` row in one transaction), who
owns a study or a trial, and heartbeats with the grace period the client chose (so hps's reaper can fail
a trial whose client died). Everything else of the protocol is ``RDBStorage``'s own code on the same
database, so the rows are Optuna's by construction.

A study made this way is an *Optuna-storage study*: its ``hps_studies.spec`` is ``{"kind": "optuna",
"directions": [...]}`` instead of a StudySpec, because its client samples (see :func:`is_storage_study`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from optuna.storages._rdb import models as om
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from hps.server.errors import StudyNameTaken
from hps.server.store.ids import IdWatermarks
from hps.server.store.mapping import record_of
from hps.server.store.models import StudyRow
from hps.server.store.studies import StudyRecord, StudyRepository, optuna_study_name

STORAGE_KIND = "optuna"
# Trial system attr: the grace period (s) the client's heartbeat promised; the reaper honours it.
GRACE_ATTR = "hps:heartbeat_grace_s"
# Trial system attr set by the reaper on a trial it failed: why.
REAPED_ATTR = "hps:reaped"
# Study system attr: ids of trials the reaper failed that no client has run its callback on yet.
UNREPORTED_ATTR = "hps:reaped_unreported"

_TRIALS = om.TrialModel.__table__
_BEATS = om.TrialHeartbeatModel.__table__
_SYSTEM = om.TrialSystemAttributeModel.__table__


def is_storage_study(record: StudyRecord) -> bool:
    """True for a study an Optuna client made through ``/v1/optuna`` (its client samples; hps does not)."""
    return record.spec.get("kind") == STORAGE_KIND


@dataclass(frozen=True, slots=True)
class Owner:
    """Who a study belongs to, and whether an Optuna client may write to it. Never changes."""

    study_id: int
    project: str
    writable: bool


@dataclass(frozen=True, slots=True)
class StaleTrial:
    """A running trial whose heartbeat is older than its grace period."""

    study_id: int
    trial_id: int
    number: int
    heartbeat: datetime
    grace_s: int


class OptunaStorageTables:
    """The protocol's own SQL, bound to one session (one unit of work)."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def create_study(self, project: str, name: str, directions: Sequence[str], now: datetime) -> StudyRecord:
        """Insert Optuna's study with its directions and the ``hps_studies`` row; ``StudyNameTaken`` when
        the project has a study of that name."""
        optuna_name = optuna_study_name(project, name)
        studies = StudyRepository(self.session)
        taken = studies.get_by_name(name, project) is not None
        found = self.session.execute(
            select(om.StudyModel.study_id).where(om.StudyModel.study_name == optuna_name)
        ).first()
        if taken or found is not None:
            raise StudyNameTaken(name)
        values: dict[str, Any] = {"study_name": optuna_name}
        explicit = IdWatermarks(self.session).next_id("study", om.StudyModel.study_id)
        if explicit is not None:
            values["study_id"] = explicit
        study_id = int(
            self.session.execute(
                insert(om.StudyModel).values(**values).returning(om.StudyModel.study_id)
            ).scalar_one()
        )
        self.session.execute(
            insert(om.StudyDirectionModel),
            [
                {"study_id": study_id, "objective": index, "direction": StudyDirection[direction]}
                for index, direction in enumerate(directions)
            ],
        )
        record = StudyRecord(
            id=study_id,
            name=name,
            optuna_name=optuna_name,
            project=project,
            state="running",
            state_reason=None,
            direction=directions[0].lower(),
            metric="value",
            task_name=None,
            spec={"kind": STORAGE_KIND, "directions": [d.lower() for d in directions]},
            created_at=now,
            updated_at=now,
            deadline_at=None,
            finished_at=None,
        )
        studies.add(record)
        return record

    def owner(self, study_id: int) -> Owner | None:
        """The study's project and kind, if it is an hps study."""
        row = self.session.execute(
            select(StudyRow.project, StudyRow.spec).where(StudyRow.id == study_id)
        ).first()
        if row is None:
            return None
        project, spec = row
        return Owner(study_id, str(project), (spec or {}).get("kind") == STORAGE_KIND)

    def study_of_trial(self, trial_id: int) -> int | None:
        """The study Optuna's trial ``trial_id`` belongs to."""
        found = self.session.execute(
            select(_TRIALS.c.study_id).where(_TRIALS.c.trial_id == trial_id)
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def studies_in(self, project: str) -> list[StudyRecord]:
        """Every study of the project, oldest first."""
        rows = self.session.execute(
            select(StudyRow).where(StudyRow.project == project).order_by(StudyRow.id)
        ).scalars()
        return [record_of(row, StudyRecord) for row in rows]

    def beat(self, trial_id: int, grace_s: int) -> None:
        """Record a heartbeat now (the database's clock, as ``RDBStorage`` does) and, on the first, the
        grace period the client keeps."""
        updated = self.session.execute(
            update(_BEATS).where(_BEATS.c.trial_id == trial_id).values(heartbeat=func.now())
        )
        if getattr(updated, "rowcount", 0) == 0:
            self.session.execute(insert(_BEATS).values(trial_id=trial_id, heartbeat=func.now()))
            self.session.execute(
                delete(_SYSTEM).where(_SYSTEM.c.trial_id == trial_id, _SYSTEM.c.key == GRACE_ATTR)
            )
            self.session.execute(
                insert(_SYSTEM).values(trial_id=trial_id, key=GRACE_ATTR, value_json=json.dumps(grace_s))
            )

    def database_now(self) -> datetime:
        """The database's clock, naive, as heartbeats are written."""
        moment = self.session.execute(select(func.now())).scalar_one()
        return moment.replace(tzinfo=None)

    def stale(self, study_id: int | None, grace_s: int | None) -> list[StaleTrial]:
        """Running trials (of one study, or of any) whose heartbeat is older than ``grace_s`` (None: the
        grace period each trial's client recorded; trials without one are skipped)."""
        grace = select(_SYSTEM.c.trial_id, _SYSTEM.c.value_json).where(_SYSTEM.c.key == GRACE_ATTR).subquery()
        query = (
            select(
                _TRIALS.c.study_id,
                _TRIALS.c.trial_id,
                _TRIALS.c.number,
                _BEATS.c.heartbeat,
                grace.c.value_json,
            )
            .join(_BEATS, _BEATS.c.trial_id == _TRIALS.c.trial_id)
            .outerjoin(grace, grace.c.trial_id == _TRIALS.c.trial_id)
            .where(_TRIALS.c.state == TrialState.RUNNING)
            .order_by(_TRIALS.c.trial_id)
        )
        if study_id is not None:
            query = query.where(_TRIALS.c.study_id == study_id)
        now = self.database_now()
        found = []
        for study, trial, number, heartbeat, grace_json in self.session.execute(query):
            limit = grace_s if grace_s is not None else (json.loads(grace_json) if grace_json else None)
            if limit is None:
                continue
            if (now - heartbeat).total_seconds() > limit:
                found.append(StaleTrial(int(study), int(trial), int(number), heartbeat, int(limit)))
        return found

    def fail_reaped(self, trial_id: int, reason: str, now: datetime) -> bool:
        """Fail a running trial for the reaper; False when it is no longer running."""
        done = self.session.execute(
            update(_TRIALS)
            .where(_TRIALS.c.trial_id == trial_id, _TRIALS.c.state == TrialState.RUNNING)
            .values(state=TrialState.FAIL, datetime_complete=now.replace(tzinfo=None))
        )
        if getattr(done, "rowcount", 0) == 0:
            return False
        self.session.execute(
            delete(_SYSTEM).where(_SYSTEM.c.trial_id == trial_id, _SYSTEM.c.key == REAPED_ATTR)
        )
        self.session.execute(
            insert(_SYSTEM).values(trial_id=trial_id, key=REAPED_ATTR, value_json=json.dumps(reason))
        )
        return True

    def unreported(self, study_id: int) -> list[int]:
        """Trials the reaper failed whose failure no client has heard of."""
        model = om.StudySystemAttributeModel
        found = self.session.execute(
            select(model.value_json).where(model.study_id == study_id, model.key == UNREPORTED_ATTR)
        ).scalar_one_or_none()
        return [int(i) for i in json.loads(found)] if found else []

    def set_unreported(self, study_id: int, trial_ids: Sequence[int]) -> None:
        """Replace the list of reaped trials no client has heard of."""
        model = om.StudySystemAttributeModel
        self.session.execute(delete(model).where(model.study_id == study_id, model.key == UNREPORTED_ATTR))
        if trial_ids:
            self.session.execute(
                insert(model).values(
                    study_id=study_id, key=UNREPORTED_ATTR, value_json=json.dumps(list(trial_ids))
                )
            )

    def lock_study(self, study_id: int) -> None:
        """Lock Optuna's study row for this unit of work (as ``RDBStorage`` does to number trials)."""
        self.session.execute(
            select(om.StudyModel.study_id).where(om.StudyModel.study_id == study_id).with_for_update()
        )

    def trial_counts(self, study_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        """Optuna trial counts by state name (lower case) per study, in one query."""
        counts: dict[int, dict[str, int]] = {study_id: {} for study_id in study_ids}
        if not study_ids:
            return counts
        rows = self.session.execute(
            select(_TRIALS.c.study_id, _TRIALS.c.state, func.count())
            .where(_TRIALS.c.study_id.in_(list(study_ids)))
            .group_by(_TRIALS.c.study_id, _TRIALS.c.state)
        )
        for study_id, state, count in rows:
            name = state.name if isinstance(state, TrialState) else str(state)
            counts[int(study_id)][name.lower()] = int(count)
        return counts
