"""Parameter importances of a study with Optuna's default method (fANOVA), over the whole study and
within each optimizer, with a note for a person wherever they cannot be computed.

Optuna's ``get_param_importances`` looks only at parameters that every complete trial has, so in a
conditional space (momentum for SGD, betas for Adam) it silently leaves most of them out; computing it
again within each optimizer's trials covers them. It also answers nonsense for a single trial (equal
shares) and raises when every trial scored the same; both become notes here, never errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import optuna
from optuna.storages import InMemoryStorage
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from hps.wire.reports import Importances, OptimizerImportances, ParamImportance

# Below this, a random forest over the trials says more about the seed than about the parameters.
MIN_COMPLETE = 5
METHOD = "fanova"
OPTIMIZER = "optimizer"
# Fixed, so that the same trials always give the same report.
_SEED = 0


def param_importances(
    trials: Sequence[FrozenTrial], direction: str, names: Mapping[str, str] | None = None
) -> Importances:
    """Importances over the complete ``trials`` of a study (Optuna's own trials, as its storage holds
    them); ``names`` maps Optuna's parameter names to hps's where they differ (``1-beta2`` → ``beta2``)."""
    complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    rename = dict(names or {})
    notes: list[str] = []
    overall = _importances(complete, direction, _shared_params(complete), rename, notes, "")
    conditional = sorted({rename.get(p, p) for t in complete for p in t.params} - {i.param for i in overall})
    if overall and conditional:
        notes.append(
            f"{', '.join(conditional)} exist only for some trials (conditional parameters), so the "
            "overall importances leave them out; see the importances within each optimizer."
        )
    return Importances(
        method=METHOD,
        complete=len(complete),
        params=overall,
        by_optimizer=_by_optimizer(complete, direction, rename, notes),
        notes=notes,
    )


def _by_optimizer(
    complete: list[FrozenTrial], direction: str, rename: dict[str, str], notes: list[str]
) -> list[OptimizerImportances]:
    groups: dict[str, list[FrozenTrial]] = {}
    for trial in complete:
        if OPTIMIZER in trial.params:
            groups.setdefault(str(trial.params[OPTIMIZER]), []).append(trial)
    found = []
    for name, group in sorted(groups.items()):
        params = [p for p in _shared_params(group) if p != OPTIMIZER]
        if not params:
            continue
        scores = _importances(group, direction, params, rename, notes, f"{name}: ")
        if scores:
            found.append(OptimizerImportances(optimizer=name, complete=len(group), params=scores))
    return found


def _importances(
    trials: list[FrozenTrial],
    direction: str,
    params: list[str],
    rename: dict[str, str],
    notes: list[str],
    prefix: str,
) -> list[ParamImportance]:
    """Importances over ``trials`` and ``params``; on failure, a note (with ``prefix``) and nothing."""
    if len(trials) < MIN_COMPLETE:
        notes.append(
            f"{prefix}importances need at least {MIN_COMPLETE} complete trials; there "
            f"{'is' if len(trials) == 1 else 'are'} {len(trials)}."
        )
        return []
    if not params:
        notes.append(f"{prefix}no parameter is shared by every complete trial.")
        return []
    # Imported here: Optuna's fANOVA pulls in scikit-learn, over a second of every server's start otherwise.
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    try:
        study = _in_memory_study(trials, direction)
        scores = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=_SEED), params=params)
    except (ValueError, RuntimeError) as exc:
        # Optuna raises RuntimeError("zero total variance") when every trial scored the same.
        why = "every complete trial scored the same" if "variance" in str(exc) else str(exc)
        notes.append(f"{prefix}Optuna could not compute importances: {why}.")
        return []
    ranked = sorted(scores.items(), key=lambda item: (-item[1], item[0]))
    return [ParamImportance(param=rename.get(name, name), importance=float(score)) for name, score in ranked]


def _shared_params(trials: list[FrozenTrial]) -> list[str]:
    """Parameters every trial has, in the first trial's order (what Optuna would use by default)."""
    if not trials:
        return []
    shared = set(trials[0].params).intersection(*(t.params for t in trials[1:]))
    return [name for name in trials[0].params if name in shared]


def _in_memory_study(trials: list[FrozenTrial], direction: str) -> optuna.Study:
    """A throwaway study holding copies of ``trials``: importances can then be computed over any subset
    (one optimizer's trials) without touching the real study. Built directly rather than with
    ``optuna.create_study``, which logs a line on every call."""
    storage = InMemoryStorage()
    wanted = StudyDirection.MAXIMIZE if direction == "maximize" else StudyDirection.MINIMIZE
    storage.create_new_study(directions=[wanted], study_name="hps-report")
    study = optuna.Study(study_name="hps-report", storage=storage)
    study.add_trials(trials)
    return study
