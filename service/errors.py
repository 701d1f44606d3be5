"""Domain errors. Each carries its HTTP status and a stable code; one API handler renders them as
``{"error": code, "detail": message, "field": path-or-null}``. Use cases raise these, never HTTP errors.
"""

from __future__ import annotations

import math


class DomainError(Exception):
    """Base of every error a client may see. ``status`` is the HTTP status the API answers with."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, detail: str, *, field: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field


class InvalidInput(DomainError):
    """The request is well-formed JSON but breaks a rule (422)."""

    status = 422
    code = "invalid"


class NotFound(DomainError):
    """The named resource does not exist, or the caller may not know it exists (404)."""

    status = 404
    code = "not_found"


class StudyNotFound(NotFound):
    """No such study."""

    code = "study_not_found"

    def __init__(self, study: int | str) -> None:
        super().__init__(f"study {study} not found", field="study_id")


class TrialNotFound(NotFound):
    """No such trial in the study."""

    code = "trial_not_found"

    def __init__(self, study_id: int, number: int) -> None:
        super().__init__(f"trial {number} of study {study_id} not found", field="number")


class Conflict(DomainError):
    """The request clashes with the current state (409)."""

    status = 409
    code = "conflict"


class StudyNameTaken(Conflict):
    """Study names are unique within a project."""

    code = "name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"a study named {name!r} already exists", field="name")


class StudyNotRunning(Conflict):
    """The study no longer hands out trials."""

    code = "study_not_running"

    def __init__(self, study_id: int, state: str) -> None:
        super().__init__(f"study {study_id} is {state}; it hands out no trials")


class StudyBroken(Conflict):
    """Optuna failed on the study's own settings; the study was ended as failed, with the reason."""

    code = "study_broken"

    def __init__(self, study_id: int, reason: str) -> None:
        super().__init__(f"study {study_id} failed and hands out no more trials: {reason}")


class BudgetExhausted(Conflict):
    """Every trial of the budget is running, queued or finished."""

    code = "budget_exhausted"

    def __init__(self, study_id: int, n_trials: int) -> None:
        super().__init__(f"study {study_id} has handed out all {n_trials} trials of its budget")


class ParallelLimitReached(Conflict):
    """The study already runs ``max_parallel`` trials."""

    code = "parallel_limit"

    def __init__(self, study_id: int, max_parallel: int) -> None:
        super().__init__(f"study {study_id} already runs {max_parallel} trials (max_parallel)")


class LeaseLost(Conflict):
    """The trial is no longer running under this caller's lease: it was reaped, or it finished."""

    code = "lease_lost"

    def __init__(self, study_id: int, number: int, state: str) -> None:
        super().__init__(f"trial {number} of study {study_id} is {state}, not running: its lease is gone")


class RangeTestPending(Conflict):
    """The study samples nothing until its learning-rate range tests have ended."""

    code = "range_test_pending"

    def __init__(self, study_id: int) -> None:
        super().__init__(
            f"study {study_id} samples no trial until its lr range tests have ended "
            "(GET /v1/studies/{id}/lr-range-tests shows them; a worker run by `hps worker` runs them)"
        )


class RangeTestNotFound(NotFound):
    """No range test of that optimizer in the study."""

    code = "range_test_not_found"

    def __init__(self, study_id: int, optimizer: str) -> None:
        super().__init__(
            f"study {study_id} has no lr range test of optimizer {optimizer!r}", field="optimizer"
        )


class RangeTestLeaseLost(Conflict):
    """The range test is no longer running under this caller's lease."""

    code = "lease_lost"

    def __init__(self, study_id: int, optimizer: str, state: str) -> None:
        super().__init__(
            f"the lr range test of {optimizer!r} in study {study_id} is {state}, not running: "
            "its lease is gone"
        )


class CompletionConflict(Conflict):
    """A second, different completion of a finished trial."""

    code = "completion_conflict"

    def __init__(self, study_id: int, number: int, state: str) -> None:
        super().__init__(
            f"trial {number} of study {study_id} already finished as {state}; "
            "only an identical completion may be replayed"
        )


class Unauthenticated(DomainError):
    """No valid bearer token (401)."""

    status = 401
    code = "unauthenticated"


class Forbidden(DomainError):
    """A valid token without the right (403)."""

    status = 403
    code = "forbidden"


class RateLimited(DomainError):
    """Too many requests from one credential, or too many failed authentications from one address (429)."""

    status = 429
    code = "rate_limited"

    def __init__(self, detail: str, retry_after_s: float) -> None:
        super().__init__(detail)
        self.retry_after_s = max(1, math.ceil(retry_after_s))


class ServiceUnavailable(DomainError):
    """The database cannot be reached, or stays locked; the client should retry later (503)."""

    status = 503
    code = "unavailable"
    retry_after_s = 2


class StudyOutOfTime(Conflict):
    """The study's ``timeout_s`` has passed."""

    code = "study_out_of_time"

    def __init__(self, study_id: int) -> None:
        super().__init__(f"study {study_id} has run past its budget.timeout_s; it hands out no trials")


class ScheduleNotFound(NotFound):
    """No such schedule (or not in the caller's project)."""

    code = "schedule_not_found"

    def __init__(self, schedule: int | str) -> None:
        super().__init__(f"schedule {schedule} not found", field="schedule_id")


class ScheduleNameTaken(Conflict):
    """Schedule names are unique within a project, like the names of the studies they create."""

    code = "name_taken"

    def __init__(self, name: str) -> None:
        super().__init__(f"a schedule named {name!r} already exists", field="name")


class ScheduleBusy(Conflict):
    """A run was asked for while the previous run's study still runs and ``concurrency`` is ``skip``."""

    code = "schedule_busy"

    def __init__(self, schedule_id: int, study_id: int) -> None:
        super().__init__(
            f"schedule {schedule_id}'s previous run (study {study_id}) is still running and its "
            "concurrency is skip"
        )


class OptunaRecordNotFound(NotFound):
    """``/v1/optuna``: no such study or trial in the token's project (Optuna's storages raise KeyError)."""

    code = "optuna_not_found"


class TrialFinished(Conflict):
    """``/v1/optuna``: the trial has finished and can no longer change (Optuna's UpdateFinishedTrialError)."""

    code = "trial_finished"


class StudyDrivenByHps(Conflict):
    """An Optuna client may read a study hps samples (made by ``POST /v1/studies``) but not write to it:
    hps's ask and claim own its trials, budget and leases."""

    code = "study_driven_by_hps"

    def __init__(self, study_id: int) -> None:
        super().__init__(
            f"study {study_id} is sampled by hps (made by POST /v1/studies): an Optuna client may read it, "
            "not add or change trials; use ask/report/complete"
        )


class StudySampledByClient(Conflict):
    """hps's ask and claim refuse a study made by an Optuna client through ``/v1/optuna``: its client
    samples, so hps has no search space to sample from."""

    code = "study_sampled_by_client"

    def __init__(self, study_id: int) -> None:
        super().__init__(
            f"study {study_id} was made by an Optuna client (hps.optuna.HpsStorage) and is sampled by it: "
            "hps cannot ask trials of it; run the Optuna program against it instead"
        )
