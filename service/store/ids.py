"""Ids that are never handed out twice, on SQLite too.

PostgreSQL's sequences never go back. SQLite gives a new row the highest rowid plus one, so deleting the
newest study would hand its id, and its trials' ids, to the next study: a client still holding the old
ids would then write into the new study. Optuna's ``studies`` and ``trials`` tables are Optuna's to
define, so hps keeps, per kind, the highest id it ever handed out (``hps_id_watermarks``) and, on
SQLite, gives new rows ids above it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from hps.server.store.models import IdWatermarkRow


class IdWatermarks:
    """Allocation of study and trial ids in Optuna's tables, within one unit of work (which holds SQLite's
    write lock, so two allocations never race)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.active = session.get_bind().dialect.name == "sqlite"

    def next_id(self, kind: str, column: Any) -> int | None:
        """The id for a new row of ``kind`` whose id is ``column``; None where the database's own
        sequence never reuses ids (PostgreSQL)."""
        if not self.active:
            return None
        highest = self.session.execute(select(func.max(column))).scalar() or 0
        return max(int(highest), self._mark(kind)) + 1

    def keep(self, kind: str, column: Any) -> None:
        """Remember the highest id of ``kind`` in use now, before rows of it are deleted."""
        if not self.active:
            return
        highest = int(self.session.execute(select(func.max(column))).scalar() or 0)
        if highest <= self._mark(kind):
            return
        model = IdWatermarkRow
        changed = self.session.execute(update(model).where(model.kind == kind).values(last_id=highest))
        if getattr(changed, "rowcount", 0) == 0:
            self.session.add(IdWatermarkRow(kind=kind, last_id=highest))
            self.session.flush()

    def _mark(self, kind: str) -> int:
        query = select(IdWatermarkRow.last_id).where(IdWatermarkRow.kind == kind)
        return int(self.session.execute(query).scalar() or 0)
