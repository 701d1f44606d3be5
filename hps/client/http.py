"""A typed HTTP client for the hps API, used by the CLI, the workers and users' scripts.

It needs a URL and a token, nothing else: no database credentials, no server imports.

    with HpsClient("http://127.0.0.1:8000", token) as hps:
        study = hps.create_study({"name": "demo", "search_space": {"preset": "adam"}})
        trial = hps.ask(study.id)
        hps.report(study.id, trial.number, step=0, value=0.5)
        hps.complete(study.id, trial.number, value=0.4)
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar

import httpx
from pydantic import BaseModel

from hps.wire.costs import TrialCost
from hps.wire.range_tests import RangeTestCompletion, RangeTestOut, RangeTestsOut
from hps.wire.reports import StudyReport
from hps.wire.rules import sendable_text
from hps.wire.schedules import ScheduleOut, SchedulePage, ScheduleRunOut, ScheduleRunPage, ScheduleRunStarted
from hps.wire.studies import StudyOut, StudyPage
from hps.wire.tokens import NewTokenOut, TokenList, TokenOut
from hps.wire.trials import MAX_REASON, AskOut, HeartbeatOut, ReportOut, TrialOut, TrialPage
from hps.wire.workers import ClaimOut, WorkKind

if TYPE_CHECKING:
    from hps.client.trial_run import TrialRun

Model = TypeVar("Model", bound=BaseModel)
NO_MORE_TRIALS = frozenset({"budget_exhausted", "study_not_running", "study_out_of_time", "study_broken"})
Outcome = Literal["complete", "pruned", "failed", "diverged"]


class HpsError(Exception):
    """An error answer from the API, or no answer at all (``status`` 0)."""

    def __init__(
        self, status: int, code: str, detail: str, field: str | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.field = field
        self.retry_after = retry_after

    @property
    def no_more_trials(self) -> bool:
        """True when an ask was refused because the study hands out no more trials: its budget is
        handed out (``budget_exhausted``, while the last trials still run), or it has ended
        (``study_not_running``: completed, cancelled or failed; ``study_out_of_time``; ``study_broken``).
        ``parallel_limit`` is not among them: a trial may be free again soon."""
        return self.status == 409 and self.code in NO_MORE_TRIALS


class HpsClient:
    """One connection pool to one hps server."""

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout,
            transport=transport,
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    # Studies

    def create_study(self, spec: Mapping[str, Any], *, project: str | None = None) -> StudyOut:
        """Create a study from a spec (the body of ``POST /v1/studies``); ``project`` is for admins
        without a project (a project-bound token always creates in its own)."""
        params = {"project": project} if project is not None else None
        return self._call("POST", "/v1/studies", StudyOut, json=dict(spec), params=params)

    def get_study(self, study_id: int) -> StudyOut:
        """One study with progress and best trial."""
        return self._call("GET", f"/v1/studies/{study_id}", StudyOut)

    def find_study(self, ref: str | int) -> StudyOut:
        """A study by id or by name (what the CLI's STUDY argument accepts); ``HpsError`` 404 if none."""
        if isinstance(ref, int) or ref.isdigit():
            return self.get_study(int(ref))
        try:
            found = list(itertools.islice(self.studies(name=ref, page_size=2), 2))
        except HpsError as error:
            if error.status != 422:  # 422: not even a valid study name, so no study has it
                raise
            found = []
        if len(found) > 1:
            # Names are unique within a project; a token that sees every project may see two.
            detail = f"several projects have a study named {ref!r}: give its id"
            raise HpsError(409, "ambiguous_name", detail, field="study")
        if not found:
            raise HpsError(404, "study_not_found", f"no study named {ref!r}", field="study")
        return found[0]

    def studies(
        self, state: str | None = None, page_size: int = 100, *, name: str | None = None
    ) -> Iterator[StudyOut]:
        """Every study (newest first), or the one named ``name``, fetching pages as needed."""
        params: dict[str, Any] = {"limit": page_size}
        if state:
            params["state"] = state
        if name is not None:
            params["name"] = name
        while True:
            page = self._call("GET", "/v1/studies", StudyPage, params=params)
            yield from page.items
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    def cancel_study(self, study_id: int) -> StudyOut:
        """Stop handing out trials."""
        return self._call("POST", f"/v1/studies/{study_id}/cancel", StudyOut)

    def delete_study(self, study_id: int) -> None:
        """Delete the study and its Optuna study."""
        self._request("DELETE", f"/v1/studies/{study_id}")

    # Trials

    def ask(self, study_id: int, worker_id: str | None = None) -> AskOut:
        """Get a trial to run, under a lease."""
        body = {"worker_id": worker_id} if worker_id else None
        return self._call("POST", f"/v1/studies/{study_id}/trials", AskOut, json=body)

    def report(self, study_id: int, number: int, step: int, value: float) -> ReportOut:
        """Report an intermediate value; the answer says whether to prune or stop."""
        body = {"step": step, "value": value}
        return self._call("POST", f"/v1/studies/{study_id}/trials/{number}/reports", ReportOut, json=body)

    def heartbeat(self, study_id: int, number: int) -> HeartbeatOut:
        """Extend the trial's lease."""
        return self._call("POST", f"/v1/studies/{study_id}/trials/{number}/heartbeat", HeartbeatOut)

    def range_tests(self, study_id: int) -> RangeTestsOut:
        """The study's lr range tests and the lr ranges they chose."""
        return self._call("GET", f"/v1/studies/{study_id}/lr-range-tests", RangeTestsOut)

    def heartbeat_range_test(self, study_id: int, optimizer: str) -> HeartbeatOut:
        """Extend a range test's lease."""
        path = f"/v1/studies/{study_id}/lr-range-tests/{optimizer}/heartbeat"
        return self._call("POST", path, HeartbeatOut)

    def complete_range_test(
        self, study_id: int, optimizer: str, completion: RangeTestCompletion
    ) -> RangeTestOut:
        """Finish a range test with its curve, or its failure."""
        path = f"/v1/studies/{study_id}/lr-range-tests/{optimizer}/complete"
        return self._call("POST", path, RangeTestOut, json=completion.model_dump(mode="json"))

    def complete(
        self,
        study_id: int,
        number: int,
        value: float | None = None,
        *,
        state: Outcome = "complete",
        reason: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        cost: TrialCost | None = None,
    ) -> TrialOut:
        """Finish a trial: ``complete`` with a value, or ``pruned``/``failed``/``diverged`` with a reason;
        ``cost``: what it used (a study whose objectives name a cost needs it to complete)."""
        body: dict[str, Any] = {"state": state, "attrs": dict(attrs or {})}
        if cost is not None:
            body["cost"] = cost.model_dump(mode="json", exclude_none=True)
        if value is not None:
            body["value"] = value
        if reason is not None:
            body["reason"] = sendable_text(reason, MAX_REASON)
        return self._call("POST", f"/v1/studies/{study_id}/trials/{number}/complete", TrialOut, json=body)

    def trial(self, study_id: int, number: int) -> TrialOut:
        """One trial with its learning curve."""
        return self._call("GET", f"/v1/studies/{study_id}/trials/{number}", TrialOut)

    def trials(self, study_id: int, state: str | None = None, page_size: int = 200) -> Iterator[TrialOut]:
        """Every trial of a study in number order, fetching pages as needed."""
        params: dict[str, Any] = {"limit": page_size}
        if state:
            params["state"] = state
        while True:
            page = self._call("GET", f"/v1/studies/{study_id}/trials", TrialPage, params=params)
            yield from page.items
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    def best(self, study_id: int) -> TrialOut:
        """The best complete trial (``HpsError`` 404 until one completes)."""
        return self._call("GET", f"/v1/studies/{study_id}/best", TrialOut)

    def run_trial(self, study: str | int, *, heartbeat_s: float | None = None) -> TrialRun:
        """A context manager that asks a trial of ``study`` (id or name) on entry, heartbeats while the
        block runs and completes the trial on exit: failed on an exception, pruned on ``TrialPruned``
        (docs/sdk.md). ``heartbeat_s`` overrides the rhythm (default: a third of the remaining lease)."""
        from hps.client.trial_run import TrialRun  # late: trial_run uses this module's HpsError

        study_id = study if isinstance(study, int) else self.find_study(study).id
        return TrialRun(self, study_id, heartbeat_s=heartbeat_s)

    def study_report(self, study_id: int, top: int = 5) -> StudyReport:
        """The optimizer report (docs/report.md): tables, curves, importances and a recommendation."""
        return self._call("GET", f"/v1/studies/{study_id}/report", StudyReport, params={"top": top})

    # Schedules (docs/schedules.md)

    def create_schedule(self, spec: Mapping[str, Any]) -> ScheduleOut:
        """Create a schedule (the body of ``POST /v1/schedules``)."""
        return self._call("POST", "/v1/schedules", ScheduleOut, json=dict(spec))

    def get_schedule(self, schedule_id: int) -> ScheduleOut:
        """One schedule with its incumbent and next run."""
        return self._call("GET", f"/v1/schedules/{schedule_id}", ScheduleOut)

    def find_schedule(self, ref: str | int) -> ScheduleOut:
        """A schedule by id or by name; ``HpsError`` 404 if none."""
        if isinstance(ref, int) or ref.isdigit():
            return self.get_schedule(int(ref))
        for schedule in self.schedules():
            if schedule.name == ref:
                return schedule
        raise HpsError(404, "schedule_not_found", f"no schedule named {ref!r}", field="schedule")

    def schedules(self, page_size: int = 100) -> Iterator[ScheduleOut]:
        """Every schedule (newest first), fetching pages as needed."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            page = self._call("GET", "/v1/schedules", SchedulePage, params=params)
            yield from page.items
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    def update_schedule(self, schedule_id: int, changes: Mapping[str, Any]) -> ScheduleOut:
        """Change some fields of a schedule (``PATCH``)."""
        return self._call("PATCH", f"/v1/schedules/{schedule_id}", ScheduleOut, json=dict(changes))

    def pause_schedule(self, schedule_id: int) -> ScheduleOut:
        """Stop firing slots."""
        return self._call("POST", f"/v1/schedules/{schedule_id}/pause", ScheduleOut)

    def resume_schedule(self, schedule_id: int) -> ScheduleOut:
        """Fire again from the next slot."""
        return self._call("POST", f"/v1/schedules/{schedule_id}/resume", ScheduleOut)

    def run_schedule(self, schedule_id: int) -> ScheduleRunStarted:
        """Start a run now; the answer holds the run and its study."""
        return self._call("POST", f"/v1/schedules/{schedule_id}/run", ScheduleRunStarted)

    def schedule_runs(self, schedule_id: int, page_size: int = 100) -> Iterator[ScheduleRunOut]:
        """Every run of a schedule, newest first."""
        params: dict[str, Any] = {"limit": page_size}
        while True:
            page = self._call("GET", f"/v1/schedules/{schedule_id}/runs", ScheduleRunPage, params=params)
            yield from page.items
            if page.next_cursor is None:
                return
            params["cursor"] = page.next_cursor

    def delete_schedule(self, schedule_id: int) -> None:
        """Delete the schedule and its run history (its studies stay)."""
        self._request("DELETE", f"/v1/schedules/{schedule_id}")

    # Workers

    def claim(
        self,
        worker_id: str,
        device: str,
        tasks: Sequence[str],
        kinds: Sequence[WorkKind] = ("trial",),
    ) -> ClaimOut | None:
        """Work from a running study of one of ``tasks`` (a trial, or an lr range test when ``kinds``
        includes ``lr_range_test``), or None when there is nothing to do."""
        body = {"worker_id": worker_id, "device": device, "tasks": list(tasks), "kinds": list(kinds)}
        response = self._request("POST", "/v1/workers/claim", json=body)
        if response.status_code == 204:
            return None
        return ClaimOut.model_validate(response.json())

    # Tokens (admin)

    def create_token(self, name: str, scopes: Sequence[str], project: str | None = None) -> NewTokenOut:
        """Create a token; the answer's ``token`` is its secret, shown this once."""
        body = {"name": name, "scopes": list(scopes), "project": project}
        return self._call("POST", "/v1/tokens", NewTokenOut, json=body)

    def tokens(self) -> list[TokenOut]:
        """Every token the caller may see (its project's, or all for a project-less admin)."""
        return self._call("GET", "/v1/tokens", TokenList).items

    def revoke_token(self, token_id: str) -> None:
        """Revoke a token; it stops working within seconds on every server."""
        self._request("DELETE", f"/v1/tokens/{token_id}")

    # Plumbing

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Any call (``httpx`` keyword arguments): the answer when it succeeded, else ``HpsError``
        (status 0 when there was no answer). For protocols built on this client, such as
        ``hps.optuna.HpsStorage``."""
        return self._request(method, path, **kwargs)

    def _call(self, method: str, path: str, model: type[Model], **kwargs: Any) -> Model:
        return model.model_validate(self._request(method, path, **kwargs).json())

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            detail = f"no answer from {self.base_url} ({type(exc).__name__}: {exc})"
            raise HpsError(0, "unreachable", detail) from exc
        if response.is_success:
            return response
        raise _error_of(response)


def _error_of(response: httpx.Response) -> HpsError:
    retry_after = response.headers.get("retry-after")
    try:
        body = response.json()
        code, detail, field = str(body["error"]), str(body["detail"]), body.get("field")
    except (ValueError, KeyError, TypeError):
        code, detail, field = "http_error", response.text[:200] or response.reason_phrase, None
    seconds = float(retry_after) if retry_after and retry_after.isdigit() else None
    return HpsError(response.status_code, code, detail, field, seconds)
