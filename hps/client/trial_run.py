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

A heartbeat thread (:class:`hps.client.leases.LeaseKeeper`, the workers' own) keeps the lease alive between
reports, at a third of the lease's remaining time. When the service says the lease is lost (409),
``lease_lost`` becomes true and nothing more is sent on the trial's behalf: its params were re-queued and
the retry's result is the one that counts.
"""

from __future__ import annotations

import logging
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Self

from hps.client.leases import LeaseKeeper
from hps.wire.costs import TrialCost
from hps.wire.reasons import ReasonCode
from hps.wire.reasons import reason as reason_text
from hps.wire.trials import AskOut, ReportOut, TrialOut

if TYPE_CHECKING:
    from hps.client.http import HpsClient

log = logging.getLogger(__name__)

NO_COMPLETE_REASON = "trial ended without complete"
Ending = Literal["pruned", "failed", "diverged"]


class TrialPruned(Exception):  # named after optuna.TrialPruned, which users know
    """Raise inside ``run_trial`` to end the trial as pruned; the message becomes the reason."""


class TrialRun:
    """A trial handed out by ask, kept alive by heartbeats until it is completed.

    Use it through :meth:`hps.client.HpsClient.run_trial`. ``params`` are the sampled values;
    ``should_prune`` and ``should_stop`` are the service's latest answers (from a report or a heartbeat).
    """

    def __init__(self, client: HpsClient, study_id: int, *, heartbeat_s: float | None = None) -> None:
        self._client = client
        self.study_id = study_id
        self._heartbeat_s = heartbeat_s
        self._asked: AskOut | None = None
        self._lease: LeaseKeeper | None = None
        self._last_report: ReportOut | None = None
        self.last_step: int | None = None
        self.result: TrialOut | None = None

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
        return self._keeper().stop_requested.is_set()

    @property
    def lease_lost(self) -> bool:
        """Whether the service reaped the lease: nothing this trial sends counts any more."""
        return self._keeper().lost.is_set()

    @property
    def lease_expires_at(self) -> datetime:
        """When the lease runs out unless a heartbeat or a report extends it (as last heard)."""
        return self._keeper().expires_at

    @property
    def heartbeats(self) -> int:
        """How many heartbeats the service has answered."""
        return self._keeper().beats

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
            self._keeper().stop_requested.set()
        return answer

    def prune(self, reason: str | None = None) -> None:
        """End the trial as pruned: raises :class:`TrialPruned`, which the context manager records."""
        at = f" at step {self.last_step}" if self.last_step is not None else ""
        raise TrialPruned(reason or f"pruned{at}")

    def complete(
        self, value: float, attrs: dict[str, Any] | None = None, cost: TrialCost | None = None
    ) -> TrialOut:
        """Finish the trial with its final value, and what it cost (a study whose objectives name a cost
        needs ``cost``)."""
        self.result = self._client.complete(self.study_id, self.number, value, attrs=attrs, cost=cost)
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
        self._lease = LeaseKeeper(
            self._client,
            self.study_id,
            self._asked.number,
            self._asked.lease.expires_at,
            interval_s=self._heartbeat_s,
        ).start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> bool:
        self._stop_heartbeats()
        if self.result is not None or self.lease_lost:
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
        message = str(error)
        what = f"{type(error).__name__}" + (f": {message}" if message else "")
        reason = what if isinstance(error, Exception) else reason_text(ReasonCode.INTERRUPTED, what)
        try:
            self.finish("failed", reason)
        except Exception as failure:
            # The crash is what the caller must see; the lease expiry will fail the trial for us.
            log.warning("trial %s/%s: could not record the failure: %s", self.study_id, self.number, failure)

    # Plumbing

    def _ask(self) -> AskOut:
        if self._asked is None:
            raise RuntimeError("the trial starts when the `with` block is entered")
        return self._asked

    def _keeper(self) -> LeaseKeeper:
        if self._lease is None:
            raise RuntimeError("the trial starts when the `with` block is entered")
        return self._lease

    def _stop_heartbeats(self) -> None:
        if self._lease is not None:
            self._lease.stop()
