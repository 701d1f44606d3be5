"""Warm starts: seed a new study with the best configurations of an earlier one.

The source's best complete trials are fitted to the new study's search space, which may have changed
since: a number outside its range is clipped to the bounds (and snapped to the step), a categorical value
no longer among the choices is dropped, and so is a parameter that is gone or whose condition no longer
holds. A configuration that then lacks a parameter the space requires is not seeded: hps queues complete
configurations only. Every adjustment is said in the study's ``warm_start`` section.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from hps.search_spaces import CategoricalParam, CompiledSpace, IntParam, Param, ParamsMismatch, ParamValue
from hps.server.store.schedules import ScheduleRepository
from hps.server.store.studies import StudyRecord, StudyRepository
from hps.server.store.trials import TrialRepository

PREVIOUS = "previous"
# Complete trials read beyond top_k, so that duplicates (a start tried twice) do not shrink the seed.
_EXTRA_READ = 4


@dataclass(frozen=True)
class WarmStart:
    """What to queue first in a new study, and what the study shows about it (``info``)."""

    seeds: list[dict[str, ParamValue]] = field(default_factory=list)
    seeded_from: int | None = None
    info: dict[str, Any] | None = None


def fit_config(
    space: CompiledSpace, params: Mapping[str, Any]
) -> tuple[dict[str, ParamValue] | None, list[str]]:
    """``params`` fitted to ``space`` and what was changed; None when a required parameter is missing."""
    notes = [
        f"dropped {name}: not a parameter of this search space" for name in params if name not in space.params
    ]
    fitted: dict[str, ParamValue] = {}
    for name, param in space.params.items():
        condition = space.conditions[name]
        active = all(parent in fitted and fitted[parent] in allowed for parent, allowed in condition.items())
        if not active:
            if name in params:
                notes.append(f"dropped {name}: its condition ({_describe(condition)}) no longer holds")
            continue
        if name not in params:
            notes.append(f"not seeded: {name} is required here and the source has no value for it")
            return None, notes
        value, note = _fit_value(name, param, params[name])
        if note:
            notes.append(note)
        if value is None:
            notes.append(f"not seeded: {name} is required here and its value was dropped")
            return None, notes
        fitted[name] = value
    try:
        space.encode(fitted)
    except ParamsMismatch as exc:  # a rule this module does not know; never seed what cannot run
        notes.append(f"not seeded: {exc}")
        return None, notes
    return fitted, notes


def _describe(condition: Mapping[str, tuple[ParamValue, ...]]) -> str:
    return " and ".join(f"{parent} in {list(allowed)!r}" for parent, allowed in condition.items())


def _fit_value(name: str, param: Param, value: Any) -> tuple[ParamValue | None, str | None]:
    if isinstance(param, CategoricalParam):
        if value in param.choices:
            return value, None
        return None, f"dropped {name}={value!r}: not among the choices {param.choices!r}"
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None, f"dropped {name}={value!r}: not a finite number"
    if isinstance(param, IntParam):
        steps = round((value - param.low) / param.step)
        fitted_int = min(max(param.low + steps * param.step, param.low), param.high)
        return fitted_int, None if fitted_int == value else f"clipped {name} from {value!r} to {fitted_int}"
    fitted = float(min(max(value, param.low), param.high))
    if param.step is not None:
        fitted = min(param.low + round((fitted - param.low) / param.step) * param.step, param.high)
    return fitted, None if fitted == value else f"clipped {name} from {value!r} to {fitted!r}"


def plan_warm_start(
    session: Session,
    *,
    schedule_id: int,
    project: str,
    source: str,
    top_k: int,
    space: CompiledSpace,
    metric: str,
    limit: int,
) -> WarmStart:
    """The seeds for a run of ``schedule_id``: the best ``top_k`` complete configurations of the study
    ``source`` names (``previous``: the schedule's last run that started one), fitted to ``space``, at
    most ``limit`` (the new study's budget)."""
    info: dict[str, Any] = {
        "from": source,
        "top_k": top_k,
        "seeded_from": None,
        "seeded_from_name": None,
        "configs": [],
        "adjustments": [],
        "note": None,
    }
    study, missing = _source_study(session, schedule_id, project, source)
    if study is None:
        info["note"] = f"{missing}; nothing seeded"
        return WarmStart(info=info)
    info["seeded_from"], info["seeded_from_name"] = study.id, study.name
    adjustments: list[str] = info["adjustments"]
    if study.metric != metric:
        adjustments.append(f"the source measured {study.metric}, this study {metric}; ranked by the source's")
    seeds: list[dict[str, ParamValue]] = []
    seen: list[dict[str, Any]] = []
    for trial in TrialRepository(session).top_complete(study.id, study.direction, top_k * _EXTRA_READ):
        if trial.params in seen:
            continue
        seen.append(trial.params)
        if len(seen) > top_k:
            break
        fitted, notes = fit_config(space, trial.params)
        adjustments.extend(f"trial {trial.number}: {note}" for note in notes)
        if fitted is None:
            continue
        if fitted in seeds:
            adjustments.append(f"trial {trial.number}: not seeded: the same as an earlier seed once fitted")
            continue
        if len(seeds) == limit:
            adjustments.append(f"trial {trial.number}: not seeded: the budget (n_trials {limit}) is full")
            continue
        info["configs"].append(
            {
                "trial_number": len(seeds),
                "source_trial": trial.number,
                "source_value": trial.value,
                "params": fitted,
            }
        )
        seeds.append(fitted)
    if not seen:
        info["note"] = f"study {study.name} has no complete trial; nothing seeded"
    return WarmStart(seeds=seeds, seeded_from=study.id, info=info)


def _source_study(
    session: Session, schedule_id: int, project: str, source: str
) -> tuple[StudyRecord | None, str]:
    """The source study, or None and why there is none."""
    studies = StudyRepository(session)
    if source == PREVIOUS:
        run = ScheduleRepository(session).last_started_run(schedule_id)
        if run is None or run.study_id is None:
            return None, "no earlier run of this schedule started a study"
        study = studies.get(run.study_id)
        return study, f"the previous run's study {run.study_name} was deleted"
    found = studies.get_by_name(source, project)
    if found is None:
        return None, f"no study named {source!r} in this project"
    return found, ""
