"""A study's plan: its spec, validated and normalized, with its compiled search space — made once.

At creation the plan comes straight from the request's checks (``studies.compile_study``); afterwards each
process reads a study's stored spec into a plan the first time it needs one and keeps it, because a stored
spec never changes (and study ids are never reused, so an id always means the same spec). Everything after
creation passes plans around, never the stored JSON.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hps.search_spaces import CompiledSpace, compile_space
from hps.wire.studies import StudySpec

_MAX_PLANS = 4096


@dataclass(frozen=True)
class StudyPlan:
    """What a study searches and how, typed: the normalized spec and its compiled search space."""

    spec: StudySpec
    space: CompiledSpace

    @classmethod
    def of(cls, spec: StudySpec) -> StudyPlan:
        """The plan of a normalized spec (compiles its space)."""
        return cls(spec, compile_space(spec.search_space))


class UnreadableSpec(Exception):
    """A stored spec that no longer validates (written by hand, or by an incompatible version)."""

    def __init__(self, study_id: int, cause: Exception) -> None:
        super().__init__(f"its stored spec does not validate: {type(cause).__name__}: {cause}"[:400])
        self.study_id = study_id


class Plans:
    """The plans this process has read, by study id (thread safe, bounded, least recently used dropped)."""

    def __init__(self, size: int = _MAX_PLANS) -> None:
        self._size = size
        self._plans: OrderedDict[int, StudyPlan] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, study_id: int, stored: Mapping[str, Any]) -> StudyPlan:
        """The plan of a study whose stored spec is ``stored``; :class:`UnreadableSpec` if it is not one."""
        with self._lock:
            plan = self._plans.get(study_id)
            if plan is not None:
                self._plans.move_to_end(study_id)
                return plan
        try:
            plan = StudyPlan.of(StudySpec.model_validate(stored))
        except ValueError as exc:  # pydantic's ValidationError and the search space's errors alike
            raise UnreadableSpec(study_id, exc) from exc
        self.remember(study_id, plan)
        return plan

    def remember(self, study_id: int, plan: StudyPlan) -> None:
        """Keep a plan made at creation, so the process never reads it back."""
        with self._lock:
            self._plans[study_id] = plan
            self._plans.move_to_end(study_id)
            while len(self._plans) > self._size:
                self._plans.popitem(last=False)

    def forget(self, study_id: int) -> None:
        """Drop a deleted study's plan."""
        with self._lock:
            self._plans.pop(study_id, None)
