"""``HpsStorage``: an ``optuna.storages.BaseStorage`` over hps's HTTP API (``/v1/optuna``).

    storage = HpsStorage("http://hps:8000", token="...")
    study = optuna.create_study(storage=storage, study_name="my-study")

Rules (Optuna's storage contract, as ``optuna/storages/_base.py`` states it, kept here):

- Thread safe: one storage may serve ``study.optimize(n_jobs=...)``; the HTTP pool and the caches are
  shared under a lock. Picklable: a copy reconnects with the same URL and token.
- Sampling stays in the client. The server checks the token's scopes and project on every call: a study
  or trial of another project raises ``KeyError`` (Optuna's "no such record").
- Finished trials never change, so they are cached for good; each ``get_all_trials`` asks the server only
  for trials created since the last read and for the ones still unfinished in the cache.
- Transient failures (no answer, 429, 5xx) are retried with capped, jittered backoff for ``retry_for_s``
  seconds; after that a :class:`HpsStorageUnavailable` (an ``optuna.exceptions.StorageInternalError``)
  says what failed.
- Heartbeats: with ``heartbeat_interval`` set, each running trial's heartbeat is its lease in hps. hps's
  reaper fails a trial whose heartbeat is older than ``grace_period`` (default: twice the interval) even
  when no client is left; the next ``study.optimize`` on the study runs ``heartbeat_stale_trial_callback``
  (``RetryFailedTrialCallback``) on it, as Optuna's own ``fail_stale_trials`` does.
"""

from __future__ import annotations

import copy
import json
import threading
import uuid
from collections.abc import Callable, Container, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import optuna
from optuna.distributions import BaseDistribution, distribution_to_json, json_to_distribution
from optuna.exceptions import DuplicatedStudyError, StorageInternalError, UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._base import DEFAULT_STUDY_NAME_PREFIX
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

from hps.client.backoff import Backoff, call_with_retry
from hps.client.http import HpsClient, HpsError
from hps.wire.optuna import (
    StaleOut,
    StudyInfo,
    StudyList,
    TrialList,
    TrialWire,
    UpdatedOut,
    from_real,
    parse_time,
    to_real,
)

StaleCallback = Callable[["optuna.Study", FrozenTrial], None]
# More unfinished trials than this and a read asks for everything since the oldest of them instead
# (a URL holds only so many ids).
_MAX_WATCHED = 200


class HpsStorageUnavailable(StorageInternalError):
    """hps did not answer, or kept answering "later", for longer than the storage's ``retry_for_s``."""


@dataclass
class _StudyCache:
    """What this process knows of one study's trials."""

    finished: dict[int, FrozenTrial] = field(default_factory=dict)
    unfinished: dict[int, FrozenTrial] = field(default_factory=dict)
    max_id: int = -1
    lock: threading.Lock = field(default_factory=threading.Lock)


def _attrs(encoded: dict[str, str]) -> dict[str, Any]:
    return {key: json.loads(text) for key, text in encoded.items()}


def _frozen(wire: TrialWire) -> FrozenTrial:
    distributions = {name: json_to_distribution(text) for name, text in wire.distributions.items()}
    values = None if wire.values is None else [from_real(v) for v in wire.values]
    return FrozenTrial(
        number=wire.number,
        state=TrialState[wire.state],
        value=None,
        values=values,
        datetime_start=parse_time(wire.datetime_start),
        datetime_complete=parse_time(wire.datetime_complete),
        params={name: distributions[name].to_external_repr(from_real(v)) for name, v in wire.params.items()},
        distributions=distributions,
        user_attrs=_attrs(wire.user_attrs),
        system_attrs=_attrs(wire.system_attrs),
        intermediate_values={step: from_real(v) for step, v in wire.intermediate_values.items()},
        trial_id=wire.trial_id,
    )


def _template(trial: FrozenTrial) -> dict[str, Any]:
    return {
        "state": trial.state.name,
        "values": None if trial.values is None else [to_real(v) for v in trial.values],
        "datetime_start": trial.datetime_start.isoformat() if trial.datetime_start else None,
        "datetime_complete": trial.datetime_complete.isoformat() if trial.datetime_complete else None,
        "params": {
            name: to_real(trial.distributions[name].to_internal_repr(value))
            for name, value in trial.params.items()
        },
        "distributions": {name: distribution_to_json(d) for name, d in trial.distributions.items()},
        "user_attrs": {key: json.dumps(value) for key, value in trial.user_attrs.items()},
        "system_attrs": {key: json.dumps(value) for key, value in trial.system_attrs.items()},
        "intermediate_values": {str(step): to_real(v) for step, v in trial.intermediate_values.items()},
    }


class HpsStorage(BaseStorage, BaseHeartbeat):
    """Optuna's storage interface on an hps server, scoped to the token's project."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        heartbeat_interval: int | None = None,
        grace_period: int | None = None,
        heartbeat_stale_trial_callback: StaleCallback | None = None,
        retry_for_s: float = 60.0,
        timeout_s: float = 30.0,
    ) -> None:
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be a positive integer")
        if grace_period is not None and grace_period <= 0:
            raise ValueError("grace_period must be a positive integer")
        self.url = url
        self.heartbeat_interval = heartbeat_interval
        self.grace_period = grace_period
        self.heartbeat_stale_trial_callback = heartbeat_stale_trial_callback
        self.retry_for_s = retry_for_s
        self.timeout_s = timeout_s
        self._token = token
        self._connect()

    def _connect(self) -> None:
        self._client = HpsClient(self.url, self._token, timeout=self.timeout_s)
        self._lock = threading.Lock()
        self._studies: dict[int, tuple[str, list[StudyDirection]]] = {}
        self._caches: dict[int, _StudyCache] = {}
        self._trial_study: dict[int, int] = {}
        self._reaped: set[int] = set()
        # Trials this storage created and that are running: Optuna lets one process write a running
        # trial, so this copy, updated after each write hps accepted, is what the server holds.
        self._owned: dict[int, FrozenTrial] = {}

    def __getstate__(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "token": self._token,
            "heartbeat_interval": self.heartbeat_interval,
            "grace_period": self.grace_period,
            "heartbeat_stale_trial_callback": self.heartbeat_stale_trial_callback,
            "retry_for_s": self.retry_for_s,
            "timeout_s": self.timeout_s,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.url = state["url"]
        self._token = state["token"]
        self.heartbeat_interval = state["heartbeat_interval"]
        self.grace_period = state["grace_period"]
        self.heartbeat_stale_trial_callback = state["heartbeat_stale_trial_callback"]
        self.retry_for_s = state["retry_for_s"]
        self.timeout_s = state["timeout_s"]
        self._connect()

    # Studies

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        name = study_name if study_name is not None else DEFAULT_STUDY_NAME_PREFIX + str(uuid.uuid4())
        body = {"study_name": name, "directions": [d.name for d in directions]}
        study_id = int(self._send("POST", "/v1/optuna/studies", json=body).json()["study_id"])
        with self._lock:
            self._studies[study_id] = (name, list(directions))
        return study_id

    def delete_study(self, study_id: int) -> None:
        self._send("DELETE", f"/v1/optuna/studies/{study_id}")
        with self._lock:
            self._studies.pop(study_id, None)
            self._caches.pop(study_id, None)

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        body = {"key": key, "value_json": json.dumps(value)}
        self._send("POST", f"/v1/optuna/studies/{study_id}/user-attrs", json=body)

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        body = {"key": key, "value_json": json.dumps(value)}
        self._send("POST", f"/v1/optuna/studies/{study_id}/system-attrs", json=body)

    def get_study_id_from_name(self, study_name: str) -> int:
        found = self._send("GET", "/v1/optuna/study-ids", params={"name": study_name}).json()
        return int(found["study_id"])

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._study_meta(study_id)[0]

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return list(self._study_meta(study_id)[1])

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return _attrs(self._study_info(study_id).user_attrs)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return _attrs(self._study_info(study_id).system_attrs)

    def get_all_studies(self) -> list[FrozenStudy]:
        listed = StudyList.model_validate(self._send("GET", "/v1/optuna/studies").json())
        studies = []
        for info in listed.studies:
            directions = [StudyDirection[d] for d in info.directions]
            studies.append(
                FrozenStudy(
                    study_name=info.study_name,
                    direction=None,
                    directions=directions,
                    user_attrs=_attrs(info.user_attrs),
                    system_attrs=_attrs(info.system_attrs),
                    study_id=info.study_id,
                )
            )
        return studies

    # Trials

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        body = {"template": None if template_trial is None else _template(template_trial)}
        wire = TrialWire.model_validate(
            self._send("POST", f"/v1/optuna/studies/{study_id}/trials", json=body).json()
        )
        trial = _frozen(wire)
        with self._lock:
            self._trial_study[wire.trial_id] = study_id
            if trial.state == TrialState.RUNNING:
                self._owned[wire.trial_id] = trial
        return wire.trial_id

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        body = {
            "name": param_name,
            "value": to_real(param_value_internal),
            "distribution_json": distribution_to_json(distribution),
        }
        self._trial_write(trial_id, "params", body)
        with self._lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                owned.params = {
                    **owned.params,
                    param_name: distribution.to_external_repr(param_value_internal),
                }
                owned.distributions = {**owned.distributions, param_name: distribution}

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        path = f"/v1/optuna/studies/{study_id}/trial-ids/{trial_number}"
        return int(self._send("GET", path).json()["trial_id"])

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        with self._lock:
            if state == TrialState.FAIL and trial_id in self._reaped:
                # hps's reaper failed it already; this client is the one to run the callback on it.
                self._reaped.discard(trial_id)
                return True
        body = {"state": state.name, "values": None if values is None else [to_real(v) for v in values]}
        answer = UpdatedOut.model_validate(self._trial_write(trial_id, "state", body).json())
        trial = _frozen(answer.trial)
        with self._lock:
            self._owned.pop(trial_id, None)
            study_id = self._trial_study.get(trial_id)
            cache = self._caches.get(study_id) if study_id is not None else None
            if trial.state == TrialState.RUNNING and answer.updated:
                self._owned[trial_id] = trial
        if cache is not None and trial.state.is_finished():
            with cache.lock:
                if trial_id <= cache.max_id:  # a trial the cache knows of: it is final now
                    cache.finished[trial_id] = trial
                    cache.unfinished.pop(trial_id, None)
        return answer.updated

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        body = {"step": step, "value": to_real(intermediate_value)}
        self._trial_write(trial_id, "intermediate-values", body)
        with self._lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                owned.intermediate_values = {**owned.intermediate_values, step: intermediate_value}

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        body = {"key": key, "value_json": json.dumps(value)}
        self._trial_write(trial_id, "user-attrs", body)
        with self._lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                owned.user_attrs = {**owned.user_attrs, key: json.loads(body["value_json"])}

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        body = {"key": key, "value_json": json.dumps(value)}
        self._trial_write(trial_id, "system-attrs", body)
        with self._lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                owned.system_attrs = {**owned.system_attrs, key: json.loads(body["value_json"])}

    def get_trial(self, trial_id: int) -> FrozenTrial:
        with self._lock:
            owned = self._owned.get(trial_id)
            if owned is not None:
                return copy.deepcopy(owned)
            study_id = self._trial_study.get(trial_id)
            cache = self._caches.get(study_id) if study_id is not None else None
        if cache is not None:
            with cache.lock:
                finished = cache.finished.get(trial_id)
            if finished is not None:
                return finished
        trial = _frozen(TrialWire.model_validate(self._send("GET", f"/v1/optuna/trials/{trial_id}").json()))
        return trial

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        trials = self._sync(study_id)
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    # Heartbeats

    def record_heartbeat(self, trial_id: int) -> None:
        self._send("POST", f"/v1/optuna/trials/{trial_id}/heartbeat", json={"grace_period_s": self._grace()})

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        body = {"grace_period_s": self._grace()}
        found = StaleOut.model_validate(
            self._send("POST", f"/v1/optuna/studies/{study_id}/stale-trials", json=body).json()
        )
        with self._lock:
            self._reaped.update(found.reaped)
        return [*found.stale, *found.reaped]

    def get_heartbeat_interval(self) -> int | None:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(self) -> StaleCallback | None:
        return self.heartbeat_stale_trial_callback

    def _grace(self) -> int:
        if self.grace_period is not None:
            return self.grace_period
        return 2 * (self.heartbeat_interval or 60)

    # Caches

    def _study_info(self, study_id: int) -> StudyInfo:
        info = StudyInfo.model_validate(self._send("GET", f"/v1/optuna/studies/{study_id}").json())
        with self._lock:
            self._studies[study_id] = (info.study_name, [StudyDirection[d] for d in info.directions])
        return info

    def _study_meta(self, study_id: int) -> tuple[str, list[StudyDirection]]:
        with self._lock:
            meta = self._studies.get(study_id)
        if meta is None:
            self._study_info(study_id)
            with self._lock:
                meta = self._studies[study_id]
        return meta

    def _sync(self, study_id: int) -> list[FrozenTrial]:
        """The study's trials, ordered by number: the cache brought up to date with what changed."""
        with self._lock:
            cache = self._caches.setdefault(study_id, _StudyCache())
        with cache.lock:
            watched = sorted(cache.unfinished)
            params: dict[str, Any] = {"after": cache.max_id}
            if len(watched) > _MAX_WATCHED:
                params["after"] = watched[0] - 1
            elif watched:
                params["watch"] = watched
            answer = self._send("GET", f"/v1/optuna/studies/{study_id}/trials", params=params)
            changed = TrialList.model_validate(answer.json()).trials
            for wire in changed:
                if wire.trial_id in cache.finished:
                    continue
                trial = _frozen(wire)
                if trial.state.is_finished():
                    cache.finished[trial._trial_id] = trial
                    cache.unfinished.pop(trial._trial_id, None)
                else:
                    cache.unfinished[trial._trial_id] = trial
                cache.max_id = max(cache.max_id, trial._trial_id)
            trials = sorted([*cache.finished.values(), *cache.unfinished.values()], key=lambda t: t.number)
        with self._lock:
            for wire in changed:
                self._trial_study[wire.trial_id] = study_id
        return trials

    # Plumbing

    def _trial_write(self, trial_id: int, what: str, body: dict[str, Any]) -> httpx.Response:
        """A write to one trial. When hps says the trial has finished or is gone (another process failed
        it, say), this storage's copy of it is dropped."""
        try:
            return self._send("POST", f"/v1/optuna/trials/{trial_id}/{what}", json=body)
        except (UpdateFinishedTrialError, KeyError):
            with self._lock:
                self._owned.pop(trial_id, None)
            raise

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One call, transient failures retried; hps's answers become Optuna's exceptions."""
        try:
            return call_with_retry(
                lambda: self._client.request(method, path, **kwargs),
                backoff=Backoff(base=0.2, cap=5.0),
                give_up_after=self.retry_for_s,
                give_up_on_server_errors_after=self.retry_for_s,
            )
        except HpsError as error:
            raise _optuna_error(error, method, path) from None


def _optuna_error(error: HpsError, method: str, path: str) -> Exception:
    """The exception Optuna's storages raise for what hps answered."""
    if error.status == 404 or (error.status == 422 and error.field in ("study_id", "trial_id", "number")):
        # An id outside the range ids take names no record either.
        return KeyError(error.detail)
    if error.status == 409 and error.code == "trial_finished":
        return UpdateFinishedTrialError(error.detail)
    if error.status == 409 and error.code == "name_taken":
        return DuplicatedStudyError(error.detail)
    if error.status in (0, 429, 500, 502, 503, 504):
        return HpsStorageUnavailable(f"hps did not serve {method} {path}: {error}")
    if error.status in (401, 403):
        return PermissionError(f"hps refused {method} {path}: {error.detail}")
    if error.status == 409:
        return RuntimeError(f"hps refused {method} {path}: {error.detail}")
    return ValueError(f"hps refused {method} {path}: {error.detail}")
