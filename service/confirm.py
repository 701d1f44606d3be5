"""Confirmation runs (``budget.confirm``): once the search has spent its trials, its best configurations are
run again with fresh seeds before the study completes.

One run's value is partly luck: the seed draws the new head's weights and the order of the data, and a
search that keeps the best of many runs keeps a lucky one (the winner's curse). So the ``top_k`` best
distinct configurations of the search are queued ``seeds`` times each; every run has its own trial number
and therefore its own seed, is never pruned, and names the search trial it confirms. The report ranks the
confirmed configurations by a confidence bound over their fresh runs alone (``hps.report.confirmed``).
"""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy.orm import Session

from hps.server.plans import StudyPlan
from hps.server.queue import enqueue_trial
from hps.server.store.studies import StudyRecord
from hps.server.store.trials import TrialRecord, TrialRepository


def enqueue_confirmations(session: Session, plan: StudyPlan, study: StudyRecord, now: datetime) -> bool:
    """In the locked study whose search has ended, queue its confirmation runs, once; True if it did (the
    study goes on), False when it has none to run (no ``confirm``, already queued, or nothing complete)."""
    confirm = plan.spec.budget.confirm
    trials = TrialRepository(session)
    if confirm is None or trials.has_confirmations(study.id):
        return False
    chosen = best_distinct(trials.top_complete(study.id, study.direction, plan.spec.n_trials), confirm.top_k)
    for trial in chosen:
        for _ in range(confirm.seeds):
            enqueue_trial(session, plan.space, study.id, trial.params, now, confirms=trial.number)
    return bool(chosen)


def best_distinct(ranked: list[TrialRecord], count: int) -> list[TrialRecord]:
    """The first ``count`` search trials of ``ranked`` (best first) with distinct params: a start tried
    twice, or a configuration the sampler repeated, is confirmed once."""
    seen: set[str] = set()
    chosen = []
    for trial in ranked:
        key = json.dumps(trial.params, sort_keys=True)
        if trial.confirms is not None or key in seen:
            continue
        seen.add(key)
        chosen.append(trial)
        if len(chosen) == count:
            break
    return chosen
