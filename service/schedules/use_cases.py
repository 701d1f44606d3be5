"""Schedule use cases: create, read, change, pause, resume, run now, delete; start a run; judge a
finished run for promotion.

A schedule's template is validated exactly like a study request (the spec, then the task registry) and
stored normalized, so what ``GET`` shows is what every run creates. A run's study is created in the same
transaction that records the run, so a run never exists without its study, nor a study without its run.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import Session

from hps.catalog.registry import Registry
from hps.search_spaces import compile_space
from hps.server.clock import utcnow
from hps.server.errors import InvalidInput, ScheduleBusy, ScheduleNameTaken, ScheduleNotFound, StudyNameTaken
from hps.server.schedules.cron import CronSchedule
from hps.server.schedules.promotion import Candidate, decide, incumbent_of
from hps.server.schedules.warm_start import WarmStart, plan_warm_start
from hps.server.store.database import Database
from hps.server.store.schedules import ScheduleRecord, ScheduleRepository, ScheduleRunRecord
from hps.server.store.studies import StudyRepository
from hps.server.store.trials import TrialRepository
from hps.server.studies import add_study, compile_study
from hps.wire.schedules import (
    PromotionSpec,
    SchedulePatch,
    ScheduleSpec,
    StudyTemplate,
)
from hps.wire.studies import StudySpec

_TEMPLATE_NAME = "template"  # stands in for the run's name while a template is validated
_BUSY_STATES = ("running", "paused")


def run_name(schedule_name: str, slot: datetime) -> str:
    """The name of the study a run creates: the schedule's name and the slot in UTC, to the second
    (cron slots), or to the microsecond (manual runs, which may come twice in a second)."""
    moment = slot.astimezone(UTC)
    fraction = f"{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{schedule_name}-{moment:%Y%m%dT%H%M%S}{fraction}Z"


def normalize_template(template: StudyTemplate, registry: Registry) -> dict[str, object]:
    """The template validated like a study request and normalized (defaults filled, preset resolved);
    its errors name ``template.<field>``."""
    given = template.model_dump(mode="json", exclude_unset=True, exclude={"name"})
    spec = StudySpec.model_validate({**given, "name": _TEMPLATE_NAME})
    try:
        normalized = compile_study(spec, registry).spec
    except InvalidInput as exc:
        raise InvalidInput(exc.detail, field=f"template.{exc.field}" if exc.field else "template") from None
    return normalized.model_dump(mode="json", exclude={"name"})


def require_schedule(
    session: Session, schedule_id: int, project: str | None, *, lock: bool = False
) -> ScheduleRecord:
    """The schedule, if it exists and ``project`` (None: every project) may see it; else 404."""
    schedules = ScheduleRepository(session)
    record = schedules.lock(schedule_id) if lock else schedules.get(schedule_id)
    if record is None or (project is not None and record.project != project):
        raise ScheduleNotFound(schedule_id)
    return record


def create_schedule(
    db: Database, spec: ScheduleSpec, registry: Registry, *, project: str, now: datetime | None = None
) -> ScheduleRecord:
    """Create an active schedule whose first run is the first slot after ``now``."""
    moment = now or utcnow()
    template = normalize_template(spec.template, registry)
    cron = CronSchedule.parse(spec.cron, spec.timezone)

    def work(session: Session) -> ScheduleRecord:
        schedules = ScheduleRepository(session)
        if schedules.get_by_name(spec.name, project) is not None:
            raise ScheduleNameTaken(spec.name)
        return schedules.add(
            ScheduleRecord(
                id=0,
                name=spec.name,
                project=project,
                state="active",
                cron=cron.expression,
                timezone=spec.timezone,
                template=template,
                misfire=spec.misfire,
                concurrency=spec.concurrency,
                warm_start=spec.warm_start.model_dump(by_alias=True) if spec.warm_start else None,
                promotion=spec.promotion.model_dump(),
                incumbent=None,
                next_run_at=cron.next_after(moment),
                created_at=moment,
                updated_at=moment,
            )
        )

    return db.run(work, write=True)


def get_schedule(db: Database, schedule_id: int, *, project: str | None) -> ScheduleRecord:
    """One schedule, with its incumbent and next run."""
    return db.run(lambda session: require_schedule(session, schedule_id, project), write=False)


def list_schedules(
    db: Database, *, limit: int, before_id: int | None, project: str | None
) -> tuple[list[ScheduleRecord], int | None]:
    """A page of schedules, newest first, and the cursor of the next page (None at the end)."""

    def work(session: Session) -> tuple[list[ScheduleRecord], int | None]:
        records = ScheduleRepository(session).page(limit=limit + 1, before_id=before_id, project=project)
        more = len(records) > limit
        records = records[:limit]
        return records, records[-1].id if more else None

    return db.run(work, write=False)


def update_schedule(
    db: Database,
    schedule_id: int,
    patch: SchedulePatch,
    registry: Registry,
    *,
    project: str | None,
    now: datetime | None = None,
) -> ScheduleRecord:
    """Change the fields ``patch`` sets. A new cron or time zone moves the next run to its first slot
    after ``now``."""
    moment = now or utcnow()
    sent = patch.model_fields_set
    changes: dict[str, object] = {"updated_at": moment}
    if patch.template is not None:
        changes["template"] = normalize_template(patch.template, registry)
    for name in ("cron", "timezone", "misfire", "concurrency"):
        if getattr(patch, name) is not None:
            changes[name] = getattr(patch, name)
    if "warm_start" in sent:
        changes["warm_start"] = patch.warm_start.model_dump(by_alias=True) if patch.warm_start else None
    if patch.promotion is not None:
        changes["promotion"] = patch.promotion.model_dump()
    if "incumbent" in sent:
        changes["incumbent"] = None

    def work(session: Session) -> ScheduleRecord:
        record = require_schedule(session, schedule_id, project, lock=True)
        if "cron" in changes or "timezone" in changes:
            cron = CronSchedule.parse(
                str(changes.get("cron", record.cron)), str(changes.get("timezone", record.timezone))
            )
            changes["next_run_at"] = cron.next_after(moment)
        ScheduleRepository(session).update(schedule_id, **changes)
        return require_schedule(session, schedule_id, project)

    return db.run(work, write=True)


def set_paused(
    db: Database, schedule_id: int, paused: bool, *, project: str | None, now: datetime | None = None
) -> ScheduleRecord:
    """Pause (no slot fires) or resume (the next run is the first slot after ``now``: slots that
    passed while paused are not runs, missed or otherwise)."""
    moment = now or utcnow()

    def work(session: Session) -> ScheduleRecord:
        record = require_schedule(session, schedule_id, project, lock=True)
        if paused and record.state == "active":
            ScheduleRepository(session).update(schedule_id, state="paused", updated_at=moment)
        elif not paused and record.state == "paused":
            next_run_at = CronSchedule.parse(record.cron, record.timezone).next_after(moment)
            ScheduleRepository(session).update(
                schedule_id, state="active", next_run_at=next_run_at, updated_at=moment
            )
        return require_schedule(session, schedule_id, project)

    return db.run(work, write=True)


def delete_schedule(db: Database, schedule_id: int, *, project: str | None) -> None:
    """Delete the schedule and its run history; the studies its runs created stay."""

    def work(session: Session) -> None:
        require_schedule(session, schedule_id, project, lock=True)
        ScheduleRepository(session).delete(schedule_id)

    db.run(work, write=True)


def run_schedule_now(
    db: Database, registry: Registry, schedule_id: int, *, project: str | None, now: datetime | None = None
) -> ScheduleRunRecord:
    """Start a run now, outside the cron (its slot is ``now``); the next scheduled run is unchanged.
    ``ScheduleBusy`` when the previous run's study still runs and ``concurrency`` is ``skip``."""
    moment = now or utcnow()

    def work(session: Session) -> ScheduleRunRecord:
        record = require_schedule(session, schedule_id, project, lock=True)
        busy = busy_study(session, record)
        if busy is not None:
            raise ScheduleBusy(schedule_id, busy)
        return start_run(session, registry, record, moment, trigger="manual", now=moment)

    return db.run(work, write=True)


def list_runs(
    db: Database, schedule_id: int, *, limit: int, before_id: int | None, project: str | None
) -> tuple[list[ScheduleRunRecord], int | None]:
    """A page of the schedule's runs, newest first, and the next page's cursor."""

    def work(session: Session) -> tuple[list[ScheduleRunRecord], int | None]:
        require_schedule(session, schedule_id, project)
        runs = ScheduleRepository(session).runs_page(schedule_id, limit=limit + 1, before_id=before_id)
        more = len(runs) > limit
        runs = runs[:limit]
        return runs, runs[-1].id if more else None

    return db.run(work, write=False)


def busy_study(session: Session, schedule: ScheduleRecord) -> int | None:
    """The previous run's study id when ``concurrency`` is ``skip`` and that study still runs."""
    if schedule.concurrency != "skip":
        return None
    last = ScheduleRepository(session).last_started_run(schedule.id)
    if last is None or last.study_id is None:
        return None
    study = StudyRepository(session).get(last.study_id)
    return study.id if study is not None and study.state in _BUSY_STATES else None


def start_run(
    session: Session,
    registry: Registry,
    schedule: ScheduleRecord,
    slot: datetime,
    *,
    trigger: str,
    now: datetime,
    detail: str | None = None,
) -> ScheduleRunRecord:
    """Record the run for ``slot`` and create its study (warm-started when the schedule says so), in the
    caller's transaction. A template the registry no longer accepts, or a taken name, is recorded as a
    failed run rather than raised: the slot is spent either way."""
    name = run_name(schedule.name, slot)
    try:
        plan = compile_study(StudySpec.model_validate({**schedule.template, "name": name}), registry)
        warm = _warm_start(session, schedule, plan.spec)
        study = add_study(
            session, plan, project=schedule.project, now=now, seeds=warm.seeds, warm_start=warm.info
        )
    except (InvalidInput, StudyNameTaken) as exc:
        failure = f"{exc.field}: {exc.detail}" if exc.field else exc.detail
        return _add_run(session, schedule, slot, trigger, "failed", _join(detail, failure)[:500], now)
    return _add_run(
        session,
        schedule,
        slot,
        trigger,
        "started",
        detail,
        now,
        study_id=study.id,
        study_name=study.name,
        seeded_from=warm.seeded_from,
        seeded=len(warm.seeds),
    )


def skip_run(
    session: Session, schedule: ScheduleRecord, slot: datetime, *, trigger: str, detail: str, now: datetime
) -> ScheduleRunRecord:
    """Record ``slot`` as skipped, saying why."""
    return _add_run(session, schedule, slot, trigger, "skipped", detail, now)


def _add_run(
    session: Session,
    schedule: ScheduleRecord,
    slot: datetime,
    trigger: str,
    outcome: str,
    detail: str | None,
    now: datetime,
    *,
    study_id: int | None = None,
    study_name: str | None = None,
    seeded_from: int | None = None,
    seeded: int = 0,
) -> ScheduleRunRecord:
    """Record a run of ``slot``; only a started run has a study (and maybe seeds)."""
    return ScheduleRepository(session).add_run(
        ScheduleRunRecord(
            id=0,
            schedule_id=schedule.id,
            scheduled_for=slot,
            trigger=trigger,
            outcome=outcome,
            detail=detail,
            study_id=study_id,
            study_name=study_name,
            seeded_from=seeded_from,
            seeded=seeded,
            promotion=None,
            evaluated_at=None,
            created_at=now,
        )
    )


def _join(first: str | None, second: str) -> str:
    return f"{first}; {second}" if first else second


def _warm_start(session: Session, schedule: ScheduleRecord, spec: StudySpec) -> WarmStart:
    if schedule.warm_start is None:
        return WarmStart()
    return plan_warm_start(
        session,
        schedule_id=schedule.id,
        project=schedule.project,
        source=str(schedule.warm_start["from"]),
        top_k=int(schedule.warm_start["top_k"]),
        space=compile_space(spec.search_space),
        metric=spec.metric,
        limit=spec.n_trials,
    )


def evaluate_run(session: Session, run_id: int, now: datetime) -> bool:
    """Judge a finished run's winner against its schedule's incumbent, promote it if it wins, and record
    the decision on the run. False when another transaction holds the schedule or judged the run."""
    run = ScheduleRepository(session).get_run(run_id)
    if run is None:
        return False
    schedules = ScheduleRepository(session)
    schedule = schedules.lock(run.schedule_id, skip_locked=True)
    run = schedules.get_run(run_id)  # read again under the lock: another replica may have judged it
    if schedule is None or run is None or run.evaluated_at is not None:
        return False
    promotion = PromotionSpec.model_validate(schedule.promotion)
    study = StudyRepository(session).get(run.study_id) if run.study_id is not None else None
    if study is None or study.state != "completed":
        why = "its study was deleted" if study is None else f"its study ended {study.state}"
        record = {"decision": "ineligible", "reason": f"{why}; only completed studies promote"}
    else:
        best = TrialRepository(session).top_complete(study.id, study.direction, 1)
        if not best:
            record = {"decision": "no_winner", "reason": "its study completed without a complete trial"}
        else:
            trial = best[0]
            assert trial.value is not None  # complete trials carry their value
            candidate = Candidate(
                value=trial.value,
                metric=study.metric,
                direction=study.direction,
                params=trial.params,
                study_id=study.id,
                study_name=study.name,
                trial_number=trial.number,
            )
            decision = decide(schedule.incumbent, candidate, promotion)
            record = decision.as_json(promotion)
            if decision.outcome == "promoted":
                schedules.update(schedule.id, incumbent=incumbent_of(candidate, run.id, now), updated_at=now)
    schedules.update_run(run.id, promotion=record, evaluated_at=now)
    return True
