"""Which studies a caller may see. A study of another project does not exist for them: every route
answers 404, never 403, so not even its existence leaks."""

from __future__ import annotations

from sqlalchemy.orm import Session

from hps.server.errors import StudyNotFound
from hps.server.store.studies import StudyRecord, StudyRepository


def require_study(session: Session, study_id: int, project: str | None, *, lock: bool = False) -> StudyRecord:
    """The study, if it exists and ``project`` (None: every project) may see it; locked for this
    unit of work when ``lock`` (see ``StudyRepository.lock``)."""
    studies = StudyRepository(session)
    record = studies.lock(study_id) if lock else studies.get(study_id)
    if record is None or (project is not None and record.project != project):
        raise StudyNotFound(study_id)
    return record
