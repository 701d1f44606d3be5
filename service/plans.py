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

from hps.search_spaces import CompiledSpace, SearchSpaceError, compile_space
from hps.wire.studies import StudySpec

_MAX_PLANS = 4096


LrRanges = Mapping[str, Any]
"""Optimizer → [low, high] of ``lr``, as a study's range tests chose them (``hps_studies.lr_ranges``)."""


@dataclass(frozen=True)
class StudyPlan:
    """What a study searches and how, typed: the normalized spec and its compiled search space (with each
    optimizer's own lr range, once range tests chose them; ``lr_ranges`` says which)."""

    spec: StudySpec
    space: CompiledSpace
    lr_ranges: LrRanges | None = None

    @classmethod
    def of(cls, spec: StudySpec, lr_ranges: LrRanges | None = None) -> StudyPlan:
        """The plan of a normalized spec (compiles its space) and the lr ranges its tests chose."""
        space = compile_space(spec.search_space)
        if lr_ranges:
            space = space.with_lr_ranges({name: (low, high) for name, (low, high) in lr_ranges.items()})
        return cls(spec, space, lr_ranges)


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

    def of(self, study_id: int, stored: Mapping[str, Any], lr_ranges: LrRanges | None = None) -> StudyPlan:
        """The plan of a study whose stored spec is ``stored`` and whose range tests chose ``lr_ranges``;
        :class:`UnreadableSpec` if it is not one. A kept plan made before the ranges were chosen is made
        again (the only change a study's plan ever sees)."""
        with self._lock:
            plan = self._plans.get(study_id)
            if plan is not None and plan.lr_ranges == lr_ranges:
                self._plans.move_to_end(study_id)
                return plan
        try:
            plan = StudyPlan.of(StudySpec.model_validate(stored), lr_ranges)
        except (ValueError, SearchSpaceError) as exc:  # pydantic's ValidationError and the space's errors
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
