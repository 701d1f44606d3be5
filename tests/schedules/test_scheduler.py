"""The scheduler against real databases (SQLite and PostgreSQL): exactly once with racing replicas,
misfire policies across restarts, concurrency, warm starts that asks really hand out, promotion."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select

from harness.api import unique
from harness.schedules import GRACE, T0, run_trials, schedule_spec
from harness.stack import LEASE, Stack
from hps.server.errors import ScheduleBusy
from hps.server.schedules import use_cases as schedules
from hps.server.schedules.scheduler import tick
from hps.server.store.database import Database
from hps.server.store.models import ScheduleRunRow, StudyRow
from hps.server.store.schedules import ScheduleRunRecord, count_runs_by_outcome
from hps.server.studies import get_study
from hps.server.trials import ask_trial
from hps.wire.schedules import SchedulePatch, WarmStartSpec

FIRST_SLOT = datetime(2026, 3, 2, 2, 0, tzinfo=T0.tzinfo)  # "0 2 * * *" after T0
DAY = timedelta(days=1)


def runs_of(stack: Stack, schedule_id: int) -> list[ScheduleRunRecord]:
    """Oldest first."""
    runs, _ = schedules.list_runs(stack.db, schedule_id, limit=200, before_id=None, project=None)
    return runs[::-1]


def test_racing_replicas_create_exactly_one_study_per_slot(stack: Stack) -> None:
    made = [
        schedules.create_schedule(
            stack.db, schedule_spec(unique("race"), cron="*/10 * * * *"), stack.registry, project="p", now=T0
        )
        for _ in range(3)
    ]
    replicas = [Database(stack.url) for _ in range(6)]
    errors: list[BaseException] = []

    def race(moment: datetime) -> None:
        barrier = threading.Barrier(len(replicas))

        def replica(db: Database) -> None:
            try:
                barrier.wait()
                tick(db, stack.registry, moment, GRACE)
            except BaseException as exc:  # surfaced below
                errors.append(exc)

        threads = [threading.Thread(target=replica, args=(db,)) for db in replicas]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    try:
        for moment in (T0 + timedelta(minutes=10, seconds=1), T0 + timedelta(minutes=20, seconds=3)):
            race(moment)
            race(moment)  # a second wave at the same moment finds nothing due
    finally:
        for db in replicas:
            db.dispose()
    assert errors == []
    for schedule in made:
        runs = runs_of(stack, schedule.id)
        assert [run.scheduled_for for run in runs] == [T0 + timedelta(minutes=10), T0 + timedelta(minutes=20)]
        assert all(run.outcome == "started" for run in runs) or runs[1].outcome == "skipped"
    names = stack.db.run(lambda s: list(s.execute(select(StudyRow.name)).scalars()), write=False)
    # Exactly one study per started run, each with the run's name.
    started = [run for schedule in made for run in runs_of(stack, schedule.id) if run.outcome == "started"]
    assert sorted(names) == sorted(str(run.study_name) for run in started)
    assert len(names) == len(set(names))


def test_run_once_catches_up_one_run_after_a_restart_and_never_twice(stack: Stack) -> None:
    schedule = schedules.create_schedule(
        stack.db, schedule_spec(unique("once"), misfire="run_once"), stack.registry, project="p", now=T0
    )
    assert schedule.next_run_at == FIRST_SLOT
    back = FIRST_SLOT + 3 * DAY + timedelta(hours=5)  # down for four nightly slots
    for _ in range(2):  # two restarts at the same moment: a fresh "process" each time
        restarted = Database(stack.url)
        try:
            tick(restarted, stack.registry, back, GRACE)
        finally:
            restarted.dispose()
    runs = runs_of(stack, schedule.id)
    assert len(runs) == 1
    (run,) = runs
    assert (run.trigger, run.outcome, run.scheduled_for) == ("catch_up", "started", FIRST_SLOT + 3 * DAY)
    assert run.detail and "4 slots missed" in run.detail
    assert schedules.get_schedule(stack.db, schedule.id, project=None).next_run_at == FIRST_SLOT + 4 * DAY


def test_skip_records_the_missed_slot_and_moves_on(stack: Stack) -> None:
    schedule = schedules.create_schedule(
        stack.db, schedule_spec(unique("skip"), misfire="skip"), stack.registry, project="p", now=T0
    )
    tick(stack.db, stack.registry, FIRST_SLOT + 2 * DAY + timedelta(hours=1), GRACE)
    tick(stack.db, stack.registry, FIRST_SLOT + 2 * DAY + timedelta(hours=1), GRACE)
    (skipped,) = runs_of(stack, schedule.id)
    assert (skipped.outcome, skipped.study_id, skipped.scheduled_for) == (
        "skipped",
        None,
        FIRST_SLOT + 2 * DAY,
    )
    assert skipped.detail and "3 slots missed" in skipped.detail and "skip" in skipped.detail
    tick(stack.db, stack.registry, FIRST_SLOT + 3 * DAY + timedelta(seconds=10), GRACE)  # back on time
    on_time = runs_of(stack, schedule.id)[-1]
    assert (on_time.trigger, on_time.outcome, on_time.scheduled_for) == (
        "schedule",
        "started",
        FIRST_SLOT + 3 * DAY,
    )
    assert stack.db.run(count_runs_by_outcome, write=False) == {"started": 1, "skipped": 1, "failed": 0}


def test_concurrency_skip_waits_for_the_previous_study_and_allow_does_not(stack: Stack) -> None:
    waiting = schedules.create_schedule(
        stack.db, schedule_spec(unique("busy")), stack.registry, project="p", now=T0
    )
    both = schedules.create_schedule(
        stack.db, schedule_spec(unique("both"), concurrency="allow"), stack.registry, project="p", now=T0
    )
    for day in range(2):
        tick(stack.db, stack.registry, FIRST_SLOT + day * DAY + timedelta(seconds=5), GRACE)
    first, second = runs_of(stack, waiting.id)
    assert first.outcome == "started" and second.outcome == "skipped"
    assert second.detail and f"study {first.study_id} is still running" in second.detail
    assert [run.outcome for run in runs_of(stack, both.id)] == ["started", "started"]
    with pytest.raises(ScheduleBusy):
        schedules.run_schedule_now(
            stack.db, stack.registry, waiting.id, project=None, now=FIRST_SLOT + 2 * DAY
        )


def test_paused_schedules_do_not_fire_and_resume_from_the_next_slot(stack: Stack) -> None:
    schedule = schedules.create_schedule(
        stack.db, schedule_spec(unique("pause")), stack.registry, project="p", now=T0
    )
    schedules.set_paused(stack.db, schedule.id, True, project=None, now=T0)
    tick(stack.db, stack.registry, FIRST_SLOT + 3 * DAY, GRACE)
    assert runs_of(stack, schedule.id) == []
    resumed = schedules.set_paused(
        stack.db, schedule.id, False, project=None, now=FIRST_SLOT + 3 * DAY + timedelta(hours=1)
    )
    assert resumed.state == "active" and resumed.next_run_at == FIRST_SLOT + 4 * DAY
    tick(stack.db, stack.registry, FIRST_SLOT + 3 * DAY + timedelta(hours=2), GRACE)
    assert runs_of(stack, schedule.id) == []


def test_warm_start_queues_the_previous_best_and_asks_hand_them_out(stack: Stack) -> None:
    spec = schedule_spec(unique("warm"), warm_start={"from": "previous", "top_k": 2})
    schedule = schedules.create_schedule(stack.db, spec, stack.registry, project="p", now=T0)
    tick(stack.db, stack.registry, FIRST_SLOT, GRACE)
    (first,) = runs_of(stack, schedule.id)
    assert first.study_id is not None and first.seeded == 0
    assert get_study(stack.db, first.study_id).record.warm_start == {
        "from": "previous",
        "top_k": 2,
        "seeded_from": None,
        "seeded_from_name": None,
        "configs": [],
        "adjustments": [],
        "note": "no earlier run of this schedule started a study; nothing seeded",
    }
    values = [0.9, 0.3, 0.7, 0.1, 0.5, 0.8]
    asked = run_trials(stack, first.study_id, values, FIRST_SLOT)
    best_two = [asked[3], asked[1]]  # loss is minimized: 0.1, then 0.3
    tick(stack.db, stack.registry, FIRST_SLOT + DAY, GRACE)
    second = runs_of(stack, schedule.id)[-1]
    assert (second.outcome, second.seeded_from, second.seeded) == ("started", first.study_id, 2)
    assert second.study_id is not None
    study = get_study(stack.db, second.study_id)
    warm = study.record.warm_start
    assert warm is not None and warm["seeded_from"] == first.study_id
    assert [config["params"] for config in warm["configs"]] == best_two
    assert [config["source_value"] for config in warm["configs"]] == [0.1, 0.3]
    moment = FIRST_SLOT + DAY
    handed = [ask_trial(stack.db, stack.sampling, second.study_id, lease=LEASE, now=moment) for _ in range(3)]
    assert [trial.params for trial in handed[:2]] == best_two
    assert handed[2].number == 2  # sampling takes over after the seeds


def test_warm_start_fits_a_changed_space_and_says_what_it_changed(stack: Stack) -> None:
    source = schedules.create_schedule(
        stack.db, schedule_spec(unique("src")), stack.registry, project="p", now=T0
    )
    tick(stack.db, stack.registry, FIRST_SLOT, GRACE)
    (run,) = runs_of(stack, source.id)
    assert run.study_id is not None and run.study_name is not None
    asked = run_trials(stack, run.study_id, [0.5, 0.4, 0.3, 0.2, 0.1, 0.05], FIRST_SLOT)
    template = dict(schedule_spec("x").template.model_dump(mode="json", exclude_unset=True))
    # The new space offers adam only and a narrow lr range: sgd configurations cannot be seeded.
    template["search_space"] = {
        "params": {
            "optimizer": {"type": "categorical", "choices": ["adam"]},
            "lr": {"type": "float", "low": 1e-3, "high": 2e-3, "scale": "log"},
        }
    }
    spec = schedule_spec(unique("dst"), template=template, warm_start={"from": run.study_name, "top_k": 6})
    target = schedules.create_schedule(stack.db, spec, stack.registry, project="p", now=T0)
    started = schedules.run_schedule_now(stack.db, stack.registry, target.id, project=None, now=FIRST_SLOT)
    assert started.study_id is not None and started.seeded_from == run.study_id
    warm = get_study(stack.db, started.study_id).record.warm_start
    assert warm is not None
    adams = [params for params in reversed(asked) if params["optimizer"] == "adam"]
    sgds = [params for params in asked if params["optimizer"] == "sgd"]
    assert len(warm["configs"]) == len({round(min(max(p["lr"], 1e-3), 2e-3), 12) for p in adams})
    for config in warm["configs"]:
        assert 1e-3 <= config["params"]["lr"] <= 2e-3 and config["params"]["optimizer"] == "adam"
    notes = " | ".join(warm["adjustments"])
    if sgds:
        assert "dropped optimizer='sgd': not among the choices ['adam']" in notes
    assert "clipped lr from" in notes
    # The next scheduled run is unchanged by a manual one.
    assert schedules.get_schedule(stack.db, target.id, project=None).next_run_at == FIRST_SLOT


def test_promotion_follows_the_margin_and_is_kept_in_the_run_history(stack: Stack) -> None:
    spec = schedule_spec(unique("promo"), promotion={"margin": 0.05, "relative": False}, concurrency="allow")
    schedule = schedules.create_schedule(stack.db, spec, stack.registry, project="p", now=T0)
    bests = [0.5, 0.47, 0.3]  # loss: the second is better by 0.03 (< margin), the third by 0.2
    for day, best in enumerate(bests):
        moment = FIRST_SLOT + day * DAY
        tick(stack.db, stack.registry, moment, GRACE)
        run = runs_of(stack, schedule.id)[-1]
        assert run.study_id is not None
        run_trials(stack, run.study_id, [best + 0.1 * k for k in range(6)], moment)
        tick(stack.db, stack.registry, moment + timedelta(minutes=1), GRACE)
    decisions = [run.promotion for run in runs_of(stack, schedule.id)]
    assert [d["decision"] if d else None for d in decisions] == ["promoted", "kept", "promoted"]
    assert decisions[1] is not None and decisions[1]["incumbent_value"] == 0.5
    assert decisions[1]["candidate_value"] == pytest.approx(0.47)
    incumbent = schedules.get_schedule(stack.db, schedule.id, project=None).incumbent
    assert (
        incumbent is not None and incumbent["value"] == pytest.approx(0.3) and incumbent["metric"] == "loss"
    )
    third = runs_of(stack, schedule.id)[-1]
    assert incumbent["study_id"] == third.study_id and incumbent["run_id"] == third.id
    # Changing the metric makes runs incomparable until the incumbent is forgotten.
    template = schedule_spec("x").template.model_dump(mode="json", exclude_unset=True)
    changed = SchedulePatch.model_validate({"template": {**template, "metric": "error"}})
    schedules.update_schedule(
        stack.db, schedule.id, changed, stack.registry, project=None, now=FIRST_SLOT + 3 * DAY
    )
    tick(stack.db, stack.registry, FIRST_SLOT + 3 * DAY + timedelta(seconds=1), GRACE)
    run = runs_of(stack, schedule.id)[-1]
    assert run.study_id is not None
    run_trials(stack, run.study_id, [0.01] * 6, FIRST_SLOT + 3 * DAY)
    tick(stack.db, stack.registry, FIRST_SLOT + 3 * DAY + timedelta(minutes=1), GRACE)
    last = runs_of(stack, schedule.id)[-1].promotion
    assert last is not None and last["decision"] == "not_comparable"
    schedules.update_schedule(
        stack.db, schedule.id, SchedulePatch.model_validate({"incumbent": None}), stack.registry, project=None
    )
    assert schedules.get_schedule(stack.db, schedule.id, project=None).incumbent is None


def test_runs_of_cancelled_studies_do_not_promote(stack: Stack) -> None:
    from hps.server.studies import cancel_study

    schedule = schedules.create_schedule(
        stack.db, schedule_spec(unique("cxl")), stack.registry, project="p", now=T0
    )
    tick(stack.db, stack.registry, FIRST_SLOT, GRACE)
    (run,) = runs_of(stack, schedule.id)
    assert run.study_id is not None
    run_trials(stack, run.study_id, [0.2], FIRST_SLOT)
    cancel_study(stack.db, stack.sampling, run.study_id)
    tick(stack.db, stack.registry, FIRST_SLOT + timedelta(minutes=1), GRACE)
    (judged,) = runs_of(stack, schedule.id)
    assert judged.promotion is not None and judged.promotion["decision"] == "ineligible"
    assert schedules.get_schedule(stack.db, schedule.id, project=None).incumbent is None
    count = stack.db.run(
        lambda s: s.execute(select(func.count()).select_from(ScheduleRunRow)).scalar_one(), write=False
    )
    assert count == 1


def test_a_slot_whose_template_no_longer_validates_is_recorded_failed(stack: Stack) -> None:
    schedule = schedules.create_schedule(
        stack.db, schedule_spec(unique("fail")), stack.registry, project="p", now=T0
    )
    # Another study of the schedule's project took the name this slot's run would use: the slot fails,
    # visibly, and is spent.
    clash = schedule_spec("x").template.model_dump(mode="json", exclude_unset=True)
    from hps.server.studies import create_study
    from hps.wire.studies import StudySpec

    create_study(
        stack.db,
        StudySpec.model_validate({**clash, "name": schedules.run_name(schedule.name, FIRST_SLOT)}),
        stack.registry,
        project="p",
    )
    tick(stack.db, stack.registry, FIRST_SLOT, GRACE)
    (run,) = runs_of(stack, schedule.id)
    assert run.outcome == "failed" and run.detail and "already exists" in run.detail
    assert schedules.get_schedule(stack.db, schedule.id, project=None).next_run_at == FIRST_SLOT + DAY


def test_warm_start_spec_reads_from_as_an_alias() -> None:
    assert WarmStartSpec.model_validate({"from": "nightly-1", "top_k": 3}).source == "nightly-1"
