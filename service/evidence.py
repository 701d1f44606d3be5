"""Reading what a study report is built from: the study, every trial with its learning curve, and the
parameter importances Optuna computes over the same trials. ``hps.report.build`` turns it into the report.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

from optuna.trial import FrozenTrial, TrialState
from pydantic import ValidationError
from sqlalchemy.orm import Session

from hps.search_spaces import SearchSpaceError, compile_space
from hps.server.access import require_study
from hps.server.errors import StudyNotFound
from hps.server.importance import param_importances
from hps.server.optuna_storage import storage_trial_views
from hps.server.sampling import Sampling
from hps.server.store.database import Database
from hps.server.store.optuna_storage import is_storage_study
from hps.server.store.range_tests import RangeTestRecord, RangeTestRepository
from hps.server.store.trials import TrialRepository
from hps.server.views import StudyView, TrialView, study_views, trial_views
from hps.wire.reports import Importances
from hps.wire.studies import StudySpec

# Trials are read a page at a time, so one huge study never needs one huge query.
_PAGE = 1000


@dataclass(frozen=True, slots=True)
class Evidence:
    """A study, all its trials in number order, and its parameter importances."""

    study: StudyView
    trials: list[TrialView]
    importances: Importances
    range_tests: list[RangeTestRecord]


def gather_evidence(
    db: Database, sampling: Sampling, study_id: int, *, project: str | None = None
) -> Evidence:
    """Everything a report of the study needs, or ``StudyNotFound`` (also for another project's study)."""

    def work(session: Session) -> tuple[StudyView, list[TrialView], list[RangeTestRecord]]:
        record = require_study(session, study_id, project)
        repository = TrialRepository(session)
        records, after = [], None
        while True:
            page = repository.page(study_id, state=None, limit=_PAGE, after_number=after)
            records.extend(page)
            if len(page) < _PAGE:
                break
            after = page[-1].number
        tests = RangeTestRepository(session).of_study(study_id)
        return study_views(session, [record])[0], trial_views(session, records), tests

    study, trials, tests = db.run(work, write=False)
    # hps study ids are Optuna's study ids: both rows are written in one transaction.
    try:
        frozen = sampling.storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.COMPLETE,))
        if is_storage_study(study.record):
            # Made by an Optuna client: its trials are Optuna's rows only.
            trials = storage_trial_views(sampling.storage.get_all_trials(study_id, deepcopy=False), study_id)
            if len(study.record.spec.get("directions", ())) > 1:
                frozen = []  # importances rank params for one objective
    except KeyError:  # deleted since it was read above
        raise StudyNotFound(study_id) from None
    importances = param_importances(
        [_metric_only(trial) for trial in frozen], study.record.direction, _optuna_names(study.record.spec)
    )
    return Evidence(study=study, trials=trials, importances=importances, range_tests=tests)


def _metric_only(trial: FrozenTrial) -> FrozenTrial:
    """A cost-aware study's trial as importances see it: the metric (its first objective) alone, so that
    they say what drives the metric, as in any other study."""
    if trial.values is None or len(trial.values) < 2:
        return trial
    copied = copy.copy(trial)
    copied.values = [trial.values[0]]
    return copied


def _optuna_names(spec: dict[str, object]) -> dict[str, str]:
    """Optuna's name → hps's name, for the parameters whose names differ (reverse_log floats)."""
    try:
        compiled = compile_space(StudySpec.model_validate(spec).search_space)
    except (SearchSpaceError, ValidationError):
        return {}  # a stored spec that no longer compiles still gets a report, with Optuna's names
    return {compiled.optuna_name(name): name for name in compiled.params}
