"""Study use cases: create, read, list, cancel, delete.

A study is two rows written in one transaction: Optuna's ``studies`` row (so Optuna tools see it) and the
``hps_studies`` row holding the normalized spec and the state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from hps.catalog.families import learning_rates
from hps.catalog.registry import Registry, ResolvedTask, UnknownName
from hps.catalog.trial_params import (
    CLOSURE,
    DEFAULT_OPTIMIZER,
    OptimizerConfigError,
    check_newton,
    check_space,
)
from hps.search_spaces import (
    CategoricalParam,
    CompiledSpace,
    ParamValue,
    SearchSpace,
    SearchSpaceError,
    compile_space,
    fit_learning_rates,
    keep_choices,
    resolve,
)
from hps.server.access import require_study
from hps.server.clock import utcnow
from hps.server.costs import check_objectives, check_priced, objective_directions, objective_names
from hps.server.errors import InvalidInput, StudyNameTaken
from hps.server.plans import Plans, StudyPlan
from hps.server.queue import drop_queued, enqueue_trial
from hps.server.range_tests import check_range_test, plan_range_tests
from hps.server.sampling import Sampling
from hps.server.store.database import Database
from hps.server.store.optuna_tables import OptunaTables
from hps.server.store.range_tests import RangeTestRepository
from hps.server.store.studies import StudyRecord, StudyRepository, optuna_study_name
from hps.server.store.trials import TrialRepository
from hps.server.strategies import check_sampler, rehearse
from hps.server.views import StudyView, study_views
from hps.wire.studies import StudySpec, SuccessiveHalvingPruner, TaskSpec

DEFAULT_N_TRIALS = 20


def compile_study(spec: StudySpec, registry: Registry) -> StudyPlan:
    """Check a study request and make its plan, once: every default filled in (the task's too), the
    search space resolved, fitted to the model's family and compiled, the sampler and pruner rehearsed.
    The plan's spec is what is stored: it says everything a worker needs and never changes meaning."""
    spec = check_objectives(spec)
    try:
        space = _fit_to_task(spec, _fit_to_family(spec, resolve(spec.search_space), registry), registry)
        compiled = compile_space(space)
    except (SearchSpaceError, ValidationError) as exc:
        raise InvalidInput(str(exc), field="search_space") from None
    check_sampler(spec.sampler, compiled)
    check_range_test(spec, compiled)
    if spec.task is not None:
        _check_space_for_task(compiled, registry, spec.task)
        spec = _with_task_defaults(spec, spec.task, registry)
    rehearse(spec.sampler, spec.pruner, compiled, objective_directions(spec))
    budget = spec.budget
    grid_size = compiled.size() if spec.sampler.name == "grid" else None
    if budget.n_trials is None:
        budget = budget.model_copy(update={"n_trials": grid_size or DEFAULT_N_TRIALS})
    elif grid_size is not None and budget.n_trials > grid_size:
        raise InvalidInput(
            f"budget.n_trials ({budget.n_trials}) exceeds the grid's {grid_size} points",
            field="budget.n_trials",
        )
    return StudyPlan(spec.model_copy(update={"search_space": space, "budget": budget}), compiled)


def _with_task_defaults(spec: StudySpec, task: TaskSpec, registry: Registry) -> StudySpec:
    try:
        resolved = registry.resolve(
            task.name, task.model, task.dataset, task.epochs, task.batch_size, task.max_steps_per_epoch
        )
    except UnknownName as exc:
        field = "task.name" if exc.kind == "task" else f"task.{exc.kind}"
        raise InvalidInput(exc.message, field=field) from None
    info = resolved.info
    metric = spec.metric if "metric" in spec.model_fields_set else info.default_metric
    if metric not in info.metrics:
        reported = ", ".join(info.metrics)
        raise InvalidInput(f"task {info.name} reports {reported}, not {metric!r}", field="metric")
    natural = info.metrics[metric]
    direction = spec.direction if "direction" in spec.model_fields_set else natural
    if direction != natural:
        raise InvalidInput(f"{metric} is better when it is {natural[:3]}imized", field="direction")
    filled = TaskSpec(
        name=info.name,
        model=resolved.model.name if resolved.model else None,
        dataset=resolved.dataset.name if resolved.dataset else None,
        epochs=resolved.epochs,
        batch_size=resolved.batch_size,
        max_steps_per_epoch=resolved.max_steps_per_epoch,
    )
    update: dict[str, object] = {"task": filled, "metric": metric, "direction": direction}
    if "pruner" not in spec.model_fields_set:
        update["pruner"] = default_pruner(resolved.epochs)
    return spec.model_copy(update=update)


def default_pruner(epochs: int) -> SuccessiveHalvingPruner:
    """The pruner of a task study that names none: asynchronous successive halving whose first rung is
    half the trial's epochs. Judging from the first epoch spent the fewest epochs, but on few-label data
    the first epoch ranks runs at random and pruned the good ones: in bench/search_quality.py
    (``--candidates``) first-rung-at-half reached the target on 3 of 5 digits seeds where first-rung-at-1
    reached none, and on 5 of 5 text seeds (4 of 5), for about 1.4x the epochs (docs/benchmarks.md)."""
    return SuccessiveHalvingPruner(
        name="successive_halving", min_resource=max(1, epochs // 2), reduction_factor=3
    )


def _fit_to_family(spec: StudySpec, space: SearchSpace, registry: Registry) -> SearchSpace:
    """A preset's learning rates fitted to the family of the model the study fine-tunes (see
    ``hps.catalog.families``); the study's own ``lr`` param and its own starts are kept as written, and so
    is the whole preset when an lr range test is to find the rates instead."""
    if spec.task is None or spec.search_space.preset is None or spec.lr_range_test is not None:
        return space
    if _second_order_only(space):
        return space  # their lr scales a step they compute: the family's first-order rates do not apply
    task = spec.task
    try:
        family = registry.resolve(task.name, task.model, task.dataset).family
    except UnknownName:
        return space  # refused with its field by the task's own checks
    rates = learning_rates(family)
    if rates is None:
        return space
    own = spec.search_space
    return fit_learning_rates(
        space, rates, keep_range="lr" in (own.params or {}), keep_starts=own.starts is not None
    )


def _fit_to_task(spec: StudySpec, space: SearchSpace, registry: Registry) -> SearchSpace:
    """A preset's optimizer choice narrowed to those the task's workers run on the study's model (``newton``
    only for a model within the task's ``max_newton_params``), so every preset fits every task; the study's
    own ``optimizer`` param is kept as written, and checked."""
    own = spec.search_space
    if spec.task is None or own.preset is None or "optimizer" in (own.params or {}):
        return space
    task = spec.task
    try:
        resolved = registry.resolve(task.name, task.model, task.dataset)
    except UnknownName:
        return space  # refused with its field by the task's own checks
    allowed = [name for name in resolved.info.optimizers if name != "newton" or _newton_fits(resolved)]
    return keep_choices(space, "optimizer", allowed)


def _newton_fits(resolved: ResolvedTask) -> bool:
    size = resolved.trainable_params
    return size is not None and size <= resolved.info.max_newton_params


def _second_order_only(space: SearchSpace) -> bool:
    optimizer = (space.params or {}).get("optimizer")
    return isinstance(optimizer, CategoricalParam) and all(choice in CLOSURE for choice in optimizer.choices)


def _check_space_for_task(compiled: CompiledSpace, registry: Registry, task: TaskSpec) -> None:
    """Every configuration the space can produce must be one the task's workers run, ``newton`` only on a
    model small enough for its Hessian."""
    try:
        check_space(compiled, registry.task(task.name).optimizers)
        resolved = registry.resolve(task.name, task.model, task.dataset)
    except UnknownName as exc:
        field = "task.name" if exc.kind == "task" else f"task.{exc.kind}"
        raise InvalidInput(exc.message, field=field) from None
    except SearchSpaceError as exc:
        raise InvalidInput(exc.message, field=f"search_space.{exc.field}") from None
    optimizer = compiled.params.get("optimizer")
    choices = optimizer.choices if isinstance(optimizer, CategoricalParam) else [DEFAULT_OPTIMIZER]
    try:
        check_newton(choices, resolved.trainable_params, resolved.info.max_newton_params, resolved.describe())
    except OptimizerConfigError as exc:
        raise InvalidInput(str(exc), field="search_space.params.optimizer") from None


def create_study(
    db: Database,
    spec: StudySpec,
    registry: Registry,
    *,
    project: str = "default",
    now: datetime | None = None,
    plans: Plans | None = None,
    price_per_gpu_hour: float | None = None,
) -> StudyView:
    """Create the study in Optuna's tables and hps's, or raise ``StudyNameTaken``. ``plans``: this
    process's plans, which keep the new study's (so its first ask does not read it back);
    ``price_per_gpu_hour``: the operator's, which a study minimizing money needs."""
    plan = compile_study(spec, registry)
    check_priced(plan.spec, price_per_gpu_hour)
    moment = now or utcnow()

    def work(session: Session) -> StudyView:
        record = add_study(session, plan, project=project, now=moment)
        return study_views(session, [record])[0]

    view = db.run(work, write=True)
    if plans is not None:
        plans.remember(view.record.id, plan)
    return view


def add_study(
    session: Session,
    plan: StudyPlan,
    *,
    project: str,
    now: datetime,
    seeds: Sequence[Mapping[str, ParamValue]] = (),
    warm_start: dict[str, Any] | None = None,
) -> StudyRecord:
    """Write a study with a normalized spec in this unit of work, or raise ``StudyNameTaken``. Its first
    trials are queued: ``seeds`` (a warm start's, which must fit the space) as trials 0, 1, …, then the
    search space's starts, up to ``n_trials`` in all. ``warm_start`` is what the study shows about them."""
    spec = plan.spec
    timeout = spec.budget.timeout_s
    optuna_tables = OptunaTables(session)
    optuna_name = optuna_study_name(project, spec.name)
    taken = StudyRepository(session).get_by_name(spec.name, project) is not None
    if taken or optuna_tables.study_id_by_name(optuna_name) is not None:
        raise StudyNameTaken(spec.name)
    study_id = optuna_tables.create_study(optuna_name, objective_directions(spec), objective_names(spec))
    record = StudyRecord(
        id=study_id,
        name=spec.name,
        optuna_name=optuna_name,
        project=project,
        state="running",
        state_reason=None,
        direction=spec.direction,
        metric=spec.metric,
        task_name=spec.task.name if spec.task else None,
        spec=spec.model_dump(mode="json"),
        created_at=now,
        updated_at=now,
        deadline_at=now + timedelta(seconds=timeout) if timeout else None,
        finished_at=None,
        warm_start=warm_start,
    )
    StudyRepository(session).add(record)
    RangeTestRepository(session).add(plan_range_tests(plan, study_id, now))
    first = [*seeds, *(spec.search_space.starts or [])]
    for params in first[: spec.n_trials]:
        enqueue_trial(session, plan.space, study_id, params, now)
    return record


def get_study(db: Database, study_id: int, *, project: str | None = None) -> StudyView:
    """One study with progress and best trial, or ``StudyNotFound``."""

    def work(session: Session) -> StudyView:
        return study_views(session, [require_study(session, study_id, project)])[0]

    return db.run(work, write=False)


def list_studies(
    db: Database,
    *,
    state: str | None,
    limit: int,
    before_id: int | None,
    project: str | None = None,
    name: str | None = None,
) -> tuple[list[StudyView], int | None]:
    """A page of studies, newest first, and the cursor of the next page (None at the end)."""

    def work(session: Session) -> tuple[list[StudyView], int | None]:
        records = StudyRepository(session).page(
            state=state, limit=limit + 1, before_id=before_id, project=project, name=name
        )
        more = len(records) > limit
        records = records[:limit]
        return study_views(session, records), records[-1].id if more else None

    return db.run(work, write=False)


def cancel_study(
    db: Database,
    sampling: Sampling,
    study_id: int,
    *,
    project: str | None = None,
    now: datetime | None = None,
) -> StudyView:
    """Stop handing out trials: queued retries are dropped; running trials learn ``should_stop``
    at their next report and may still complete. Cancelling a finished study changes nothing."""
    moment = now or utcnow()

    def work(session: Session) -> StudyView:
        record = require_study(session, study_id, project, lock=True)
        if record.state in ("running", "paused"):
            drop_queued(session, study_id, reason="cancelled", now=moment)
            StudyRepository(session).set_state(
                study_id, "cancelled", reason="cancelled by a user", now=moment
            )
            record = require_study(session, study_id, project)
        return study_views(session, [record])[0]

    view = db.run(work, write=True)
    sampling.forget(study_id)
    return view


def delete_study(db: Database, sampling: Sampling, study_id: int, *, project: str | None = None) -> None:
    """Delete the study, its trials and its Optuna study, in one transaction."""

    def work(session: Session) -> None:
        require_study(session, study_id, project, lock=True)
        TrialRepository(session).delete_study_trials(study_id)
        StudyRepository(session).delete(study_id)
        OptunaTables(session).delete_study(study_id)

    db.run(work, write=True)
    sampling.forget(study_id, deleted=True)
