"""Writes and reads of Optuna's own tables, inside hps's transactions.

The rows written here are exactly the rows Optuna's ``RDBStorage`` would write (same tables, same
encodings, timestamps as naive UTC), so ``optuna.load_study`` and the Optuna dashboard read them as their
own. Writing them here rather than through ``RDBStorage`` lets an ask or a completion commit together
with its ``hps_*`` rows: a crash can never leave an Optuna trial RUNNING without a lease.

Rules: callers hold the study lock (``StudyRepository.lock``, which also locks Optuna's ``studies`` row
as Optuna's own storage does) before creating trials, because trial numbers count the earlier trials.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from optuna.distributions import distribution_to_json
from optuna.storages._rdb import models as om
from optuna.study import StudyDirection
from optuna.trial import TrialState
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from hps.server.store.draft import Draft
from hps.server.store.ids import IdWatermarks

IntermediateValues = dict[int, list[tuple[int, float]]]
# Core, not ORM, for the trials table: its datetime columns hide behind Python properties in the model.
_TRIALS = om.TrialModel.__table__
# Where ``optuna.Study.set_metric_names`` keeps the objectives' names (optuna/study/study.py).
METRIC_NAMES = "study:metric_names"


def _utc_naive(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def _value_row(value: float) -> tuple[float | None, om.TrialValueModel.TrialValueType]:
    return om.TrialValueModel.value_to_stored_repr(value)


class OptunaTables:
    """Repository over Optuna's schema, bound to one session (one unit of work)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self._ids = IdWatermarks(session)

    def create_study(self, name: str, directions: Sequence[str], metrics: Sequence[str]) -> int:
        """Insert a study, its directions (one per objective: two for a cost-aware study) and its objectives'
        names (which the dashboard and ``study.metric_names`` show); returns Optuna's study id (never one a
        deleted study had)."""
        values: dict[str, Any] = {"study_name": name}
        explicit = self._ids.next_id("study", om.StudyModel.study_id)
        if explicit is not None:
            values["study_id"] = explicit
        study_id = self.session.execute(
            insert(om.StudyModel).values(**values).returning(om.StudyModel.study_id)
        ).scalar_one()
        for objective, direction in enumerate(directions):
            self.session.execute(
                insert(om.StudyDirectionModel).values(
                    study_id=study_id, objective=objective, direction=StudyDirection[direction.upper()]
                )
            )
        self.set_study_system_attr(int(study_id), METRIC_NAMES, list(metrics))
        return int(study_id)

    def study_id_by_name(self, name: str) -> int | None:
        """Optuna's id of the study with this name, if any."""
        found = self.session.execute(
            select(om.StudyModel.study_id).where(om.StudyModel.study_name == name)
        ).scalar_one_or_none()
        return None if found is None else int(found)

    def delete_study(self, study_id: int) -> None:
        """Delete the study and every row that hangs off it; its ids are never handed out again."""
        self._ids.keep("study", om.StudyModel.study_id)
        self._ids.keep("trial", _TRIALS.c.trial_id)
        trial_ids = select(om.TrialModel.trial_id).where(om.TrialModel.study_id == study_id)
        for child in (
            om.TrialParamModel,
            om.TrialValueModel,
            om.TrialIntermediateValueModel,
            om.TrialUserAttributeModel,
            om.TrialSystemAttributeModel,
            om.TrialHeartbeatModel,
        ):
            self.session.execute(delete(child).where(child.trial_id.in_(trial_ids)))
        self.session.execute(delete(om.TrialModel).where(om.TrialModel.study_id == study_id))
        for study_child in (
            om.StudyDirectionModel,
            om.StudyUserAttributeModel,
            om.StudySystemAttributeModel,
        ):
            self.session.execute(delete(study_child).where(study_child.study_id == study_id))
        self.session.execute(delete(om.StudyModel).where(om.StudyModel.study_id == study_id))

    def write_draft(self, draft: Draft) -> int:
        """Persist a sampled trial as RUNNING: a new row, or a WAITING row being started. Returns
        Optuna's trial id."""
        start = _utc_naive(draft.datetime_start)
        if draft.is_new:
            trial_id = self._insert_trial(
                number=draft.number, study_id=draft.study_id, state=TrialState.RUNNING, datetime_start=start
            )
        else:
            trial_id = draft.trial_id
            self.session.execute(
                update(_TRIALS)
                .where(_TRIALS.c.trial_id == trial_id)
                .values(state=TrialState.RUNNING, datetime_start=start)
            )
        self._insert_params(trial_id, draft)
        new_attrs = {k: draft.system_attrs[k] for k in draft.new_system_attr_keys}
        self._insert_attrs(om.TrialSystemAttributeModel, trial_id, new_attrs)
        self._insert_attrs(om.TrialUserAttributeModel, trial_id, draft.user_attrs)
        for key, value in draft.study_system_attrs.items():
            self.set_study_system_attr(draft.study_id, key, value)
        return trial_id

    def insert_waiting_trial(self, study_id: int, number: int, fixed_params: Mapping[str, Any]) -> int:
        """Queue a trial the way ``study.enqueue_trial`` does: WAITING, with ``fixed_params``."""
        trial_id = self._insert_trial(number=number, study_id=study_id, state=TrialState.WAITING)
        self._insert_attrs(om.TrialSystemAttributeModel, trial_id, {"fixed_params": dict(fixed_params)})
        return trial_id

    def finish_trial(
        self,
        trial_id: int,
        state: TrialState,
        value: float | Sequence[float] | None,
        user_attrs: Mapping[str, Any],
        finished: datetime,
    ) -> None:
        """Move a RUNNING or WAITING trial to a finished state, with its value (or one value per objective)
        and user attrs."""
        self.session.execute(
            update(_TRIALS)
            .where(_TRIALS.c.trial_id == trial_id)
            .values(state=state, datetime_complete=_utc_naive(finished))
        )
        values = [] if value is None else [value] if isinstance(value, float | int) else list(value)
        for objective, one in enumerate(values):
            stored, kind = _value_row(one)
            self.session.execute(
                insert(om.TrialValueModel).values(
                    trial_id=trial_id, objective=objective, value=stored, value_type=kind
                )
            )
        self._upsert_attrs(om.TrialUserAttributeModel, trial_id, user_attrs)

    def set_intermediate_value(self, trial_id: int, step: int, value: float) -> None:
        """Record one point of the learning curve; a repeated step overwrites, as in Optuna."""
        model = om.TrialIntermediateValueModel
        stored, kind = model.intermediate_value_to_stored_repr(value)
        updated = self.session.execute(
            update(model)
            .where(model.trial_id == trial_id, model.step == step)
            .values(intermediate_value=stored, intermediate_value_type=kind)
        )
        if getattr(updated, "rowcount", 0) == 0:
            self.session.execute(
                insert(model).values(
                    trial_id=trial_id,
                    step=step,
                    intermediate_value=stored,
                    intermediate_value_type=kind,
                )
            )

    def set_trial_system_attrs(self, trial_id: int, attrs: Mapping[str, Any]) -> None:
        """Upsert system attrs of one trial (a pruner's rung records, for instance)."""
        self._upsert_attrs(om.TrialSystemAttributeModel, trial_id, attrs)

    def intermediate_values(self, trial_ids: Iterable[int]) -> IntermediateValues:
        """Learning curves, keyed by Optuna trial id, each sorted by step."""
        model = om.TrialIntermediateValueModel
        ids = list(trial_ids)
        curves: IntermediateValues = {trial_id: [] for trial_id in ids}
        if not ids:
            return curves
        rows = self.session.execute(
            select(model.trial_id, model.step, model.intermediate_value, model.intermediate_value_type)
            .where(model.trial_id.in_(ids))
            .order_by(model.trial_id, model.step)
        )
        for trial_id, step, stored, kind in rows:
            value = model.stored_repr_to_intermediate_value(stored, kind)
            curves[int(trial_id)].append((int(step), value))
        return curves

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        """Upsert one study system attr (QMC keeps its sample counter there)."""
        model = om.StudySystemAttributeModel
        encoded = json.dumps(value)
        updated = self.session.execute(
            update(model).where(model.study_id == study_id, model.key == key).values(value_json=encoded)
        )
        if getattr(updated, "rowcount", 0) == 0:
            self.session.execute(insert(model).values(study_id=study_id, key=key, value_json=encoded))

    def _insert_trial(self, **values: Any) -> int:
        explicit = self._ids.next_id("trial", _TRIALS.c.trial_id)
        if explicit is not None:
            values["trial_id"] = explicit
        return int(
            self.session.execute(insert(_TRIALS).values(**values).returning(_TRIALS.c.trial_id)).scalar_one()
        )

    def _insert_params(self, trial_id: int, draft: Draft) -> None:
        rows = [
            {
                "trial_id": trial_id,
                "param_name": name,
                "param_value": distribution.to_internal_repr(draft.params[name]),
                "distribution_json": distribution_to_json(distribution),
            }
            for name, distribution in draft.distributions.items()
        ]
        if rows:
            self.session.execute(insert(om.TrialParamModel), rows)

    def _insert_attrs(self, model: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
        rows = [
            {"trial_id": trial_id, "key": key, "value_json": json.dumps(value)}
            for key, value in attrs.items()
        ]
        if rows:
            self.session.execute(insert(model), rows)

    def _upsert_attrs(self, model: Any, trial_id: int, attrs: Mapping[str, Any]) -> None:
        if not attrs:
            return
        self.session.execute(delete(model).where(model.trial_id == trial_id, model.key.in_(list(attrs))))
        self._insert_attrs(model, trial_id, attrs)
