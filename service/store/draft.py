"""An Optuna storage for sampling (or pruning) one trial in memory, so that the ask (or report) can be
written in one transaction.

Optuna's samplers talk to a storage while they sample: they read the study's trials and write the new
trial's params and system attrs one call at a time, each its own transaction. hps instead samples against
a :class:`DraftStorage`: reads pass through to the process's shared (cached) Optuna storage, and every
write about the trial being drafted stays in memory. The caller then writes the finished draft, the
lease and the budget check in one transaction. Pruners write too (successive halving and Hyperband record
each rung a trial completes as a system attr); pruning a running trial against a draft of it keeps those
writes in the report's transaction as well. Nothing is half-written if the process dies mid-ask, and
the ask costs a handful of statements instead of dozens.

Contract: one draft at a time per instance (the caller holds a lock); a sampler that writes anything but
the drafted trial's params and attrs, or study system attrs, gets ``NotImplementedError`` — a loud
failure, because silently dropping such a write would change the sampler's behaviour.
"""

from __future__ import annotations

import copy
from collections.abc import Container, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.study._frozen import FrozenStudy
from optuna.trial import FrozenTrial, TrialState

NEW_TRIAL_ID = -1


@dataclass
class Draft:
    """A trial being sampled: everything the ask transaction must write."""

    study_id: int
    number: int
    trial_id: int
    datetime_start: datetime
    params: dict[str, Any] = field(default_factory=dict)
    distributions: dict[str, BaseDistribution] = field(default_factory=dict)
    system_attrs: dict[str, Any] = field(default_factory=dict)
    user_attrs: dict[str, Any] = field(default_factory=dict)
    intermediate_values: dict[int, float] = field(default_factory=dict)
    study_system_attrs: dict[str, Any] = field(default_factory=dict)
    new_system_attr_keys: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, trial: FrozenTrial, study_id: int) -> Draft:
        """A draft of an existing running trial, e.g. to prune it."""
        return cls(
            study_id=study_id,
            number=trial.number,
            trial_id=trial._trial_id,
            datetime_start=trial.datetime_start or datetime.now(),
            params=dict(trial.params),
            distributions=dict(trial.distributions),
            system_attrs=copy.deepcopy(trial.system_attrs),
            user_attrs=copy.deepcopy(trial.user_attrs),
            intermediate_values=dict(trial.intermediate_values),
        )

    @property
    def is_new(self) -> bool:
        """True for a freshly numbered trial, False for a queued (WAITING) one being started."""
        return self.trial_id == NEW_TRIAL_ID

    def frozen(self) -> FrozenTrial:
        """The draft as Optuna's samplers expect to see a RUNNING trial."""
        return FrozenTrial(
            number=self.number,
            state=TrialState.RUNNING,
            value=None,
            values=None,
            datetime_start=self.datetime_start,
            datetime_complete=None,
            params=dict(self.params),
            distributions=dict(self.distributions),
            user_attrs=copy.deepcopy(self.user_attrs),
            system_attrs=copy.deepcopy(self.system_attrs),
            intermediate_values=dict(self.intermediate_values),
            trial_id=self.trial_id,
        )


class DraftStorage(BaseStorage):
    """Reads from ``backend``; buffers the writes of the one trial drafted at a time."""

    def __init__(self, backend: BaseStorage) -> None:
        self._backend = backend
        self._draft: Draft | None = None
        self._snapshot: list[FrozenTrial] | None = None

    def begin(self, draft: Draft) -> None:
        """Start drafting; the study's other trials are read once, on first use, for this draft."""
        self._draft = draft
        self._snapshot = None

    def finish(self) -> Draft:
        """Stop drafting and hand back everything the sampler wrote."""
        draft = self._require_draft()
        self._draft = None
        self._snapshot = None
        return draft

    def _require_draft(self, trial_id: int | None = None) -> Draft:
        draft = self._draft
        if draft is None or (trial_id is not None and trial_id != draft.trial_id):
            raise NotImplementedError(
                "hps samples one trial at a time; a sampler wrote to a trial it was not sampling"
            )
        return draft

    # Reads: the study and its other trials come from the shared storage.

    def get_study_id_from_name(self, study_name: str) -> int:
        return self._backend.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        return self._backend.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        return self._backend.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        return self._backend.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        attrs = self._backend.get_study_system_attrs(study_id)
        if self._draft is not None:
            attrs.update(self._draft.study_system_attrs)
        return attrs

    def get_all_studies(self) -> list[FrozenStudy]:
        return self._backend.get_all_studies()

    def get_trial(self, trial_id: int) -> FrozenTrial:
        if self._draft is not None and trial_id == self._draft.trial_id:
            return self._draft.frozen()
        return self._backend.get_trial(trial_id)

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        if self._draft is not None and trial_number == self._draft.number:
            return self._draft.trial_id
        return self._backend.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        draft = self._draft
        if draft is None or draft.study_id != study_id:
            return self._backend.get_all_trials(study_id, deepcopy=deepcopy, states=states)
        if self._snapshot is None:
            others = self._backend.get_all_trials(study_id, deepcopy=False)
            self._snapshot = [t for t in others if t.number != draft.number]
        trials = [*self._snapshot, draft.frozen()]
        if states is not None:
            trials = [t for t in trials if t.state in states]
        return copy.deepcopy(trials) if deepcopy else trials

    # Writes about the drafted trial, and study system attrs, stay in the draft.

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        draft = self._require_draft(trial_id)
        draft.params[param_name] = distribution.to_external_repr(param_value_internal)
        draft.distributions[param_name] = distribution

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        draft = self._require_draft(trial_id)
        draft.system_attrs[key] = value
        draft.new_system_attr_keys.add(key)

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        self._require_draft(trial_id).user_attrs[key] = value

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        self._require_draft().study_system_attrs[key] = value

    # Everything else is the store's business, not a sampler's.

    def create_new_study(self, directions: Sequence[StudyDirection], study_name: str | None = None) -> int:
        raise NotImplementedError("studies are created by hps's store")

    def delete_study(self, study_id: int) -> None:
        raise NotImplementedError("studies are deleted by hps's store")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        raise NotImplementedError("study user attrs are not written while sampling")

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        raise NotImplementedError("trials are created by hps's store")

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        raise NotImplementedError("trial states are written by hps's store")

    def set_trial_intermediate_value(self, trial_id: int, step: int, intermediate_value: float) -> None:
        raise NotImplementedError("intermediate values are written by hps's store")
