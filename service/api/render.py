"""Turning the use cases' read models into wire schemas."""

from __future__ import annotations

from typing import Any

from hps.catalog.families import learning_rates
from hps.catalog.tasks import DatasetEntry, ModelEntry, TaskInfo
from hps.server.claims import Claim
from hps.server.range_tests import StartedRangeTest
from hps.server.store.range_tests import RangeTestRecord
from hps.server.store.schedules import ScheduleRecord, ScheduleRunRecord
from hps.server.store.tokens import TokenRecord
from hps.server.store.trials import CostSums, TrialRecord
from hps.server.trials import AskedTrial, ReportAnswer
from hps.server.views import StudyView, TrialView
from hps.wire.catalog import EntryOut, LearningRatesOut, TaskOut
from hps.wire.costs import CostOut, CostTotals
from hps.wire.range_tests import ChosenRangeOut, RangeTestOut, RangeTestsOut, RangeTestWork
from hps.wire.schedules import (
    IncumbentOut,
    PromotionOut,
    RunPromotionOut,
    ScheduleOut,
    ScheduleRunOut,
    WarmStartSettingOut,
)
from hps.wire.studies import ProgressOut, StudyOut, WarmStartOut
from hps.wire.tokens import TokenOut
from hps.wire.trials import AskOut, CurvePoint, LeaseOut, ReportOut, TrialOut
from hps.wire.workers import ClaimOut


def trial_out(view: TrialView) -> TrialOut:
    """A trial as API.md shows it."""
    record = view.record
    return TrialOut(
        number=record.number,
        state=record.state,
        params=record.params,
        value=record.value,
        reason=record.reason,
        intermediate_values=[CurvePoint(step=s, value=v) for s, v in view.intermediate_values],
        attrs=record.attrs,
        attempt=record.attempt,
        retry_of=record.retry_of,
        confirms=record.confirms,
        started_at=record.started_at,
        finished_at=record.finished_at,
        cost=cost_out(record),
    )


def cost_out(record: TrialRecord) -> CostOut | None:
    """A trial's cost, or None when it sent none."""
    if record.device_seconds is None:
        return None
    return CostOut(
        device_seconds=record.device_seconds,
        gpus=record.gpus or 0.0,
        gpu_seconds=record.gpu_seconds or 0.0,
        peak_memory_mb=record.peak_memory_mb,
        samples=record.samples,
        money=record.money,
    )


def cost_totals(sums: CostSums) -> CostTotals:
    """A study's cost totals."""
    return CostTotals(
        trials=sums.trials,
        device_seconds=sums.device_seconds,
        gpu_seconds=sums.gpu_seconds,
        samples=sums.samples,
        peak_memory_mb=sums.peak_memory_mb,
        money=sums.money if sums.priced else None,
    )


def study_out(view: StudyView) -> StudyOut:
    """A study as API.md shows it."""
    record, progress = view.record, view.progress
    return StudyOut(
        id=record.id,
        name=record.name,
        optuna_name=record.optuna_name,
        state=record.state,
        state_reason=record.state_reason,
        direction=record.direction,
        metric=record.metric,
        spec=record.spec,
        progress=ProgressOut(
            complete=progress.complete,
            pruned=progress.pruned,
            diverged=progress.diverged,
            failed=progress.failed,
            running=progress.running,
            queued=progress.queued,
            remaining=view.remaining,
        ),
        best=trial_out(view.best) if view.best else None,
        created_at=record.created_at,
        finished_at=record.finished_at,
        warm_start=WarmStartOut.model_validate(record.warm_start) if record.warm_start else None,
        cost=cost_totals(view.cost),
    )


def ask_out(asked: AskedTrial) -> AskOut:
    """A handed-out trial."""
    return AskOut(
        study_id=asked.study_id,
        number=asked.number,
        params=asked.params,
        attempt=asked.attempt,
        lease=LeaseOut(expires_at=asked.lease_expires_at),
    )


def report_out(answer: ReportAnswer) -> ReportOut:
    """The answer to a report."""
    return ReportOut(should_prune=answer.should_prune, should_stop=answer.should_stop)


def claim_out(claim: Claim) -> ClaimOut:
    """Claimed work: a trial or a range test."""
    started = claim.range_test
    return ClaimOut(
        kind="trial" if started is None else "lr_range_test",
        study_id=claim.study_id,
        trial=None if claim.trial is None else ask_out(claim.trial),
        lr_range_test=None if started is None else range_test_work(started),
        task=claim.task,
        metric=claim.metric,
        direction=claim.direction,
        seed=claim.seed,
    )


def task_out(info: TaskInfo) -> TaskOut:
    """A registered task."""
    return TaskOut(
        name=info.name,
        description=info.description,
        metrics=dict(info.metrics),
        default_metric=info.default_metric,
        optimizers=list(info.optimizers),
        max_newton_params=info.max_newton_params,
        family=info.family,
        learning_rates=learning_rates_out(info.family),
        defaults={
            "model": info.default_model,
            "dataset": info.default_dataset,
            "epochs": info.default_epochs,
            "batch_size": info.default_batch_size,
            "max_steps_per_epoch": info.default_max_steps_per_epoch,
        },
    )


def learning_rates_out(family: str) -> LearningRatesOut | None:
    """The learning rates a family's studies get from a preset (None: the preset's own)."""
    rates = learning_rates(family)
    if rates is None:
        return None
    return LearningRatesOut(low=rates.low, high=rates.high, starts=dict(rates.starts))


def entry_out(entry: ModelEntry | DatasetEntry) -> EntryOut:
    """A registered model or dataset, without its path."""
    if isinstance(entry, ModelEntry):
        return EntryOut(
            name=entry.name,
            task=entry.task,
            description=entry.description,
            family=entry.family,
            trainable_params=entry.trainable_params,
        )
    return EntryOut(name=entry.name, task=entry.task, description=entry.description)


def token_out(token: TokenRecord) -> TokenOut:
    """A token without its secret."""
    return TokenOut(
        id=token.id,
        name=token.name,
        scopes=list(token.scopes),
        project=token.project,
        created_at=token.created_at,
        revoked_at=token.revoked_at,
    )


def schedule_out(schedule: ScheduleRecord) -> ScheduleOut:
    """A schedule with its incumbent."""
    return ScheduleOut(
        id=schedule.id,
        name=schedule.name,
        state=schedule.state,
        cron=schedule.cron,
        timezone=schedule.timezone,
        template=schedule.template,
        misfire=schedule.misfire,
        concurrency=schedule.concurrency,
        warm_start=WarmStartSettingOut.model_validate(schedule.warm_start) if schedule.warm_start else None,
        promotion=PromotionOut.model_validate(schedule.promotion),
        incumbent=IncumbentOut.model_validate(schedule.incumbent) if schedule.incumbent else None,
        next_run_at=schedule.next_run_at,
        created_at=schedule.created_at,
        updated_at=schedule.updated_at,
    )


def run_out(run: ScheduleRunRecord) -> ScheduleRunOut:
    """One run of a schedule."""
    return ScheduleRunOut(
        id=run.id,
        schedule_id=run.schedule_id,
        scheduled_for=run.scheduled_for,
        trigger=run.trigger,
        outcome=run.outcome,
        detail=run.detail,
        study_id=run.study_id,
        study_name=run.study_name,
        seeded_from=run.seeded_from,
        seeded=run.seeded,
        promotion=RunPromotionOut.model_validate(run.promotion) if run.promotion else None,
        evaluated_at=run.evaluated_at,
        created_at=run.created_at,
    )


def range_test_work(started: StartedRangeTest) -> RangeTestWork:
    """A range test handed to a worker."""
    test = started.test
    return RangeTestWork(
        optimizer=test.optimizer,
        params=test.params,
        low=test.low,
        high=test.high,
        steps=test.steps,
        batch_size=test.batch_size,
        attempt=test.attempt,
        lease=LeaseOut(expires_at=started.lease_expires_at),
    )


def range_test_out(test: RangeTestRecord) -> RangeTestOut:
    """One optimizer's range test as the API shows it."""
    return RangeTestOut(
        optimizer=test.optimizer,
        state=test.state,
        attempt=test.attempt,
        params=test.params,
        low=test.low,
        high=test.high,
        steps=test.steps,
        batch_size=test.batch_size,
        points=[(float(lr), float(loss)) for lr, loss in test.points],
        stopped_early=test.stopped_early,
        chosen=None if test.chosen is None else ChosenRangeOut(**test.chosen),
        epochs=test.epochs,
        wall_time_s=test.wall_time_s,
        reason=test.reason,
        worker_id=test.worker_id,
        started_at=test.started_at,
        finished_at=test.finished_at,
    )


def range_tests_out(tests: list[RangeTestRecord], lr_ranges: dict[str, Any] | None) -> RangeTestsOut:
    """A study's range tests and the ranges they chose."""
    ranges = None if lr_ranges is None else {name: (low, high) for name, (low, high) in lr_ranges.items()}
    return RangeTestsOut(items=[range_test_out(test) for test in tests], lr_ranges=ranges)
