"""Cron slots in time zones, daylight-saving changes included, and the slot plan of a due schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hps.server.schedules.cron import CronSchedule
from hps.server.schedules.scheduler import plan_slots
from hps.wire.schedules import CronError

BERLIN_SPRING = datetime(2026, 3, 29, tzinfo=UTC)  # clocks go 02:00 CET -> 03:00 CEST
BERLIN_FALL = datetime(2026, 10, 25, tzinfo=UTC)  # clocks go 03:00 CEST -> 02:00 CET


def local(slots: list[datetime], cron: CronSchedule) -> list[str]:
    return [slot.astimezone(cron.zone).strftime("%m-%d %H:%M %Z") for slot in slots]


def test_nightly_slots_follow_the_wall_clock_in_the_time_zone() -> None:
    cron = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    slots = cron.slots(datetime(2026, 3, 26, 12, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC), 10)
    # 02:30 does not exist on the spring-forward day: it fires once, when the gap ends (03:00 CEST).
    assert local(slots, cron) == [
        "03-27 02:30 CET",
        "03-28 02:30 CET",
        "03-29 03:00 CEST",
        "03-30 02:30 CEST",
    ]
    assert [slot.hour for slot in slots] == [1, 1, 1, 0]  # in UTC


def test_the_fall_back_day_fires_once() -> None:
    cron = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    slots = cron.slots(BERLIN_FALL - timedelta(days=1), BERLIN_FALL + timedelta(days=1), 10)
    # 02:30 happens twice on 10-25 (CEST, then CET); only the first occurrence is a slot.
    assert local(slots, cron) == ["10-24 02:30 CEST", "10-25 02:30 CEST"]
    hourly = CronSchedule.parse("30 * * * *", "Europe/Berlin")
    around = hourly.slots(BERLIN_FALL - timedelta(hours=1), BERLIN_FALL + timedelta(hours=3), 10)
    assert local(around, hourly) == ["10-25 01:30 CEST", "10-25 02:30 CEST", "10-25 03:30 CET"]
    assert len(set(around)) == len(around)


def test_next_and_last_slot_around_the_spring_gap() -> None:
    cron = CronSchedule.parse("30 2 * * *", "Europe/Berlin")
    gap_end = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)  # 03:00 CEST
    assert cron.next_after(gap_end - timedelta(seconds=1)) == gap_end
    assert cron.next_after(gap_end) == datetime(2026, 3, 30, 0, 30, tzinfo=UTC)
    assert cron.last_at_or_before(gap_end) == gap_end
    assert cron.last_at_or_before(gap_end - timedelta(seconds=1)) == datetime(2026, 3, 28, 1, 30, tzinfo=UTC)


def test_utc_and_weekday_fields() -> None:
    cron = CronSchedule.parse("0 6 * * 1", "UTC")  # Mondays 06:00
    slots = cron.slots(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC), 10)
    assert [s.day for s in slots] == [2, 9, 16, 23, 30] and all(s.weekday() == 0 for s in slots)


@pytest.mark.parametrize(
    ("expression", "timezone", "says"),
    [
        ("0 2 * *", "UTC", "5 fields"),
        ("0 0 2 * * *", "UTC", "5 fields"),
        ("@daily", "UTC", "5 fields"),
        ("61 2 * * *", "UTC", "not a valid cron"),
        ("0 2 * * *", "Mars/Olympus", "not a known IANA time zone"),
        ("0 2 * * *", "../etc/passwd", "not a known IANA time zone"),
    ],
)
def test_bad_cron_or_time_zone_is_refused_with_a_reason(expression: str, timezone: str, says: str) -> None:
    with pytest.raises(CronError, match=says):
        CronSchedule.parse(expression, timezone)


def test_plan_on_time_runs_the_slot() -> None:
    cron = CronSchedule.parse("0 * * * *", "UTC")
    slot = datetime(2026, 3, 1, 12, tzinfo=UTC)
    plan = plan_slots(cron, slot, slot + timedelta(seconds=20), timedelta(minutes=5), "skip")
    assert (plan.run, plan.trigger, plan.skipped, plan.missed) == (slot, "schedule", None, [])
    assert plan.next_run_at == slot + timedelta(hours=1)


@pytest.mark.parametrize("misfire", ["skip", "run_once"])
def test_plan_after_downtime_runs_once_or_records_one_skip(misfire: str) -> None:
    cron = CronSchedule.parse("0 * * * *", "UTC")
    first = datetime(2026, 3, 1, 12, tzinfo=UTC)
    now = first + timedelta(hours=5, minutes=30)  # down for 12:00 ... 17:00
    plan = plan_slots(cron, first, now, timedelta(minutes=5), misfire)
    assert len(plan.missed) == 6 and plan.missed[0] == first and plan.missed[-1] == first + timedelta(hours=5)
    if misfire == "run_once":
        assert (plan.run, plan.trigger, plan.skipped) == (plan.missed[-1], "catch_up", None)
    else:
        assert (plan.run, plan.skipped) == (None, plan.missed[-1])
    assert plan.next_run_at == first + timedelta(hours=6)
    assert "6 slots missed" in plan.missed_text()


def test_plan_with_earlier_misses_and_an_on_time_slot() -> None:
    cron = CronSchedule.parse("0 * * * *", "UTC")
    first = datetime(2026, 3, 1, 12, tzinfo=UTC)
    now = first + timedelta(hours=2, seconds=30)  # 12:00 and 13:00 missed, 14:00 on time
    skip = plan_slots(cron, first, now, timedelta(minutes=5), "skip")
    assert skip.run == first + timedelta(hours=2) and skip.skipped == first + timedelta(hours=1)
    once = plan_slots(cron, first, now, timedelta(minutes=5), "run_once")
    assert once.run == first + timedelta(hours=2) and once.skipped is None and len(once.missed) == 2
