"""One trial of an external study as a context manager: ask on entry, heartbeat while the body runs,
complete on exit, so a script cannot leave a trial running behind it.

    with hps.run_trial("my-study") as trial:
        model = build(lr=trial.params["lr"])
        for epoch in range(10):
            accuracy = train_one_epoch(model)
            if trial.report(epoch, accuracy).should_prune:
                trial.prune(f"epoch {epoch}")   # raises TrialPruned: recorded as pruned
        trial.complete(accuracy)

How the block ends decides how the trial ends:

- ``trial.complete(value)`` (or ``trial.finish(state, reason)``) inside the block: that completion.
- ``TrialPruned`` raised (``trial.prune()`` raises it): ``pruned`` with the exception's message as the
  reason; the exception is swallowed, the block simply ends.
- any other exception: ``failed`` with ``"<ExceptionType>: <message>"`` as the reason; the exception
  propagates. ``KeyboardInterrupt`` and ``SystemExit`` are reported as ``"interrupted: ..."``, an
  infrastructure reason, so the service queues the same params again (docs/api.md, retries).
- the block ends normally without a completion: ``failed`` with reason ``"trial ended without complete"``,
  and a warning is logged: a finished trial must say what it scored.

A heartbeat thread keeps the lease alive between reports, at a third of the lease's remaining time (the
worker's rhythm). When the service says the lease is lost (409), ``lease_lost`` becomes true and nothing
more is sent on the trial's behalf: its params were re-queued and the retry's result is the one that counts.
"""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from service.api.schemas import AskOut, ReportOut, TrialOut

if TYPE_CHECKING:
    from service.client import HpsClient

log = logging.getLogger(__name__)

MIN_HEARTBEAT_S = 0.2
OUTAGE_RETRY_S = 1.0
NO_COMPLETE_REASON = "trial ended without complete"
Ending = Literal["pruned", "failed", "diverged"]


class TrialPruned(Exception):  # named after optuna.TrialPruned, which users know
    """Raise inside ``run_trial`` to end the trial as pruned; the message becomes the reason."""


class TrialRun:
    """A trial handed out by ask, kept alive by heartbeats until it is completed.

    Use it through :meth:`service.client.HpsClient.run_trial`. ``params`` are the sampled values;
    ``should_prune`` and ``should_stop`` are the service's latest answers (from a report or a heartbeat).
    """

    def __init__(self, client: HpsClient, study_id: int, *, heartbeat_s: float | None = None) -> None:
        self._client = client
        self.study_id = study_id
        self._heartbeat_s = heartbeat_s
        self._asked: AskOut | None = None
        self._expires_at = datetime.now(UTC)
        self._last_report: ReportOut | None = None
        self.last_step: int | None = None
        self._stop_requested = threading.Event()
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread: threading.Thread | None = None
        self.result: TrialOut | None = None
        self.heartbeats = 0

    # The trial

    @property
    def number(self) -> int:
        """The trial's number in its study."""
        return self._ask().number

    @property
    def params(self) -> dict[str, Any]:
        """The sampled hyperparameters, by name."""
        return dict(self._ask().params)

    @property
    def should_prune(self) -> bool:
        """Whether the last report was answered "prune"."""
        return self._last_report is not None and self._last_report.should_prune

    @property
    def should_stop(self) -> bool:
        """Whether the service asked the trial to stop (the study was cancelled or ran out of time)."""
        return self._stop_requested.is_set()

    @property
    def lease_lost(self) -> bool:
        """Whether the service reaped the lease: nothing this trial sends counts any more."""
        return self._lost.is_set()

    @property
    def lease_expires_at(self) -> datetime:
        """When the lease runs out unless a heartbeat or a report extends it (as last heard)."""
        return self._expires_at

    @property
    def completed(self) -> bool:
        """Whether the trial was completed (in any state)."""
        return self.result is not None

    def report(self, step: int, value: float) -> ReportOut:
        """Report an intermediate value (e.g. the validation metric after epoch ``step``)."""
        answer = self._client.report(self.study_id, self.number, step=step, value=value)
        self._last_report = answer
        self.last_step = step
        if answer.should_stop:
            self._stop_requested.set()
        return answer

    def prune(self, reason: str | None = None) -> None:
        """End the trial as pruned: raises :class:`TrialPruned`, which the context manager records."""
        at = f" at step {self.last_step}" if self.last_step is not None else ""
        raise TrialPruned(reason or f"pruned{at}")

    def complete(self, value: float, attrs: dict[str, Any] | None = None) -> TrialOut:
        """Finish the trial with its final value."""
        self.result = self._client.complete(self.study_id, self.number, value, attrs=attrs)
        self._stop_heartbeats()
        return self.result

    def finish(self, state: Ending, reason: str, attrs: dict[str, Any] | None = None) -> TrialOut:
        """Finish the trial as ``pruned``, ``failed`` or ``diverged`` with a reason."""
        self.result = self._client.complete(
            self.study_id, self.number, state=state, reason=reason, attrs=attrs
        )
        self._stop_heartbeats()
        return self.result

    # The context manager

    def __enter__(self) -> Self:
        self._asked = self._client.ask(self.study_id)
        self._expires_at = self._asked.lease.expires_at
        self._thread = threading.Thread(
            target=self._beat, name=f"hps-heartbeat-{self.study_id}-{self.number}", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool:
        self._stop_heartbeats()
        if self.result is not None or self._lost.is_set():
            return False
        if error is None:
            log.warning("trial %s/%s: %s; recorded as failed", self.study_id, self.number, NO_COMPLETE_REASON)
            self.finish("failed", NO_COMPLETE_REASON)
            return False
        if isinstance(error, TrialPruned):
            self.finish("pruned", str(error) or "pruned")
            return True
        self._record_crash(error)
        return False

    def _record_crash(self, error: BaseException) -> None:
        """Complete as failed, never hiding the crash behind an error of our own."""
        # KeyboardInterrupt, SystemExit: the run was stopped, not wrong; "interrupted" re-queues its params.
        prefix = "interrupted: " if not isinstance(error, Exception) else ""
        message = str(error)
        reason = f"{prefix}{type(error).__name__}" + (f": {message}" if message else "")
        try:
            self.finish("failed", reason)
        except Exception as failure:
            # The crash is what the caller must see; the lease expiry will fail the trial for us.
            log.warning("trial %s/%s: could not record the failure: %s", self.study_id, self.number, failure)

    # Heartbeats

    def _ask(self) -> AskOut:
        if self._asked is None:
            raise RuntimeError("the trial starts when the `with` block is entered")
        return self._asked

    def _interval(self) -> float:
        if self._heartbeat_s is not None:
            return self._heartbeat_s
        remaining = (self._expires_at - datetime.now(UTC)).total_seconds()
        return max(MIN_HEARTBEAT_S, remaining / 3)

    def _beat(self) -> None:
        from service.client import HpsError  # late: the client imports this module on run_trial

        wait = self._interval()
        while not self._done.wait(wait):
            try:
                answer = self._client.heartbeat(self.study_id, self.number)
            except HpsError as failure:
                if failure.status == 409:
                    log.warning("trial %s/%s: lease lost (%s)", self.study_id, self.number, failure.detail)
                    self._lost.set()
                    return
                # An outage or a refusal we cannot fix: keep beating; the lease may outlive a short one.
                log.info("trial %s/%s: heartbeat failed: %s", self.study_id, self.number, failure)
                wait = OUTAGE_RETRY_S
                continue
            self.heartbeats += 1
            self._expires_at = answer.lease.expires_at
            if answer.should_stop:
                self._stop_requested.set()
            wait = self._interval()

    def _stop_heartbeats(self) -> None:
        self._done.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=30)
