"""Cron slots in a time zone: when a schedule fires, as UTC instants.

A schedule's ``cron`` is a standard 5-field expression read on the wall clock of its ``timezone``.
croniter walks naive wall-clock times; this module turns them into instants and settles the two
daylight-saving cases cron leaves open:

- a wall time that does not exist (the hour skipped when clocks spring forward) fires once, at the
  first minute that exists after the gap (``30 2 * * *`` in Europe/Berlin fires at 03:00 CEST that day);
- a wall time that happens twice (the hour repeated when clocks fall back) fires once, at its first
  occurrence.

Mapped this way, later wall times never give earlier instants, so "the first slot after t" and "the
last slot at or before t" are found by walking croniter forwards or backwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

from hps.wire.schedules import CronError, check_cron, check_timezone

# Wider than any daylight-saving shift (two hours at most), so a walk that starts this far before
# (or after) a moment on the wall clock cannot miss a slot the shift moved across it.
_SHIFT_MARGIN = timedelta(hours=3)
_MAX_GAP_MINUTES = 24 * 60


@dataclass(frozen=True)
class CronSchedule:
    """A validated cron expression on the wall clock of a time zone."""

    expression: str
    zone: ZoneInfo

    @classmethod
    def parse(cls, expression: str, timezone: str) -> CronSchedule:
        """Validate both parts; raise :class:`CronError`."""
        return cls(check_cron(expression), check_timezone(timezone))

    def next_after(self, moment: datetime) -> datetime:
        """The first slot strictly after ``moment`` (an aware datetime), in UTC."""
        walk = croniter(self.expression, self._wall(moment) - _SHIFT_MARGIN)
        while True:
            slot = self._instant(walk.get_next(datetime))
            if slot > moment:
                return slot

    def last_at_or_before(self, moment: datetime) -> datetime:
        """The latest slot at or before ``moment``, in UTC."""
        walk = croniter(self.expression, self._wall(moment) + _SHIFT_MARGIN)
        while True:
            slot = self._instant(walk.get_prev(datetime))
            if slot <= moment:
                return slot

    def slots(self, after: datetime, until: datetime, limit: int) -> list[datetime]:
        """Slots in ``(after, until]``, oldest first, at most ``limit`` of them."""
        found: list[datetime] = []
        slot = self.next_after(after)
        while slot <= until and len(found) < limit:
            found.append(slot)
            slot = self.next_after(slot)
        return found

    def _wall(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone).replace(tzinfo=None)

    def _instant(self, wall: datetime) -> datetime:
        """The UTC instant of a naive wall time: its first occurrence, or the end of the gap it fell in."""
        for _ in range(_MAX_GAP_MINUTES):
            instant = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
            if self._wall(instant) == wall:
                return instant
            wall += timedelta(minutes=1)
        raise CronError(f"no existing wall time within a day of {wall} in {self.zone.key}")
