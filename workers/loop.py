"""The worker: claim a trial over HTTP, fine-tune with the sampled optimizer, report each epoch,
complete with what was measured; back off when there is nothing to do. A study with ``lr_range_test`` hands
out its range tests first: the worker runs each (``lr_range_test.py``) and sends back the loss curve.

A worker needs an API URL and a token, never database credentials. Pretrained weights and data are
loaded once per (task, model, dataset) for the life of the process; every trial starts from a fresh copy.
"""

from __future__ import annotations

import gc
import importlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import torch

from hps.catalog.registry import Registry, ResolvedTask
from hps.client.backoff import Backoff, call_with_retry
from hps.client.http import HpsClient, HpsError, Outcome
from hps.client.leases import LeaseKeeper
from hps.wire.costs import TrialCost
from hps.wire.range_tests import RangeTestCompletion, RangeTestWork
from hps.wire.reasons import ReasonCode, reason, reason_code
from hps.wire.trials import AskOut
from hps.wire.workers import ClaimOut, WorkKind
from hps.workers.costs import measure_cost, record_peak, trial_batch_size
from hps.workers.devices import parse_device
from hps.workers.faults import FaultyTask, fault_from_environment
from hps.workers.lr_range_test import RangeTestOutcome, RangeTestPlan, run_range_test
from hps.workers.tasks.base import Task, TaskFactory
from hps.workers.training import Decision, EpochResult, TrainingOutcome, TrainingPlan, train

log = logging.getLogger("hps.worker")

# What CUDA says when a device is left in an unusable state (sticky errors): the process must go.
_DEVICE_ERROR_MARKERS = ("CUDA error", "device-side assert", "CUBLAS_STATUS", "cuDNN error", "NCCL error")
EXIT_DEVICE_BROKEN = 3
EXIT_KILLED = 130
# What this worker runs: trials, and the lr range tests some studies run before their trials.
_KINDS: tuple[WorkKind, ...] = ("trial", "lr_range_test")


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker process runs."""

    worker_id: str
    device: str
    cache_dir: Path
    tasks: tuple[str, ...]
    max_trials: int | None = None
    once: bool = False
    # The share of its device each trial holds: 1/N when N worker processes share one GPU
    # (``--trials-per-device N``); what a trial's GPU-seconds are counted at.
    device_share: float = 1.0
    # Where measured peak memory per task is kept for ``--trials-per-device`` (None: not kept).
    peak_book: Path | None = None
    idle_backoff: Backoff = field(default_factory=lambda: Backoff(base=1.0, cap=30.0))


@dataclass(frozen=True)
class TrialReport:
    """What the worker did with one claim, for its log line. ``state`` is how the worker completed the
    trial, or ``lease-lost`` when it did not (the service had reaped it); ``epochs`` is None when the
    trial raised before training ended."""

    study_id: int
    number: int
    attempt: int
    task: dict[str, Any]
    params: dict[str, Any]
    state: str
    value: float | None
    reason: str | None
    epochs: int | None
    seconds: float
    device_broken: bool = False


class Worker:
    """One process on one device, running trials one after another."""

    def __init__(self, client: HpsClient, registry: Registry, options: WorkerOptions) -> None:
        self.client = client
        self.registry = registry
        self.options = options
        self.device = parse_device(options.device)
        self.stopping = threading.Event()
        self._tasks: dict[tuple[str, str | None, str | None], Task] = {}

    def install_signal_handlers(self) -> None:
        """First SIGTERM/SIGINT: finish the current step, hand the trial back, exit 0.
        A second one: exit at once."""

        def handle(signum: int, frame: FrameType | None) -> None:
            if self.stopping.is_set():
                log.warning("second signal: exiting now")
                # At once: no cleanup that could block (a stuck step, a lease thread); the lease expires
                # and the service re-queues the trial.
                os._exit(EXIT_KILLED)
            log.info("signal %s: handing the current trial back and stopping", signum)
            self.stopping.set()

        signal.signal(signal.SIGTERM, handle)
        signal.signal(signal.SIGINT, handle)

    def run(self) -> int:
        """Claim and run trials until told to stop, out of work (``once``) or at ``max_trials``."""
        done, idle = 0, 0
        while not self.stopping.is_set():
            claim = call_with_retry(
                lambda: self.client.claim(
                    self.options.worker_id, self.options.device, self.options.tasks, _KINDS
                ),
                stop=self.stopping,
                give_up_after=float("inf"),
                on_retry=lambda error, wait: log.warning(
                    "service unavailable (%s); retry in %.1fs", error, wait
                ),
            )
            if claim is None:
                if self.options.once:
                    break
                self.stopping.wait(self.options.idle_backoff.delay(idle))
                idle += 1
                continue
            idle = 0
            if claim.lr_range_test is not None:
                broken = self.run_range_test(claim, claim.lr_range_test)
                if broken is not None:
                    log.error("the device is unusable after: %s; exiting", broken)
                    return EXIT_DEVICE_BROKEN
                continue  # a range test is not a trial: max_trials counts trials
            report = self.run_claim(claim)
            self._log(report)
            if report.device_broken:
                log.error("the device is unusable after: %s; exiting", report.reason)
                return EXIT_DEVICE_BROKEN
            done += 1
            if self.options.max_trials is not None and done >= self.options.max_trials:
                break
        return 0

    def run_claim(self, claim: ClaimOut) -> TrialReport:
        """Run one claimed trial to its end and tell the service how it ended."""
        if claim.trial is None:
            raise ValueError(f"claim of study {claim.study_id} holds no trial")
        started = time.monotonic()
        study_id, number = claim.study_id, claim.trial.number
        with LeaseKeeper(self.client, study_id, number, claim.trial.lease.expires_at) as lease:
            outcome = self._train(claim, claim.trial, lease)
        held = time.monotonic() - started
        state, value, reason = _completion(outcome, lease, self.stopping)
        attrs = outcome.attrs if isinstance(outcome, TrainingOutcome) else {}
        if state is not None:
            batch_size = trial_batch_size(claim.task, claim.trial.params)
            cost = measure_cost(held, attrs, batch_size, self.device, self.options.device_share)
            record_peak(self.options.peak_book, self.device, claim.task, batch_size, cost)
            self._complete(claim, number, state, value, reason, attrs, cost)
        if isinstance(outcome, Failure) and reason_code(outcome.reason) == ReasonCode.OOM:
            # Here, outside the except block that caught it, no frame holds the failed step's tensors.
            _free_device_memory(self.device)
        broken = isinstance(outcome, Failure) and outcome.device_broken
        epochs = attrs.get("epochs_run")
        return TrialReport(
            study_id=study_id,
            number=number,
            attempt=claim.trial.attempt,
            task=claim.task,
            params=dict(claim.trial.params),
            state=state or "lease-lost",
            value=value,
            reason=reason,
            epochs=epochs if isinstance(epochs, int) else None,
            seconds=time.monotonic() - started,
            device_broken=broken,
        )

    def run_range_test(self, claim: ClaimOut, work: RangeTestWork) -> str | None:
        """Run one claimed lr range test and send its curve (or its failure); returns the reason when
        the device is unusable after it, else None."""
        study_id = claim.study_id
        with LeaseKeeper.of_range_test(self.client, study_id, work.optimizer, work.lease.expires_at) as lease:
            outcome = self._range_test(claim, work, lease)
        if lease.lost.is_set():
            completion = None
        elif isinstance(outcome, Failure):
            completion = RangeTestCompletion(state="failed", reason=outcome.reason)
        elif self.stopping.is_set():
            completion = RangeTestCompletion(
                state="failed", reason=reason(ReasonCode.INTERRUPTED, "the worker was asked to stop")
            )
        else:
            completion = RangeTestCompletion(
                state="complete",
                points=[(point.lr, point.loss) for point in outcome.points],
                stopped_early=outcome.stopped_early,
                epochs=outcome.epochs,
                wall_time_s=outcome.wall_time_s,
            )
        if completion is not None:
            try:
                call_with_retry(
                    lambda: self.client.complete_range_test(study_id, work.optimizer, completion),
                    give_up_after=3600.0,
                )
            except HpsError as error:
                log.error("completing the lr range test %s/%s failed: %s", study_id, work.optimizer, error)
        state = completion.state if completion is not None else "lease-lost"
        detail = completion.reason or completion.stopped_early if completion is not None else None
        fields = {
            "event": "lr_range_test",
            "study_id": study_id,
            "optimizer": work.optimizer,
            "attempt": work.attempt,
            "state": state,
            "reason": detail,
            "steps": len(outcome.points) if isinstance(outcome, RangeTestOutcome) else None,
            "device": self.options.device,
            "worker_id": self.options.worker_id,
        }
        why = f" ({detail})" if detail else ""
        log.info(
            f"study {study_id} lr range test of {work.optimizer}: {state}{why}", extra={"fields": fields}
        )
        if isinstance(outcome, Failure) and reason_code(outcome.reason) == ReasonCode.OOM:
            _free_device_memory(self.device)
        return outcome.reason if isinstance(outcome, Failure) and outcome.device_broken else None

    def _range_test(
        self, claim: ClaimOut, work: RangeTestWork, lease: LeaseKeeper
    ) -> RangeTestOutcome | Failure:
        try:
            resolved = self.registry.resolve(**_task_fields(claim.task))
            plan = RangeTestPlan(
                low=work.low,
                high=work.high,
                steps=work.steps,
                batch_size=work.batch_size,
                max_steps_per_epoch=resolved.max_steps_per_epoch,
                seed=claim.seed,
                device=self.device,
            )
            stop = _any_set(self.stopping, lease.lost, lease.stop_requested)
            return run_range_test(self._task(resolved), work.params, plan, stop)
        except Exception as error:  # the test fails; the worker goes on
            log.exception("lr range test %s/%s raised", claim.study_id, work.optimizer)
            return classify(error)

    def _train(self, claim: ClaimOut, trial: AskOut, lease: LeaseKeeper) -> TrainingOutcome | Failure:
        try:
            resolved = self.registry.resolve(**_task_fields(claim.task))
            task = self._task(resolved)
            plan = TrainingPlan(
                epochs=resolved.epochs,
                batch_size=resolved.batch_size,
                max_steps_per_epoch=resolved.max_steps_per_epoch,
                metric=claim.metric,
                direction="maximize" if claim.direction == "maximize" else "minimize",
                seed=claim.seed,
                device=self.device,
                max_newton_params=resolved.info.max_newton_params,
            )
            report = self._reporter(claim, trial, lease)
            stop = _any_set(self.stopping, lease.lost, lease.stop_requested)
            return train(task, trial.params, plan, report, stop)
        except Exception as error:  # the trial fails; the worker goes on with the next one (or exits)
            log.exception("trial %s/%s raised", claim.study_id, trial.number)
            return classify(error)

    def _reporter(
        self, claim: ClaimOut, trial: AskOut, lease: LeaseKeeper
    ) -> Callable[[EpochResult], Decision]:
        def report(result: EpochResult) -> Decision:
            try:
                answer = call_with_retry(
                    lambda: self.client.report(claim.study_id, trial.number, result.epoch, result.value),
                    stop=self.stopping,
                )
            except HpsError as error:
                if error.status == 409:
                    log.warning(
                        "trial %s/%s: report refused (%s); stopping it",
                        claim.study_id,
                        trial.number,
                        error,
                    )
                    lease.lost.set()
                    return Decision.STOP
                raise
            if answer.should_stop:
                lease.stop_requested.set()
                return Decision.STOP
            return Decision.PRUNE if answer.should_prune else Decision.CONTINUE

        return report

    def _task(self, resolved: ResolvedTask) -> Task:
        key = (
            resolved.info.name,
            resolved.model.name if resolved.model else None,
            resolved.dataset.name if resolved.dataset else None,
        )
        if key not in self._tasks:
            module_name, _, attribute = resolved.info.implementation.partition(":")
            factory: TaskFactory = getattr(importlib.import_module(module_name), attribute)
            task = factory(resolved.model, resolved.dataset, self.options.cache_dir)
            fault = fault_from_environment()
            self._tasks[key] = FaultyTask(task, fault) if fault else task
        return self._tasks[key]

    def _complete(
        self,
        claim: ClaimOut,
        number: int,
        state: Outcome,
        value: float | None,
        reason: str | None,
        attrs: dict[str, Any],
        cost: TrialCost,
    ) -> None:
        attrs = {**attrs, "worker_id": self.options.worker_id}
        try:
            call_with_retry(
                lambda: self.client.complete(
                    claim.study_id, number, value, state=state, reason=reason, attrs=attrs, cost=cost
                ),
                give_up_after=3600.0,
            )
        except HpsError as error:
            # 409: the lease was reaped meanwhile and a retry owns these params now. A server error that
            # outlasted the retries: give up on this trial (its lease expires and the service re-queues
            # its params) rather than stall the worker.
            log.error("completing trial %s/%s failed, giving up: %s", claim.study_id, number, error)

    def _log(self, report: TrialReport) -> None:
        """One line per trial. The JSON formatter (``--log-format json``) adds ``fields`` as keys of the
        line's object; the text formatter shows the message alone."""
        fields = {
            "event": "trial",
            "study_id": report.study_id,
            "trial": report.number,
            "attempt": report.attempt,
            "task": report.task.get("name"),
            "model": report.task.get("model"),
            "dataset": report.task.get("dataset"),
            "params": report.params,
            "state": report.state,
            "value": report.value,
            "reason": report.reason,
            "epochs": report.epochs,
            "wall_time_s": round(report.seconds, 3),
            "device": self.options.device,
            "worker_id": self.options.worker_id,
        }
        shown = f" value={report.value:.6g}" if report.value is not None else ""
        why = f" ({report.reason})" if report.reason else ""
        ran = f" after {report.epochs} epochs" if report.epochs is not None else ""
        message = (
            f"study {report.study_id} trial {report.number}: {report.state}{shown}{why}{ran} "
            f"in {report.seconds:.1f}s"
        )
        log.info(message, extra={"fields": fields})


@dataclass(frozen=True)
class Failure:
    """A trial that raised, as the service should hear it. Holds no reference to the exception, so
    its frames (and the tensors they hold) can be freed."""

    reason: str
    device_broken: bool = False


def classify(error: Exception) -> Failure:
    """Out of memory → ``oom`` (retried); a CUDA error that leaves the device unusable →
    ``device-error`` (retried elsewhere; this worker exits); anything else → ``error`` (a bug in the
    task or its params: not retried)."""
    detail = f"{type(error).__name__}: {str(error)[:300]}"
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return Failure(reason(ReasonCode.OOM, detail))
    message = str(error)
    if any(marker in message for marker in _DEVICE_ERROR_MARKERS):
        return Failure(reason(ReasonCode.DEVICE_ERROR, detail), device_broken=True)
    return Failure(reason(ReasonCode.ERROR, detail))


def _completion(
    outcome: TrainingOutcome | Failure, lease: LeaseKeeper, stopping: threading.Event
) -> tuple[Outcome | None, float | None, str | None]:
    """How to complete the trial; state None means "don't": the lease is gone."""
    if lease.lost.is_set():
        return None, None, "lease lost"
    if isinstance(outcome, Failure):
        return "failed", None, outcome.reason
    if outcome.state == "stopped":
        if stopping.is_set():
            return "failed", None, reason(ReasonCode.INTERRUPTED, "the worker was asked to stop")
        return "pruned", None, "stopped: the study is no longer running"
    if outcome.state == "complete":
        return "complete", outcome.value, None
    return outcome.state, None, outcome.reason


def _free_device_memory(device: torch.device) -> None:
    # Outside any except block, so the exception's frames (holding tensors) are already gone.
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _any_set(*events: threading.Event) -> Callable[[], bool]:
    return lambda: any(event.is_set() for event in events)


def _task_fields(task: dict[str, Any]) -> dict[str, Any]:
    names = ("model", "dataset", "epochs", "batch_size", "max_steps_per_epoch")
    return {"task": task["name"], **{name: task.get(name) for name in names}}
