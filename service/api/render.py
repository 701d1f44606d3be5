"""Turning the use cases' read models into wire schemas."""

from __future__ import annotations

from service.api.schemas import AskOut, CurvePoint, LeaseOut, ProgressOut, ReportOut, StudyOut, TrialOut
from service.trials import AskedTrial, ReportAnswer
from service.views import StudyView, TrialView


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
        started_at=record.started_at,
        finished_at=record.finished_at,
    )


def study_out(view: StudyView) -> StudyOut:
    """A study as API.md shows it."""
    record, progress = view.record, view.progress
    return StudyOut(
        id=record.id,
        name=record.name,
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
