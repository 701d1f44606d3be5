"""Use cases of Optuna's storage protocol over HTTP (``/v1/optuna``, the server side of
``hps.optuna.HpsStorage``).

Each call is one of ``optuna.storages.BaseStorage``'s methods, run by Optuna's own ``RDBStorage`` on hps's
database (so the rows are exactly Optuna's and there is no second source of truth), after hps's rules:
the study or trial must be in the caller's project (another project's is "not found", as everywhere in
hps), and an Optuna client writes only to studies it made (a study hps samples is read-only here).
Creating a study writes Optuna's rows and the ``hps_studies`` row in one transaction, so it is listed by
``GET /v1/studies``, the dashboard and ``hps report`` like any other.

Who owns a study never changes and ids are never reused, so owners are cached per process.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    distribution_to_json,
    json_to_distribution,
)
from optuna.exceptions import DuplicatedStudyError, StorageInternalError, UpdateFinishedTrialError
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from hps.server.clock import utcnow
from hps.server.errors import (
    InvalidInput,
    OptunaRecordNotFound,
    ServiceUnavailable,
    StudyDrivenByHps,
    StudyNameTaken,
    StudyNotFound,
    StudyNotRunning,
    TrialFinished,
    TrialNotFound,
)
from hps.server.store.database import Database
from hps.server.store.optuna_storage import OptunaStorageTables, Owner
from hps.server.store.studies import StudyRecord, StudyRepository
from hps.server.store.trials import TrialRecord
from hps.server.views import TrialView, finite_or_none
from hps.wire.optuna import (
    DirectionName,
    Real,
    StudyInfo,
    TrialIn,
    TrialWire,
    from_real,
    naive_time,
    to_real,
)

T = TypeVar("T")
_MAX_CACHED = 100_000


def _attrs(encoded: dict[str, str]) -> dict[str, Any]:
    return {key: json.loads(text) for key, text in encoded.items()}


def trial_wire(trial: FrozenTrial) -> TrialWire:
    """A frozen trial as it travels (params in their internal representation)."""
    return TrialWire(
        trial_id=trial._trial_id,
        number=trial.number,
        state=trial.state.name,
        values=None if trial.values is None else [to_real(v) for v in trial.values],
        datetime_start=naive_time(trial.datetime_start),
        datetime_complete=naive_time(trial.datetime_complete),
        params={
            name: to_real(trial.distributions[name].to_internal_repr(value))
            for name, value in trial.params.items()
        },
        distributions={name: distribution_to_json(d) for name, d in trial.distributions.items()},
        user_attrs={key: json.dumps(value) for key, value in trial.user_attrs.items()},
        system_attrs={key: json.dumps(value) for key, value in trial.system_attrs.items()},
        intermediate_values={step: to_real(v) for step, v in trial.intermediate_values.items()},
    )


def _distribution(text: str, field: str) -> BaseDistribution:
    try:
        return json_to_distribution(text)
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        raise InvalidInput(f"not an Optuna distribution: {exc}", field=field) from None


def _check_choice(distribution: BaseDistribution, internal: float, field: str) -> None:
    """A categorical param's internal value is the index of a choice: anything else could never be read
    back. (Numeric params may lie outside their range: Optuna's storages keep what they are given.)"""
    if not isinstance(distribution, CategoricalDistribution):
        return
    if not (math.isfinite(internal) and internal == int(internal) and distribution._contains(internal)):
        raise InvalidInput(f"{internal} is not the index of one of the choices", field=field)


def template_trial(wire: TrialIn) -> FrozenTrial:
    """The template of ``create_new_trial`` as Optuna's ``FrozenTrial``; 422 naming the field when a
    param does not fit its distribution."""
    distributions = {
        name: _distribution(text, f"distributions.{name}") for name, text in wire.distributions.items()
    }
    if set(distributions) != set(wire.params):
        raise InvalidInput("params and distributions must name the same params", field="template.params")
    params = {}
    for name, internal in wire.params.items():
        _check_choice(distributions[name], from_real(internal), f"template.params.{name}")
        try:
            params[name] = distributions[name].to_external_repr(from_real(internal))
        except (ValueError, IndexError, TypeError):
            raise InvalidInput(
                f"{internal} does not fit {name}'s distribution", field=f"params.{name}"
            ) from None
    values = None if wire.values is None else [from_real(v) for v in wire.values]
    return FrozenTrial(
        number=0,
        state=TrialState[wire.state],
        value=None,
        values=values,
        datetime_start=wire.datetime_start,
        datetime_complete=wire.datetime_complete,
        params=params,
        distributions=distributions,
        user_attrs=_attrs(wire.user_attrs),
        system_attrs=_attrs(wire.system_attrs),
        intermediate_values={step: from_real(v) for step, v in wire.intermediate_values.items()},
        trial_id=0,
    )


@dataclass(frozen=True, slots=True)
class StaleTrials:
    """Answer of :meth:`OptunaStorageService.stale_trials`."""

    stale: list[int]
    reaped: list[int]


class OptunaStorageService:
    """The protocol's use cases over one database. Thread safe."""

    def __init__(self, db: Database, storage: RDBStorage) -> None:
        self.db = db
        self.storage = storage
        self._owners: dict[int, Owner] = {}
        self._trial_studies: dict[int, int] = {}
        self._lock = threading.Lock()

    # Studies

    def create_study(self, project: str, name: str, directions: Sequence[DirectionName]) -> int:
        """A new study sampled by its client; ``StudyNameTaken`` when the project has one of that name."""
        now = utcnow()

        def work(session: Session) -> StudyRecord:
            return OptunaStorageTables(session).create_study(project, name, directions, now)

        record = self.db.run(work, write=True)
        self._remember(Owner(record.id, project, True))
        return record.id

    def study_id(self, project: str, name: str) -> int:
        """The id of the project's study with this name."""
        record = self.db.run(lambda s: StudyRepository(s).get_by_name(name, project), write=False)
        if record is None:
            raise OptunaRecordNotFound(f"no study named {name!r}", field="name")
        return record.id

    def study(self, project: str, study_id: int) -> StudyInfo:
        """A study's name, directions and attrs."""
        self.owner(project, study_id)
        record = self.db.run(lambda s: StudyRepository(s).get(study_id), write=False)
        if record is None:
            raise OptunaRecordNotFound(f"study {study_id} not found", field="study_id")
        return self._info(record)

    def studies(self, project: str) -> list[StudyInfo]:
        """Every study of the project."""
        records = self.db.run(lambda s: OptunaStorageTables(s).studies_in(project), write=False)
        return [self._info(record) for record in records]

    def set_study_attr(self, project: str, study_id: int, system: bool, key: str, value_json: str) -> None:
        """Set one user (or system) attr of a study the caller's client made."""
        self.owner(project, study_id, write=True)
        setter = self.storage.set_study_system_attr if system else self.storage.set_study_user_attr
        _optuna(lambda: setter(study_id, key, json.loads(value_json)))

    # Trials

    def create_trial(self, project: str, study_id: int, template: TrialIn | None) -> TrialWire:
        """A new trial (RUNNING, or like the template) in a running study the caller's client made."""
        self.owner(project, study_id, write=True)
        record = self.db.run(lambda s: StudyRepository(s).get(study_id), write=False)
        if record is None:
            raise OptunaRecordNotFound(f"study {study_id} not found", field="study_id")
        if record.state != "running":
            raise StudyNotRunning(study_id, record.state)
        frozen = template_trial(template) if template is not None else None
        trial = _optuna(lambda: self.storage._create_new_trial(study_id, frozen))
        with self._lock:
            self._trial_studies[trial._trial_id] = study_id
        return trial_wire(trial)

    def trials(self, project: str, study_id: int, after: int, watch: set[int]) -> list[TrialWire]:
        """The study's trials with an id above ``after``, and those in ``watch`` (what a client's cache
        does not hold finished): what changed since the client last looked."""
        self.owner(project, study_id)
        found = _optuna(lambda: self.storage._get_trials(study_id, None, watch, after))
        return [trial_wire(t) for t in found]

    def trial(self, project: str, trial_id: int) -> TrialWire:
        """One trial."""
        self.trial_owner(project, trial_id)
        return trial_wire(_optuna(lambda: self.storage.get_trial(trial_id)))

    def trial_id(self, project: str, study_id: int, number: int) -> int:
        """The id of the study's trial ``number``."""
        self.owner(project, study_id)
        return _optuna(lambda: self.storage.get_trial_id_from_study_id_trial_number(study_id, number))

    def set_param(self, project: str, trial_id: int, name: str, value: Real, distribution_json: str) -> None:
        """Set a param of a running trial; 422 when its distribution clashes with the study's earlier one."""
        self.trial_owner(project, trial_id, write=True)
        distribution = _distribution(distribution_json, "distribution_json")
        _check_choice(distribution, from_real(value), "value")
        _optuna(lambda: self.storage.set_trial_param(trial_id, name, from_real(value), distribution))

    def set_state(
        self, project: str, trial_id: int, state: str, values: Sequence[Real] | None
    ) -> tuple[bool, TrialWire]:
        """Move a trial to ``state`` (with its values); False when another client started a WAITING
        trial first. With the trial as it is now."""
        self.trial_owner(project, trial_id, write=True)
        floats = None if values is None else [from_real(v) for v in values]
        updated = _optuna(lambda: self.storage.set_trial_state_values(trial_id, TrialState[state], floats))
        return updated, trial_wire(_optuna(lambda: self.storage.get_trial(trial_id)))

    def set_intermediate(self, project: str, trial_id: int, step: int, value: Real) -> None:
        """Record one point of a running trial's learning curve."""
        self.trial_owner(project, trial_id, write=True)
        _optuna(lambda: self.storage.set_trial_intermediate_value(trial_id, step, from_real(value)))

    def set_trial_attr(self, project: str, trial_id: int, system: bool, key: str, value_json: str) -> None:
        """Set one user (or system) attr of a running trial."""
        self.trial_owner(project, trial_id, write=True)
        setter = self.storage.set_trial_system_attr if system else self.storage.set_trial_user_attr
        _optuna(lambda: setter(trial_id, key, json.loads(value_json)))

    # Heartbeats

    def heartbeat(self, project: str, trial_id: int, grace_s: int) -> None:
        """Record a heartbeat of a running trial (its lease, in hps's terms)."""
        self.trial_owner(project, trial_id, write=True)

        def work(session: Session) -> None:
            state = _optuna(lambda: self.storage.get_trial(trial_id)).state
            if state.is_finished():
                raise TrialFinished(f"trial {trial_id} has finished ({state.name})", field="trial_id")
            OptunaStorageTables(session).beat(trial_id, grace_s)

        self.db.run(work, write=True)

    def stale_trials(self, project: str, study_id: int, grace_s: int) -> StaleTrials:
        """Running trials whose heartbeat is older than ``grace_s`` (the caller fails them), and the
        trials hps's reaper failed that no client has run its callback on (handed out once)."""
        self.owner(project, study_id, write=True)

        def work(session: Session) -> StaleTrials:
            tables = OptunaStorageTables(session)
            tables.lock_study(study_id)
            stale = [t.trial_id for t in tables.stale(study_id, grace_s)]
            reaped = tables.unreported(study_id)
            if reaped:
                tables.set_unreported(study_id, [])
            return StaleTrials(stale, reaped)

        return self.db.run(work, write=True)

    # Ownership

    def owner(self, project: str, study_id: int, *, write: bool = False) -> Owner:
        """The study's owner, if it is the caller's project's; with ``write``, it must be one an Optuna
        client made."""
        with self._lock:
            owner = self._owners.get(study_id)
        if owner is None:
            owner = self.db.run(lambda s: OptunaStorageTables(s).owner(study_id), write=False)
            if owner is not None:
                self._remember(owner)
        if owner is None or owner.project != project:
            raise OptunaRecordNotFound(f"study {study_id} not found", field="study_id")
        if write and not owner.writable:
            raise StudyDrivenByHps(study_id)
        return owner

    def trial_owner(self, project: str, trial_id: int, *, write: bool = False) -> Owner:
        """The owner of the trial's study (see :meth:`owner`)."""
        with self._lock:
            study_id = self._trial_studies.get(trial_id)
        if study_id is None:
            study_id = self.db.run(lambda s: OptunaStorageTables(s).study_of_trial(trial_id), write=False)
            if study_id is None:
                raise OptunaRecordNotFound(f"trial {trial_id} not found", field="trial_id")
            with self._lock:
                self._trial_studies[trial_id] = study_id
        try:
            return self.owner(project, study_id, write=write)
        except OptunaRecordNotFound:
            raise OptunaRecordNotFound(f"trial {trial_id} not found", field="trial_id") from None

    def _remember(self, owner: Owner) -> None:
        with self._lock:
            if len(self._owners) > _MAX_CACHED:
                self._owners.clear()
            if len(self._trial_studies) > _MAX_CACHED:
                self._trial_studies.clear()
            self._owners[owner.study_id] = owner

    def _info(self, record: StudyRecord) -> StudyInfo:
        directions = _optuna(lambda: self.storage.get_study_directions(record.id))
        user = _optuna(lambda: self.storage.get_study_user_attrs(record.id))
        system = _optuna(lambda: self.storage.get_study_system_attrs(record.id))
        return StudyInfo(
            study_id=record.id,
            study_name=record.name,
            directions=[d.name for d in directions],
            user_attrs={key: json.dumps(value) for key, value in user.items()},
            system_attrs={key: json.dumps(value) for key, value in system.items()},
        )


def _optuna(call: Callable[[], T]) -> T:
    """Run one of ``RDBStorage``'s methods; its exceptions become hps's domain errors."""
    try:
        return call()
    except KeyError as exc:
        raise OptunaRecordNotFound(str(exc.args[0]) if exc.args else "not found") from None
    except UpdateFinishedTrialError as exc:
        raise TrialFinished(str(exc)) from None
    except DuplicatedStudyError as exc:
        raise StudyNameTaken(str(exc)) from None
    except (StorageInternalError, SQLAlchemyError):
        raise ServiceUnavailable("the database is unreachable or busy; retry shortly") from None
    except (ValueError, RuntimeError) as exc:
        raise InvalidInput(str(exc)[:500]) from None


def reap_stale_storage_trials(db: Database, now: datetime | None = None) -> int:
    """Fail running trials of Optuna-storage studies whose heartbeat is older than the grace period their
    client keeps (the client died); each is listed for the next client's failed-trial callback
    (``RetryFailedTrialCallback`` re-enqueues it). Returns how many were failed."""
    moment = now or utcnow()
    candidates = db.run(lambda s: OptunaStorageTables(s).stale(None, None), write=False)
    failed = 0
    for stale in candidates:

        def work(session: Session, stale: Any = stale) -> bool:
            tables = OptunaStorageTables(session)
            tables.lock_study(stale.study_id)
            reason = f"no heartbeat for {stale.grace_s} s (last {stale.heartbeat.isoformat()}): failed by hps"
            if not tables.fail_reaped(stale.trial_id, reason, moment):
                return False
            tables.set_unreported(stale.study_id, [*tables.unreported(stale.study_id), stale.trial_id])
            return True

        failed += db.run(work, write=True)
    return failed


_HPS_STATES = {
    TrialState.COMPLETE: "complete",
    TrialState.PRUNED: "pruned",
    TrialState.FAIL: "failed",
    TrialState.RUNNING: "running",
    TrialState.WAITING: "queued",
}
# hps's state name → Optuna's ("diverged" is hps's own: an Optuna client's trial never is).
_OPTUNA_STATES = {name: state for state, name in _HPS_STATES.items()}


def _aware(moment: datetime | None) -> datetime | None:
    # Optuna's storages write naive times (the server's clock; UTC in hps's deployments).
    return None if moment is None else moment.replace(tzinfo=UTC)


def storage_trial_views(trials: Sequence[FrozenTrial], study_id: int) -> list[TrialView]:
    """Trials of a study an Optuna client made, as hps shows trials (for its report): the first
    objective's value, user attrs as attrs, each trial one attempt."""
    views = []
    for trial in sorted(trials, key=lambda t: t.number):
        started = _aware(trial.datetime_start)
        record = TrialRecord(
            id=trial._trial_id,
            study_id=study_id,
            number=trial.number,
            optuna_trial_id=trial._trial_id,
            state=_HPS_STATES[trial.state],
            reason=None,
            value=trial.values[0] if trial.values else None,
            params=dict(trial.params),
            attrs=dict(trial.user_attrs),
            attempt=1,
            retry_of=None,
            retried_by=None,
            worker_id=None,
            lease_expires_at=None,
            completion=None,
            created_at=started or datetime.now(UTC),
            started_at=started,
            finished_at=_aware(trial.datetime_complete),
        )
        curve = [(step, finite_or_none(value)) for step, value in sorted(trial.intermediate_values.items())]
        views.append(TrialView(record=record, intermediate_values=curve))
    return views


# Reading an Optuna-storage study's trials for hps's own trial routes (``GET /v1/studies/{id}/trials``,
# ``/trials/{number}``, ``/best``). The caller has checked the study is the project's.


def storage_trials(storage: BaseStorage, study_id: int, state: str | None) -> list[TrialView]:
    """The study's trials in number order, those in hps's ``state`` only when it is given."""
    if state is not None and state not in _OPTUNA_STATES:
        return []
    states = None if state is None else (_OPTUNA_STATES[state],)
    try:
        found = _optuna(lambda: storage.get_all_trials(study_id, deepcopy=False, states=states))
    except OptunaRecordNotFound:  # deleted since the caller read it
        raise StudyNotFound(study_id) from None
    return storage_trial_views(found, study_id)


def storage_trial(storage: BaseStorage, study_id: int, number: int) -> TrialView:
    """The study's trial ``number``, or ``TrialNotFound``."""
    try:
        trial_id = _optuna(lambda: storage.get_trial_id_from_study_id_trial_number(study_id, number))
        trial = _optuna(lambda: storage.get_trial(trial_id))
    except OptunaRecordNotFound:
        raise TrialNotFound(study_id, number) from None
    return storage_trial_views([trial], study_id)[0]


def storage_best(storage: BaseStorage, study_id: int) -> TrialView | None:
    """The complete trial best by the study's first objective (so a multi-objective study's too, as hps's
    cost-aware studies rank by their metric), the lowest number among equals; None until one completes."""
    try:
        direction = _optuna(lambda: storage.get_study_directions(study_id))[0]
        complete = (TrialState.COMPLETE,)
        done = _optuna(lambda: storage.get_all_trials(study_id, deepcopy=False, states=complete))
    except OptunaRecordNotFound:
        raise StudyNotFound(study_id) from None
    sign = -1.0 if direction == StudyDirection.MAXIMIZE else 1.0
    scored = [trial for trial in done if trial.values]
    if not scored:
        return None
    best = min(scored, key=lambda trial: (sign * trial.values[0], trial.number))
    return storage_trial_views([best], study_id)[0]
