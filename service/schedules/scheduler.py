"""The scheduler: fires due schedule slots exactly once, and judges finished runs for promotion.

It runs inside every API process as a background task, like the reaper. A tick takes ``now`` as an
argument (tests pass any moment). Several replicas may tick at the same moment: each due schedule is
claimed in one transaction that locks its row (``SKIP LOCKED`` on PostgreSQL, so replicas spread over
schedules instead of queueing), re-reads ``next_run_at``, moves it past ``now`` by compare-and-set and
records the slot's run (unique per schedule and slot) with its study, so a slot yields one study or none.

Missed slots (the service was down longer than the grace period) follow the schedule's ``misfire``:
``run_once`` runs one catch-up run however many slots were missed; ``skip`` records the latest missed
slot as skipped, saying how many were missed. Restarting never fires a slot twice: ``next_run_at`` is in
the database, past every slot already handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from hps.catalog.registry import Registry
from hps.server.clock import utcnow
from hps.server.errors import DomainError
from hps.server.schedules.cron import CronSchedule
from hps.server.schedules.use_cases import busy_study, evaluate_run, skip_run, start_run
from hps.server.store.database import Database
from hps.server.store.schedules import ScheduleRecord, ScheduleRepository

log = logging.getLogger(__name__)

_BATCH = 100
# Missed slots are counted up to here; beyond, the record says "at least".
MAX_COUNTED_MISSES = 1000


@dataclass(frozen=True)
class SlotPlan:
    """What one claim of a due schedule does: run ``run`` (or nothing), record ``skipped`` (or nothing),
    and the missed slots it accounts for."""

    run: datetime | None
    trigger: str
    skipped: datetime | None
    missed: list[datetime]
    next_run_at: datetime

    def missed_text(self) -> str:
        """How many slots were missed, and when."""
        count = len(self.missed)
        amount = f"at least {count}" if count >= MAX_COUNTED_MISSES else str(count)
        first, last = self.missed[0].isoformat(), self.missed[-1].isoformat()
        span = first if count == 1 else f"{first} to {last}"
        return f"{amount} slot{'s' if count != 1 else ''} missed ({span}) while the scheduler was not running"


def plan_slots(
    cron: CronSchedule, next_run_at: datetime, now: datetime, grace: timedelta, misfire: str
) -> SlotPlan:
    """Decide what a due schedule does at ``now``. The latest slot at or before ``now`` is on time when
    at most ``grace`` late; every earlier unhandled slot, and a late latest one, was missed."""
    latest = cron.last_at_or_before(now)
    latest = max(latest, next_run_at)  # a cron changed by hand may not have next_run_at among its slots
    missed = [next_run_at] if next_run_at < latest else []
    if missed:
        missed += [slot for slot in cron.slots(next_run_at, latest, MAX_COUNTED_MISSES) if slot < latest]
    on_time = now - latest <= grace
    if not on_time:
        missed.append(latest)
    following = cron.next_after(now)
    if on_time:
        skipped = missed[-1] if missed and misfire == "skip" else None
        return SlotPlan(latest, "schedule", skipped, missed, following)
    if misfire == "run_once":
        return SlotPlan(latest, "catch_up", None, missed, following)
    return SlotPlan(None, "schedule", latest, missed, following)


def fire_due(db: Database, registry: Registry, now: datetime, grace: timedelta) -> int:
    """Claim every due schedule and handle its slots; returns how many schedules this call claimed."""
    due = db.run(lambda session: ScheduleRepository(session).due(now, _BATCH), write=False)
    claimed = 0
    for schedule_id in due:

        def work(session: Session, schedule_id: int = schedule_id) -> bool:
            return _claim(session, registry, schedule_id, now, grace)

        try:
            claimed += db.run(work, write=True)
        except DomainError as error:  # a racing replica's slot (unique key), or the database went away
            log.info("schedule %s not fired at %s: %s", schedule_id, now.isoformat(), error.detail)
    return claimed


def _claim(session: Session, registry: Registry, schedule_id: int, now: datetime, grace: timedelta) -> bool:
    schedules = ScheduleRepository(session)
    schedule = schedules.lock(schedule_id, skip_locked=True)
    if schedule is None or schedule.state != "active" or schedule.next_run_at is None:
        return False  # another replica holds it, or it was paused or deleted meanwhile
    seen = schedule.next_run_at
    if seen > now:
        return False  # another replica handled this slot already
    plan = plan_slots(
        CronSchedule.parse(schedule.cron, schedule.timezone), seen, now, grace, schedule.misfire
    )
    if not schedules.advance(schedule_id, seen=seen, to=plan.next_run_at, now=now):
        return False
    if plan.skipped is not None:
        detail = f"{plan.missed_text()}; misfire policy skip"
        skip_run(session, schedule, plan.skipped, trigger="schedule", detail=detail, now=now)
    if plan.run is not None:
        _run_slot(session, registry, schedule, plan, now)
    return True


def _run_slot(
    session: Session, registry: Registry, schedule: ScheduleRecord, plan: SlotPlan, now: datetime
) -> None:
    assert plan.run is not None
    detail = None
    if plan.trigger == "catch_up":
        detail = f"caught up once for {plan.missed_text()}; misfire policy run_once"
    elif plan.missed and schedule.misfire == "run_once":
        detail = f"on time; it also stands for {plan.missed_text()}"
    busy = busy_study(session, schedule)
    if busy is not None:
        reason = f"the previous run's study {busy} is still running; concurrency policy skip"
        skip_run(
            session,
            schedule,
            plan.run,
            trigger=plan.trigger,
            detail=f"{detail}; {reason}" if detail else reason,
            now=now,
        )
        return
    run = start_run(session, registry, schedule, plan.run, trigger=plan.trigger, now=now, detail=detail)
    log.info("schedule %s: run %s for %s: %s", schedule.name, run.id, plan.run.isoformat(), run.outcome)


def evaluate_finished(db: Database, now: datetime) -> int:
    """Judge every started run whose study has finished; returns how many were judged."""
    runs = db.run(lambda session: ScheduleRepository(session).runs_to_evaluate(_BATCH), write=False)
    judged = 0
    for run in runs:

        def work(session: Session, run_id: int = run.id) -> bool:
            return evaluate_run(session, run_id, now)

        try:
            judged += db.run(work, write=True)
        except DomainError as error:
            log.info("run %s not judged: %s", run.id, error.detail)
    return judged


def tick(db: Database, registry: Registry, now: datetime, grace: timedelta) -> int:
    """One round: fire due slots, then judge finished runs. Returns how many schedules fired."""
    fired = fire_due(db, registry, now, grace)
    evaluate_finished(db, now)
    return fired


async def run_scheduler(
    db: Database,
    registry: Registry,
    interval_s: float,
    grace_s: float,
    stop: asyncio.Event,
    clock: Callable[[], datetime] = utcnow,
) -> None:
    """Tick every ``interval_s`` seconds until ``stop`` is set (once at start, for slots missed while
    the service was down); failures are logged, never fatal."""
    grace = timedelta(seconds=grace_s)
    while not stop.is_set():
        try:
            await run_in_threadpool(tick, db, registry, clock(), grace)
        except DomainError as error:  # the database is away: try again next round
            log.warning("scheduler skipped a round: %s", error.detail)
        except Exception:
            log.exception("scheduler round failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval_s)
