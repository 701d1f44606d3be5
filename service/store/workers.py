"""Repository of ``hps_workers``: who claimed work, from which device, when last seen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, union
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from hps.server.store.models import TrialRow, WorkerRow


class WorkerRepository:
    """``hps_workers`` within one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def seen(self, worker_id: str, device: str, tasks: Sequence[str], now: datetime, claimed: bool) -> None:
        """Record that the worker asked for work (and got a trial, if ``claimed``)."""
        dialect = postgresql if self.session.get_bind().dialect.name == "postgresql" else sqlite
        statement = dialect.insert(WorkerRow).values(
            id=worker_id,
            device=device,
            tasks=list(tasks),
            first_seen_at=now,
            last_seen_at=now,
            trials_claimed=int(claimed),
        )
        self.session.execute(
            statement.on_conflict_do_update(
                index_elements=[WorkerRow.id],
                set_={
                    "device": device,
                    "tasks": list(tasks),
                    "last_seen_at": now,
                    "trials_claimed": WorkerRow.trials_claimed + int(claimed),
                },
            )
        )

    def active(self, since: datetime, now: datetime) -> set[str]:
        """The workers that were handed a trial at or after ``since`` or hold a lease that is still live
        at ``now``. A worker does not claim while it trains, so a long trial would hide it from the
        claims alone; its live lease (kept up by heartbeats) shows it is there."""
        claiming = select(WorkerRow.id.label("worker")).where(WorkerRow.last_seen_at >= since)
        leasing = select(TrialRow.worker_id.label("worker")).where(
            TrialRow.state == "running", TrialRow.lease_expires_at >= now, TrialRow.worker_id.is_not(None)
        )
        return {str(worker) for worker in self.session.execute(union(claiming, leasing)).scalars()}
