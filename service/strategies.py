"""Optuna samplers and pruners, built from a study's spec, and per-trial reseeding.

A sampler seeded once and asked twice in the same process is fine; two API replicas holding a sampler
with the same seed would hand out the same "random" params. So a seeded sampler is reseeded before every
trial with a seed derived from the study's seed and the trial number: params are reproducible for a
given history, whichever replica samples them, and never repeat between consecutive trials.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from typing import Literal, TypeVar

import optuna
from optuna.samplers import BaseSampler
from optuna.samplers._lazy_random_state import LazyRandomState
from optuna.storages import InMemoryStorage
from pydantic import BaseModel

from hps.search_spaces import CompiledSpace
from hps.server.errors import InvalidInput
from hps.wire.studies import (
    MAX_TRIALS,
    CmaesSampler,
    GpSampler,
    GridSampler,
    HyperbandPruner,
    MedianPruner,
    NoPruner,
    PercentilePruner,
    PrunerSpec,
    QmcSampler,
    RandomSampler,
    SamplerSpec,
    SuccessiveHalvingPruner,
    TpeSampler,
)

T = TypeVar("T")
Direction = Literal["minimize", "maximize"]
# Learning-curve steps the rehearsal reports: the first epochs, where pruners decide first.
_REHEARSAL_STEPS = (1, 2, 3)
_REHEARSAL_TRIALS = 3


def check_sampler(spec: SamplerSpec, space: CompiledSpace) -> None:
    """Raise :class:`InvalidInput` when the sampler cannot search this space at all."""
    if isinstance(spec, TpeSampler) and spec.group and not spec.multivariate:
        raise InvalidInput("sampler.group needs sampler.multivariate", field="sampler.group")
    if isinstance(spec, GridSampler):
        # Counted without enumerating: Optuna's GridSampler lists every point when it is built.
        size = space.size()
        if size is None:
            raise InvalidInput(
                "the grid sampler needs a fully discrete search space (categorical, int, or float "
                "with step); this one has a continuous parameter",
                field="sampler.name",
            )
        if size > MAX_TRIALS:
            raise InvalidInput(
                f"the grid sampler tries every point, and this space has {_magnitude(size)} points; "
                f"a grid may have at most {MAX_TRIALS} (the trial cap)",
                field="search_space",
            )


def rehearse(
    sampler: SamplerSpec, pruner: PrunerSpec, space: CompiledSpace, directions: list[Direction]
) -> None:
    """Build the sampler and pruner exactly as a study's trials will, and run a few trials of the space
    through them on an in-memory study: whatever Optuna refuses is an :class:`InvalidInput` naming the
    sampler's or pruner's field, at creation, instead of a failure at every ask later. ``directions``: one
    per objective (a cost-aware study has two, and no pruner: it is not asked then, nor reported to).
    Call :func:`check_sampler` first (it keeps a huge grid from being enumerated)."""
    built_sampler = _building("sampler", sampler, lambda: build_sampler(sampler, space))
    built_pruner = _building("pruner", pruner, lambda: build_pruner(pruner))
    study = optuna.create_study(
        storage=InMemoryStorage(), sampler=built_sampler, pruner=built_pruner, directions=directions
    )
    single = len(directions) == 1
    for number in range(_REHEARSAL_TRIALS):
        trial = _building("sampler", sampler, study.ask)
        _building("sampler", sampler, lambda: space.suggest(trial))  # noqa: B023 (called at once)
        if single:
            for step in _REHEARSAL_STEPS:
                trial.report(float(number), step)
                _building("pruner", pruner, trial.should_prune)
        study.tell(trial, [float(number)] * len(directions))


def _building(section: str, spec: BaseModel, action: Callable[[], T]) -> T:
    """Run ``action``; turn any failure into a 422 on ``section`` (or the field its message names)."""
    try:
        return action()
    except Exception as exc:
        message = str(exc)
        mentioned = {
            found.start(): name
            for name in type(spec).model_fields
            if (found := re.search(rf"\b{name}\b", message)) is not None
        }
        field = f"{section}.{mentioned[min(mentioned)]}" if mentioned else section
        label = getattr(spec, "name", section)
        raise InvalidInput(
            f"Optuna's {label} {section} cannot work with these settings: {type(exc).__name__}: {exc}",
            field=field,
        ) from None


def _magnitude(count: int) -> str:
    digits = len(str(count))
    return f"{count}" if digits <= 12 else f"about 10^{digits - 1}"


def build_sampler(spec: SamplerSpec, space: CompiledSpace) -> BaseSampler:
    """A fresh Optuna sampler for the spec. Call :func:`check_sampler` first."""
    match spec:
        case TpeSampler():
            return optuna.samplers.TPESampler(
                seed=spec.seed,
                n_startup_trials=spec.n_startup_trials,
                n_ei_candidates=spec.n_ei_candidates,
                multivariate=spec.multivariate,
                group=spec.group,
                constant_liar=spec.constant_liar,
            )
        case RandomSampler():
            return optuna.samplers.RandomSampler(seed=spec.seed)
        case GpSampler():
            return optuna.samplers.GPSampler(
                seed=spec.seed,
                n_startup_trials=spec.n_startup_trials,
                deterministic_objective=spec.deterministic_objective,
            )
        case CmaesSampler():
            return optuna.samplers.CmaEsSampler(
                seed=spec.seed,
                n_startup_trials=spec.n_startup_trials,
                sigma0=spec.sigma0,
                consider_pruned_trials=spec.consider_pruned_trials,
                warn_independent_sampling=False,
            )
        case QmcSampler():
            return optuna.samplers.QMCSampler(
                seed=spec.seed,
                qmc_type=spec.qmc_type,
                scramble=spec.scramble,
                warn_independent_sampling=False,
            )
        case GridSampler():
            grid = space.grid_values()
            if grid is None:
                raise InvalidInput("the grid sampler needs a discrete space", field="sampler.name")
            return optuna.samplers.GridSampler(grid, seed=spec.seed)
    raise AssertionError(f"unhandled sampler {spec!r}")


def build_pruner(spec: PrunerSpec) -> optuna.pruners.BasePruner:
    """A fresh Optuna pruner for the spec."""
    match spec:
        case NoPruner():
            return optuna.pruners.NopPruner()
        case MedianPruner():
            return optuna.pruners.MedianPruner(
                n_startup_trials=spec.n_startup_trials,
                n_warmup_steps=spec.n_warmup_steps,
                interval_steps=spec.interval_steps,
                n_min_trials=spec.n_min_trials,
            )
        case PercentilePruner():
            return optuna.pruners.PercentilePruner(
                spec.percentile,
                n_startup_trials=spec.n_startup_trials,
                n_warmup_steps=spec.n_warmup_steps,
                interval_steps=spec.interval_steps,
                n_min_trials=spec.n_min_trials,
            )
        case SuccessiveHalvingPruner():
            return optuna.pruners.SuccessiveHalvingPruner(
                min_resource=spec.min_resource,
                reduction_factor=spec.reduction_factor,
                min_early_stopping_rate=spec.min_early_stopping_rate,
                bootstrap_count=spec.bootstrap_count,
            )
        case HyperbandPruner():
            return optuna.pruners.HyperbandPruner(
                min_resource=spec.min_resource,
                max_resource=spec.max_resource,
                reduction_factor=spec.reduction_factor,
                bootstrap_count=spec.bootstrap_count,
            )
    raise AssertionError(f"unhandled pruner {spec!r}")


def trial_seed(study_seed: int, number: int) -> int:
    """A 32-bit seed for one trial, stable across processes and Python versions."""
    digest = hashlib.blake2b(f"{study_seed}:{number}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def reseed_for_trial(sampler: BaseSampler, study_seed: int, number: int) -> None:
    """Reseed every random state of ``sampler`` (and the samplers it delegates to) for one trial."""
    seed = trial_seed(study_seed, number)
    for state in _random_states(sampler, set()):
        state.rng.seed(seed)


def _random_states(sampler: BaseSampler, seen: set[int]) -> list[LazyRandomState]:
    # Samplers keep their LazyRandomState objects and their fallback samplers in private attributes
    # whose names vary; walking the attributes finds them all without naming any.
    if id(sampler) in seen:
        return []
    seen.add(id(sampler))
    states: list[LazyRandomState] = []
    for value in vars(sampler).values():
        if isinstance(value, LazyRandomState):
            states.append(value)
        elif isinstance(value, BaseSampler):
            states.extend(_random_states(value, seen))
    return states
