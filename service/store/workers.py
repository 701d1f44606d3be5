"""Repository of ``hps_workers``: who claimed work, from which device, when last seen."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.store.models import WorkerRow


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

    def count_seen_since(self, since: datetime) -> int:
        """How many workers asked for work at or after ``since``."""
        query = select(func.count()).select_from(WorkerRow).where(WorkerRow.last_seen_at >= since)
        return int(self.session.execute(query).scalar_one())
