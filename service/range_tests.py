"""Learning-rate range tests: before a study with ``lr_range_test`` samples anything, one short run per
optimizer of its search space, its lr growing exponentially over the space's ``lr`` range, tells the service
where that optimizer's rates train at all; the sampler then searches each optimizer's own range.

Lifecycle of a test (one ``hps_lr_range_tests`` row): ``queued`` when the study is created → ``running``
under a lease when a worker that runs range tests claims it (``claims.py``) → ``complete`` with its loss
curve and the range read off it (``search_spaces.lr_range.narrow_lr_range``), or ``failed`` (an
infrastructure failure or an expired lease is retried while ``budget.max_retries`` allows; after that, and
after any other failure, the optimizer keeps the whole range). Once every test has ended, one transaction
writes the study's ``lr_ranges``, fits the lr of its queued starts to them, and from then on the study
samples: until then an ask answers 409 ``range_test_pending``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from hps.catalog.trial_params import CLOSURE, TRAINING_PARAMS
from hps.search_spaces import (
    CategoricalParam,
    CompiledSpace,
    FloatParam,
    IntParam,
    Param,
    ParamValue,
    SearchSpaceError,
)
from hps.search_spaces.lr_range import RangeTestPoint, narrow_lr_range
from hps.server.access import require_study
from hps.server.clock import utcnow
from hps.server.errors import DomainError, InvalidInput, RangeTestLeaseLost, RangeTestNotFound
from hps.server.plans import StudyPlan
from hps.server.sampling import Sampling
from hps.server.store.database import Database
from hps.server.store.range_tests import ENDED_STATES, RangeTestRecord, RangeTestRepository
from hps.server.store.studies import StudyRecord, StudyRepository
from hps.server.store.trials import TrialRepository
from hps.server.trials import must_stop, should_retry
from hps.wire.range_tests import RangeTestCompletion
from hps.wire.reasons import ReasonCode, reason, reason_code
from hps.wire.studies import GridSampler, StudySpec

log = logging.getLogger(__name__)

LR, OPTIMIZER = "lr", "optimizer"
_BATCH = 100


def check_range_test(spec: StudySpec, space: CompiledSpace) -> None:
    """Raise :class:`InvalidInput` unless the study can run lr range tests: a task to train, a sampler that
    samples (not a grid), and a search space with a log-scale ``lr`` and a categorical ``optimizer``."""
    if spec.lr_range_test is None:
        return
    if spec.task is None:
        raise InvalidInput(
            "an lr range test trains the study's task, and this study names none (task)",
            field="lr_range_test",
        )
    if isinstance(spec.sampler, GridSampler):
        raise InvalidInput(
            "a grid tries fixed points, so a narrowed lr range would change nothing; drop lr_range_test "
            "or choose a sampler that samples",
            field="lr_range_test",
        )
    lr = space.params.get(LR)
    try:
        if not isinstance(lr, FloatParam):
            raise SearchSpaceError("params.lr", "lr: an lr range test needs a float lr on a log scale")
        space.with_lr_ranges({choice: (lr.low, lr.high) for choice in _optimizers(space)})
    except SearchSpaceError as exc:
        raise InvalidInput(f"lr_range_test: {exc.message}", field=f"search_space.{exc.field}") from None


def plan_range_tests(plan: StudyPlan, study_id: int, now: datetime) -> list[RangeTestRecord]:
    """The queued tests of a new study with ``lr_range_test``: one per optimizer of its space (second-order
    ones excepted), over the space's whole ``lr`` range."""
    spec = plan.spec
    if spec.lr_range_test is None or spec.task is None:
        return []
    lr = plan.space.params[LR]
    assert isinstance(lr, FloatParam)  # check_range_test made sure
    batch_size = spec.lr_range_test.batch_size or spec.task.batch_size
    if batch_size is None:
        raise AssertionError("a normalized task spec has a batch size")
    return [
        RangeTestRecord(
            id=0,
            study_id=study_id,
            optimizer=optimizer,
            state="queued",
            attempt=1,
            params=range_test_params(plan.space, optimizer),
            low=lr.low,
            high=lr.high,
            steps=spec.lr_range_test.steps,
            batch_size=batch_size,
            points=[],
            stopped_early=None,
            chosen=None,
            epochs=None,
            wall_time_s=None,
            reason=None,
            worker_id=None,
            lease_expires_at=None,
            created_at=now,
            started_at=None,
            finished_at=None,
        )
        for optimizer in _optimizers(plan.space)
        # A range test steps with a growing lr and no closure: L-BFGS and Newton scale a step they compute
        # themselves (lr 1 is the whole step), so they keep the space's range untested.
        if optimizer not in CLOSURE
    ]


def range_test_params(space: CompiledSpace, optimizer: str) -> dict[str, ParamValue]:
    """The optimizer's other hyperparameters during its test: those of the space's first start with this
    optimizer, else each active param at its middle (a categorical's first choice; a log scale's geometric
    middle). Training params (batch size, epochs, schedule) and ``lr`` itself are the test's own."""
    start = next((dict(s) for s in space.space.starts or [] if s.get(OPTIMIZER) == optimizer), None)
    values: dict[str, ParamValue] = {OPTIMIZER: optimizer}
    for name, param in space.params.items():
        if name in values or name == LR or name in TRAINING_PARAMS:
            continue
        if not all(values.get(parent) in allowed for parent, allowed in space.conditions[name].items()):
            continue
        values[name] = start[name] if start is not None and name in start else _middle(param)
    return values


@dataclass(frozen=True, slots=True)
class StartedRangeTest:
    """A range test handed to a worker under a lease."""

    test: RangeTestRecord
    lease_expires_at: datetime


def awaiting_range_tests(plan: StudyPlan, study: StudyRecord) -> bool:
    """Whether the study still waits for its range tests before it samples."""
    return plan.spec.lr_range_test is not None and study.lr_ranges is None


def start_range_test(
    session: Session, plan: StudyPlan, study: StudyRecord, worker_id: str, now: datetime, lease: timedelta
) -> StartedRangeTest | None:
    """In the locked running study, hand out its first queued range test under a lease (None: none is
    queued, or ``max_parallel`` of them run)."""
    tests = RangeTestRepository(session).of_study(study.id, lock=True)
    running = sum(1 for test in tests if test.state == "running")
    limit = plan.spec.budget.max_parallel
    queued = next((test for test in tests if test.state == "queued"), None)
    if queued is None or (limit is not None and running >= limit):
        return None
    expires = now + lease
    changes: dict[str, Any] = {
        "state": "running",
        "worker_id": worker_id,
        "lease_expires_at": expires,
        "started_at": now,
    }
    RangeTestRepository(session).update(queued.id, **changes)
    return StartedRangeTest(_replace(queued, changes), expires)


def heartbeat_range_test(
    db: Database,
    study_id: int,
    optimizer: str,
    *,
    lease: timedelta,
    project: str | None = None,
    now: datetime | None = None,
) -> tuple[datetime, bool]:
    """Extend a running test's lease; returns the new expiry and whether the test should stop."""
    moment = now or utcnow()

    def work(session: Session) -> tuple[datetime, bool]:
        study = require_study(session, study_id, project)
        test = _running_test(session, study_id, optimizer)
        expires = moment + lease
        RangeTestRepository(session).update(test.id, lease_expires_at=expires)
        return expires, must_stop(study, moment)

    return db.run(work, write=True)


def complete_range_test(
    db: Database,
    sampling: Sampling,
    study_id: int,
    optimizer: str,
    completion: RangeTestCompletion,
    *,
    project: str | None = None,
    now: datetime | None = None,
) -> RangeTestRecord:
    """Record how a running test ended: its curve and the range read off it, or its failure (retried if
    retryable); once every test of the study has ended, the study samples in the ranges they chose."""
    moment = now or utcnow()

    def work(session: Session) -> RangeTestRecord:
        study = require_study(session, study_id, project, lock=True)
        test = _running_test(session, study_id, optimizer)
        plan = sampling.plan(study)
        ended = _finish(session, plan, test, completion, moment)
        settle_range_tests(session, plan, study, moment)
        return ended

    return db.run(work, write=True)


def list_range_tests(
    db: Database, study_id: int, *, project: str | None = None
) -> tuple[list[RangeTestRecord], dict[str, Any] | None]:
    """A study's range tests in creation order, and its ``lr_ranges`` (None until the tests have ended)."""

    def work(session: Session) -> tuple[list[RangeTestRecord], dict[str, Any] | None]:
        study = require_study(session, study_id, project)
        return RangeTestRepository(session).of_study(study_id), study.lr_ranges

    return db.run(work, write=False)


def reap_expired_range_tests(db: Database, sampling: Sampling, now: datetime | None = None) -> int:
    """Fail every running test whose lease ran out (queued again while retries are left); returns how
    many were reaped."""
    moment = now or utcnow()
    expired = db.run(lambda session: RangeTestRepository(session).expired(moment, _BATCH), write=False)
    reaped = 0
    for candidate in expired:

        def work(
            session: Session, study_id: int = candidate.study_id, optimizer: str = candidate.optimizer
        ) -> bool:
            study = require_study(session, study_id, None, lock=True)
            test = RangeTestRepository(session).get(study_id, optimizer, lock=True)
            if test is None or test.state != "running":
                return False
            if test.lease_expires_at is not None and test.lease_expires_at >= moment:
                return False
            since = test.lease_expires_at.isoformat() if test.lease_expires_at else "never leased"
            lost = RangeTestCompletion(
                state="failed", reason=reason(ReasonCode.LEASE_EXPIRED, f"no heartbeat; lease ended {since}")
            )
            plan = sampling.plan(study)
            _finish(session, plan, test, lost, moment)
            settle_range_tests(session, plan, study, moment)
            log.warning("reaped the lr range test of %s in study %s", optimizer, study_id)
            return True

        try:
            reaped += db.run(work, write=True)
        except DomainError as error:  # e.g. the study was deleted meanwhile: reap the others
            log.info(
                "not reaping the lr range test %s/%s: %s", candidate.study_id, candidate.optimizer, error
            )
    return reaped


def settle_range_tests(session: Session, plan: StudyPlan, study: StudyRecord, now: datetime) -> bool:
    """Once every test of the locked study has ended: write the study's ``lr_ranges`` (the range each
    complete test chose; a failed test's optimizer keeps the whole range) and fit its queued trials' lr
    to them. True if it did so now."""
    if not awaiting_range_tests(plan, study):
        return False
    tests = RangeTestRepository(session).of_study(study.id)
    if any(test.state not in ENDED_STATES for test in tests):
        return False
    ranges = {
        test.optimizer: [test.chosen["low"], test.chosen["high"]] if test.chosen else [test.low, test.high]
        for test in tests
    }
    StudyRepository(session).set_lr_ranges(study.id, ranges, now)
    narrowed = {test.optimizer for test in tests if test.chosen and test.chosen["narrowed"]}
    seeded = {config["trial_number"] for config in (study.warm_start or {}).get("configs", [])}
    trials = TrialRepository(session)
    for queued in trials.queued(study.id):
        fitted = fit_lr(queued.params, ranges, narrowed, keep_inside=queued.number in seeded)
        if fitted != queued.params:
            trials.update(queued.id, params=fitted)
    return True


def fit_lr(
    params: Mapping[str, Any],
    ranges: Mapping[str, list[float]],
    narrowed: set[str],
    *,
    keep_inside: bool,
) -> dict[str, Any]:
    """A queued trial's params with its ``lr`` fitted to its optimizer's range: a start (``keep_inside``
    False) of an optimizer whose range was narrowed takes the range's geometric middle, since its rate
    was a guess made without the test; a warm start's tried configuration (``keep_inside``) keeps its lr
    when it lies in the range, and is clipped into it otherwise."""
    fitted = dict(params)
    optimizer, lr = fitted.get(OPTIMIZER), fitted.get(LR)
    if not isinstance(optimizer, str) or optimizer not in ranges or not isinstance(lr, int | float):
        return fitted
    low, high = ranges[optimizer]
    if keep_inside or optimizer not in narrowed:
        fitted[LR] = min(max(float(lr), low), high)
    else:
        fitted[LR] = math.sqrt(low * high)
    return fitted


def _finish(
    session: Session, plan: StudyPlan, test: RangeTestRecord, completion: RangeTestCompletion, now: datetime
) -> RangeTestRecord:
    changes: dict[str, Any] = {
        "points": [list(point) for point in completion.points],
        "stopped_early": completion.stopped_early,
        "epochs": completion.epochs,
        "wall_time_s": completion.wall_time_s,
        "reason": completion.reason,
        "lease_expires_at": None,
        "finished_at": now,
    }
    if completion.state == "complete":
        points = [RangeTestPoint(lr, loss) for lr, loss in completion.points]
        changes["chosen"] = asdict(narrow_lr_range(points, test.low, test.high))
        changes["state"] = "complete"
    elif should_retry(plan, test.attempt, completion.reason):
        handed_back = reason_code(completion.reason) == ReasonCode.INTERRUPTED
        changes.update(
            state="queued",
            attempt=test.attempt if handed_back else test.attempt + 1,
            worker_id=None,
            started_at=None,
            finished_at=None,
        )
    else:
        changes["state"] = "failed"
    RangeTestRepository(session).update(test.id, **changes)
    return _replace(test, changes)


def _running_test(session: Session, study_id: int, optimizer: str) -> RangeTestRecord:
    test = RangeTestRepository(session).get(study_id, optimizer, lock=True)
    if test is None:
        raise RangeTestNotFound(study_id, optimizer)
    if test.state != "running":
        raise RangeTestLeaseLost(study_id, optimizer, test.state)
    return test


def _replace(test: RangeTestRecord, changes: Mapping[str, Any]) -> RangeTestRecord:
    return RangeTestRecord(**{**asdict(test), **changes})


def _optimizers(space: CompiledSpace) -> list[str]:
    optimizer = space.params.get(OPTIMIZER)
    if not isinstance(optimizer, CategoricalParam):
        raise SearchSpaceError(
            "params.optimizer", "optimizer: an lr range test needs a categorical optimizer"
        )
    return [str(choice) for choice in optimizer.choices]


def _middle(param: Param) -> ParamValue:
    if isinstance(param, CategoricalParam):
        return param.choices[0]
    if isinstance(param, IntParam):
        if param.scale == "log":
            return round(math.sqrt(param.low * param.high))
        return param.low + (param.high - param.low) // (2 * param.step) * param.step
    if param.scale == "log":
        return math.sqrt(param.low * param.high)
    if param.scale == "reverse_log":
        return 1.0 - math.sqrt((1.0 - param.low) * (1.0 - param.high))
    if param.step is not None:
        return param.low + math.floor((param.high - param.low) / (2 * param.step)) * param.step
    return (param.low + param.high) / 2
