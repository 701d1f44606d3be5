"""Per-process Optuna state: one shared cached storage, and for each study its sampler, pruner and
compiled search space.

Samplers are kept per study per process (a sampler rebuilt on every request would forget its state and,
if seeded, repeat itself). Each study's runtime has a lock: sampling and pruning of one study are
serialised within the process, and the database's study lock serialises them across processes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import optuna
from optuna.exceptions import StorageInternalError
from optuna.storages import BaseStorage, RDBStorage
from sqlalchemy.exc import SQLAlchemyError

from hps.search_spaces import CompiledSpace, ParamValue
from hps.server.errors import StudySampledByClient
from hps.server.plans import Plans, StudyPlan, UnreadableSpec
from hps.server.store.draft import Draft, DraftStorage
from hps.server.store.optuna_storage import is_storage_study
from hps.server.store.studies import StudyRecord
from hps.server.strategies import build_pruner, build_sampler, reseed_for_trial

_MAX_CACHED_STUDIES = 256
_MAX_REASON = 400
T = TypeVar("T")


class OptunaFailed(Exception):
    """Optuna failed on a study's own settings while building its sampler or pruner, sampling or pruning.
    Not the database's failure, nor the request's: the study cannot go on, and the caller ends it as
    failed (``hps.server.trials.fail_broken_study``) so that it stops taking every ask and claim down."""

    def __init__(self, study_id: int, stage: str, cause: BaseException) -> None:
        detail = f"{type(cause).__name__}: {cause}"
        super().__init__(f"Optuna failed while {stage}: {detail}"[:_MAX_REASON])
        self.study_id = study_id
        self.reason = str(self.args[0])


def _guarded(study_id: int, stage: str, action: Callable[[], T]) -> T:
    """Run ``action``; every failure but the database's becomes :class:`OptunaFailed`."""
    try:
        return action()
    except (SQLAlchemyError, StorageInternalError):
        raise
    except Exception as exc:
        raise OptunaFailed(study_id, stage, exc) from exc


class StudyRuntime:
    """The Optuna objects of one study in this process."""

    def __init__(self, study_id: int, study_name: str, plan: StudyPlan, storage: BaseStorage) -> None:
        self.study_id = study_id
        self.plan = plan
        self.space: CompiledSpace = plan.space
        self.sampler = build_sampler(plan.spec.sampler, self.space)
        self.pruner = build_pruner(plan.spec.pruner)
        self.lock = threading.Lock()
        self._drafts = DraftStorage(storage)
        self._sampling_study = optuna.Study(
            study_name=study_name, storage=self._drafts, sampler=self.sampler, pruner=self.pruner
        )
        self._reading_study = optuna.Study(
            study_name=study_name, storage=storage, sampler=self.sampler, pruner=self.pruner
        )

    def sample(self, draft: Draft) -> tuple[Draft, dict[str, ParamValue]]:
        """Sample the draft's params define-by-run (fixed params of a queued trial are kept) and
        return the completed draft with the params as hps shows them."""
        with self.lock:
            self._drafts.begin(draft)
            try:
                if self.plan.spec.sampler.seed is not None:
                    reseed_for_trial(self.sampler, self.plan.spec.sampler.seed, draft.number)
                trial = optuna.trial.Trial(self._sampling_study, draft.trial_id)
                params = _guarded(self.study_id, "sampling", lambda: self.space.suggest(trial))
            finally:
                sampled = self._drafts.finish()
        return sampled, params

    def draft_of(self, number: int, study_id: int) -> Draft | None:
        """A draft of running trial ``number`` as committed (None if this process cannot see it)."""
        trials = self._reading_study.get_trials(deepcopy=False)
        current = next((t for t in trials if t.number == number), None)
        return None if current is None else Draft.of(current, study_id)

    def prune(self, draft: Draft) -> tuple[bool, Draft]:
        """Ask the study's pruner about the drafted running trial (its newest point included). Returns
        the answer and the draft with whatever the pruner recorded on the trial (rungs reached)."""
        with self.lock:
            self._drafts.begin(draft)
            try:
                frozen = draft.frozen()
                answer = _guarded(
                    self.study_id, "pruning", lambda: bool(self.pruner.prune(self._sampling_study, frozen))
                )
            finally:
                pruned = self._drafts.finish()
        return answer, pruned


class Sampling:
    """The process-wide caches of study plans and runtimes over one shared Optuna storage."""

    def __init__(self, url: str, engine_kwargs: dict[str, Any] | None = None) -> None:
        backend = RDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=True)
        self._backend = backend
        self.storage: BaseStorage = optuna.storages.get_storage(backend)
        self.plans = Plans()
        self._runtimes: OrderedDict[int, StudyRuntime] = OrderedDict()
        self._lock = threading.Lock()

    def plan(self, study: StudyRecord) -> StudyPlan:
        """The study's plan (its stored spec read once per process); a spec that no longer validates makes
        the study broken (:class:`OptunaFailed`), like any other failure on its own settings. A study an
        Optuna client made has no spec to sample from: :class:`StudySampledByClient` (409)."""
        if is_storage_study(study):
            raise StudySampledByClient(study.id)
        try:
            return self.plans.of(study.id, study.spec, study.lr_ranges)
        except UnreadableSpec as exc:
            raise OptunaFailed(study.id, "reading its stored spec", exc) from exc

    def runtime(self, study: StudyRecord) -> StudyRuntime:
        """The study's runtime, built on first use and kept (least recently used evicted)."""
        plan = self.plan(study)
        with self._lock:
            runtime = self._runtimes.get(study.id)
            # A runtime built before the study's range tests chose its lr ranges searched the old space.
            if runtime is not None and runtime.plan.lr_ranges == plan.lr_ranges:
                self._runtimes.move_to_end(study.id)
                return runtime
        built = _guarded(
            study.id,
            "building the sampler and pruner",
            lambda: StudyRuntime(study.id, study.optuna_name, plan, self.storage),
        )
        study_id = study.id
        with self._lock:
            runtime = self._runtimes.get(study_id)
            if runtime is None or runtime.plan.lr_ranges != plan.lr_ranges:
                runtime = self._runtimes[study_id] = built
            self._runtimes.move_to_end(study_id)
            while len(self._runtimes) > _MAX_CACHED_STUDIES:
                self._runtimes.popitem(last=False)
        return runtime

    def forget(self, study_id: int, *, deleted: bool = False) -> None:
        """Drop a study's sampler and pruner once it has ended (and its plan too once it is deleted): only
        running studies sample and prune. Ids are never reused, so nothing else needs dropping."""
        with self._lock:
            self._runtimes.pop(study_id, None)
        if deleted:
            self.plans.forget(study_id)

    def close(self) -> None:
        """Release the shared storage's connections."""
        self._backend.engine.dispose()
