"""The Optuna dashboard, served by the API process behind hps's own routes and hps's auth.

optuna-dashboard is a bottle (WSGI) app that only works at the root path, so it answers the paths no hps
route matched (the router's fallback): ``/`` (a redirect), ``/dashboard…``, ``/static/…``,
``/favicon.ico``, ``/api/…`` and ``/csv/…``. Every other unmatched path (``/incompatible-rdb-schema``
and ``/sql-profiler`` included) keeps hps's JSON 404, and hps's 405s and trailing-slash redirects are
untouched because hps's routes are matched first.

Every forwarded request needs a token with the ``read`` scope, as a bearer token or as the password of
HTTP basic auth (a browser asks for it: a missing or bad token is answered 401 with a ``Basic``
challenge). Only GET and HEAD are open to readers; the dashboard's mutating routes (delete, rename,
tell, notes, …) need an admin token that is not bound to a project, sent from the dashboard's own pages
(a browser adds basic-auth credentials to other sites' requests too, so a foreign ``Origin`` is refused).

A project-bound token sees a dashboard over :class:`ProjectStorage`, which shows only its project's
studies; a study of another project is 404 on every route, as in ``/v1``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Container, Sequence
from typing import Any, cast
from urllib.parse import urlsplit

from a2wsgi import WSGIMiddleware
from fastapi import FastAPI
from optuna._typing import JSONSerializable
from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage, RDBStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from hps.server import studies
from hps.server.api.auth import client_address, identify, presented_token
from hps.server.api.context import Hub
from hps.server.api.dashboard_page import HINTS_PATH, send_hints, with_hints
from hps.server.config import Settings
from hps.server.errors import Forbidden, StudyNotFound, Unauthenticated
from hps.server.store.database import Database
from hps.server.store.studies import StudyRepository, optuna_study_name
from hps.server.tokens import Principal

# The paths optuna-dashboard serves and hps forwards to it.
_FORWARDED = re.compile(r"^/(?:|dashboard(?:/.*)?|static/.*|favicon\.ico|api/.*|csv/.*)$")
# Paths that name a study, checked against the caller's project before the dashboard sees them.
_STUDY_PATH = re.compile(r"^/(?:api/studies|csv)/(\d+)(?:/|$)")
# Dashboard writes that would change Optuna's tables behind hps's back: creating a study, renaming one
# (a copy under a new name), telling a trial's outcome. Refused even for admins; deleting is routed
# through hps instead (below).
_BYPASSES_HPS = re.compile(r"^/api/(studies/?$|studies/\d+/rename|trials/\d+/tell)")
_STUDY_DELETE = re.compile(r"^/api/studies/(\d+)/?$")
_READ_METHODS = ("GET", "HEAD")
_ASK_FOR_TOKEN = "the dashboard needs a token: the password of basic auth (browsers ask), or a bearer token"
_CHALLENGE = {"WWW-Authenticate": 'Basic realm="hps dashboard"'}
_WSGI_THREADS = 4

EngineKwargs = Callable[[Settings, str], dict[str, object]]


def install_dashboard(app: FastAPI, engine_kwargs: EngineKwargs) -> None:
    """Serve the dashboard on the paths none of ``app``'s routes match. ``engine_kwargs`` gives the
    SQLAlchemy engine options for the dashboard's own Optuna storage."""
    app.router.default = DashboardGate(app.router.default, engine_kwargs)


class ProjectStudies:
    """Which studies and trials one project owns, read from ``hps_studies`` on every call (a study created
    a moment ago shows at once)."""

    def __init__(self, db: Database, project: str) -> None:
        self.db = db
        self.project = project

    def study_ids(self) -> frozenset[int]:
        """Ids of the project's studies (equal to Optuna's study ids)."""
        return self.db.run(lambda session: StudyRepository(session).ids_in(self.project), write=False)

    def owns_study(self, study_id: int) -> bool:
        """True when the study exists and belongs to the project."""
        return self.db.run(lambda s: StudyRepository(s).owns_study(self.project, study_id), write=False)

    def owns_trial(self, trial_id: int) -> bool:
        """True when Optuna's trial ``trial_id`` exists in one of the project's studies."""
        return self.db.run(lambda s: StudyRepository(s).owns_trial(self.project, trial_id), write=False)


class ProjectStorage(BaseStorage):
    """A read-only view of one project's studies in ``backend``.

    Reading a study, or a trial of a study, outside the project raises :class:`KeyError`, exactly as
    Optuna does for a study or trial that does not exist; ``get_all_studies`` lists only the project's
    studies, under the names the project knows them by (Optuna's name without the ``<project>/`` that
    keeps it unique in the database). Every write raises :class:`~hps.server.errors.Forbidden`. Thread
    safe as far as ``backend`` is; the inherited helpers (``get_best_trial``, ``get_trial_params``, …)
    go through the checked methods below.
    """

    def __init__(self, backend: BaseStorage, studies: ProjectStudies) -> None:
        self._backend = backend
        self._studies = studies
        self._prefix = optuna_study_name(studies.project, "")

    def _study(self, study_id: int) -> int:
        if not self._studies.owns_study(study_id):
            raise KeyError(f"no study with study_id {study_id}")
        return study_id

    def _refuse(self) -> Forbidden:
        return Forbidden(f"the dashboard of project {self._studies.project!r} is read-only")

    # Reads, filtered to the project.

    def get_all_studies(self) -> list[FrozenStudy]:
        owned = self._studies.study_ids()
        return [
            FrozenStudy(
                study_name=study.study_name.removeprefix(self._prefix),
                direction=None,
                directions=study.directions,
                user_attrs=study.user_attrs,
                system_attrs=study.system_attrs,
                study_id=study._study_id,
            )
            for study in self._backend.get_all_studies()
            if study._study_id in owned
        ]

    def get_study_id_from_name(self, study_name: str) -> int:
        try:
            return self._study(self._backend.get_study_id_from_name(self._prefix + study_name))
        except KeyError:  # a study made before names were per project keeps its bare Optuna name
            return self._study(self._backend.get_study_id_from_name(study_name))

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._backend.get_study_name_from_id(self._study(study_id)).removeprefix(self._prefix)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._backend.get_study_directions(self._study(study_id))

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._backend.get_study_user_attrs(self._study(study_id))

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        return self._backend.get_study_system_attrs(self._study(study_id))

    def get_all_trials(
        self, study_id: int, deepcopy: bool = True, states: Container[TrialState] | None = None
    ) -> list[FrozenTrial]:
        return self._backend.get_all_trials(self._study(study_id), deepcopy=deepcopy, states=states)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if not self._studies.owns_trial(trial_id):
            raise KeyError(f"no trial with trial_id {trial_id}")
        return self._backend.get_trial(trial_id)

    def remove_session(self) -> None:
        self._backend.remove_session()

    # Writes, all refused.

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        raise self._refuse()

    def delete_study(self, study_id: int) -> None:
        raise self._refuse()

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        raise self._refuse()

    def set_study_system_attr(self, study_id: int, key: str, value: JSONSerializable) -> None:
        raise self._refuse()

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        raise self._refuse()

    def set_trial_param(
        self, trial_id: int, param_name: str, param_value_internal: float, distribution: BaseDistribution
    ) -> None:
        raise self._refuse()

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        raise self._refuse()

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        raise self._refuse()

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        raise self._refuse()

    def set_trial_system_attr(self, trial_id: int, key: str, value: JSONSerializable) -> None:
        raise self._refuse()


class DashboardGate:
    """The router's fallback: authenticates and authorizes dashboard requests and hands them to the
    caller's dashboard; any other path goes to ``fallback`` (hps's 404)."""

    def __init__(self, fallback: ASGIApp, engine_kwargs: EngineKwargs) -> None:
        self._fallback = fallback
        self._engine_kwargs = engine_kwargs
        self._lock = threading.Lock()
        self._hub: Hub | None = None
        self._storage: RDBStorage | None = None
        # One dashboard per project; the key None is the unfiltered one of project-less admins.
        self._dashboards: dict[str | None, ASGIApp] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not _FORWARDED.match(scope["path"]):
            await self._fallback(scope, receive, send)
            return
        hub: Hub = scope["app"].state.hub
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
        principal = await run_in_threadpool(
            _admit, hub, headers, scope["method"], scope["path"], client_address(scope)
        )
        deleted = _STUDY_DELETE.match(scope["path"]) if scope["method"] == "DELETE" else None
        if deleted is not None:
            # Through hps, so that hps's own rows, queued trials and caches go with Optuna's study.
            study_id = int(deleted.group(1))
            await run_in_threadpool(studies.delete_study, hub.db, hub.sampling, study_id)
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["path"] == HINTS_PATH:
            await send_hints(send, may_change=principal.is_admin and principal.project is None)
            return
        dashboard = await run_in_threadpool(self._dashboard_for, hub, principal.project)
        await with_hints(dashboard)(scope, receive, send)

    def _dashboard_for(self, hub: Hub, project: str | None) -> ASGIApp:
        with self._lock:
            if hub is not self._hub:  # a new app lifespan: start over on its database
                self._close()
                self._hub = hub
            if self._storage is None:
                # The dashboard's own storage, uncached: its reads never touch the samplers' cache,
                # and a deleted study's id that SQLite hands out again is never mistaken for the old one.
                url = hub.db.url
                kwargs = self._engine_kwargs(hub.settings, url)
                self._storage = RDBStorage(url, engine_kwargs=kwargs, skip_table_creation=True)
            dashboard = self._dashboards.get(project)
            if dashboard is None:
                storage: BaseStorage = self._storage
                if project is not None:
                    storage = ProjectStorage(self._storage, ProjectStudies(hub.db, project))
                # a2wsgi types the ASGI interface with its own TypedDicts; it is the same protocol.
                # Imported on first use: optuna-dashboard pulls in scikit-learn (for importances), over a
                # second of every server's start otherwise.
                import optuna_dashboard

                wsgi = WSGIMiddleware(optuna_dashboard.wsgi(storage), workers=_WSGI_THREADS)
                dashboard = cast(ASGIApp, wsgi)
                self._dashboards[project] = dashboard
            return dashboard

    def _close(self) -> None:
        if self._storage is not None:
            self._storage.engine.dispose()
        self._storage = None
        self._dashboards.clear()


def _admit(hub: Hub, headers: dict[str, str], method: str, path: str, address: str) -> Principal:
    """The caller, if they may make this request; otherwise the error hps answers with."""
    authorization = headers.get("authorization", "")
    try:
        principal = identify(hub, authorization, address)
    except Unauthenticated as exc:
        detail = exc.detail if presented_token(authorization) else _ASK_FOR_TOKEN
        # A Basic challenge, so that a browser asks for the token (as the password).
        raise HTTPException(401, detail=detail, headers=_CHALLENGE) from None
    if not principal.may("read"):
        raise Forbidden("this token lacks the read scope the dashboard needs")
    if method not in _READ_METHODS and not (principal.is_admin and principal.project is None):
        raise Forbidden("the dashboard is read-only; only a project-less admin token may change studies")
    if method not in _READ_METHODS and not _same_origin(headers):
        # A browser sends basic-auth credentials with cross-site requests too: refuse forged writes.
        raise Forbidden("the dashboard accepts changes only from its own pages (Origin differs from Host)")
    if method not in _READ_METHODS and _BYPASSES_HPS.match(path):
        raise Forbidden(
            "this dashboard change would bypass hps's records; create studies with POST /v1/studies and "
            "end trials with POST /v1/studies/{id}/trials/{n}/complete"
        )
    study = _STUDY_PATH.match(path)
    if principal.project is not None and study is not None:
        study_id = int(study.group(1))
        if not ProjectStudies(hub.db, principal.project).owns_study(study_id):
            raise StudyNotFound(study_id)
    return principal


def _same_origin(headers: dict[str, str]) -> bool:
    """False when a browser says the request comes from another site's page. Browsers send ``Origin``
    with every cross-origin write; clients that send none (curl, scripts) are not browsers."""
    origin = headers.get("origin")
    return origin is None or urlsplit(origin).netloc == headers.get("host")
