"""Named search spaces shipped as YAML package data, and preset resolution.

Each ``presets/<name>.yaml`` holds ``description:`` plus ``params:`` or
``grid:``. Files are read through ``importlib.resources`` so they work from a
wheel or zip as well as from a checkout.
"""

import functools
from collections.abc import Collection
from importlib import resources
from typing import Any

import yaml

from hps.search_spaces.schema import CategoricalParam, ParamValue, SearchSpace, SearchSpaceError, check_params

_SUFFIX = ".yaml"


class UnknownPreset(KeyError):
    """No preset has the requested name; the message lists the known names."""

    def __str__(self) -> str:
        # KeyError's own __str__ would show the message in quotes.
        return str(self.args[0])


def list_presets() -> list[str]:
    """Return the names of all shipped presets, sorted."""
    return list(_preset_names())


def load_preset(name: str) -> SearchSpace:
    """Return the preset ``name`` as a validated space with params or a grid.

    Raises ``UnknownPreset`` if there is no such preset.
    """
    if name not in _preset_names():
        known = ", ".join(_preset_names())
        raise UnknownPreset(f"unknown preset {name!r}; known presets: {known}")
    # A deep copy, so a caller changing the returned dicts cannot change the
    # cached preset for everybody else.
    return _load(name).model_copy(deep=True)


def resolve(space: SearchSpace) -> SearchSpace:
    """Return ``space`` with its preset merged in: ``preset`` is None, and
    exactly one of ``params`` or ``grid`` is set.

    The space's own params add to, or replace by name, the preset's params; its
    description, when given, replaces the preset's. Raises
    ``SearchSpaceError`` (field ``"preset"``) for an unknown preset, and for
    any rule the merged params break.
    """
    if space.preset is None:
        return space
    try:
        preset = load_preset(space.preset)
    except UnknownPreset as error:
        raise SearchSpaceError("preset", str(error)) from error
    description = space.description if space.description is not None else preset.description
    if preset.grid is not None:
        if space.params is not None:
            raise SearchSpaceError(
                "params",
                f"preset {space.preset!r} is a grid, so params cannot be added to it",
            )
        return SearchSpace(description=description, grid=preset.grid, starts=space.starts)
    # A validated preset without a grid has params.
    merged = dict(preset.params or {})
    merged.update(space.params or {})
    # Checked here so the caller gets a SearchSpaceError rather than a
    # ValidationError from building the merged space.
    check_params(merged)
    # The caller's own starts must fit (checked by SearchSpace); the preset's are
    # kept only where they still fit the merged params.
    starts = space.starts if space.starts is not None else _fitting(merged, preset.starts or [])
    return SearchSpace(description=description, params=merged, starts=starts)


def keep_choices(space: SearchSpace, name: str, allowed: Collection[ParamValue]) -> SearchSpace:
    """``space`` (resolved: params, no preset) with the categorical ``name`` narrowed to the choices in
    ``allowed``: a param that exists only ``when`` a dropped choice was taken goes with it, and so does a
    start that took one. Raises ``SearchSpaceError`` (field ``params.<name>.choices``) when no choice is
    left. A space without ``name`` is returned unchanged."""
    params = dict(space.params or {})
    param = params.get(name)
    if not isinstance(param, CategoricalParam):
        return space
    kept = [choice for choice in param.choices if choice in allowed]
    if not kept:
        raise SearchSpaceError(
            f"params.{name}.choices",
            f"{name}: none of {', '.join(map(str, param.choices))} is allowed here "
            f"(allowed: {', '.join(map(str, allowed))})",
        )
    if len(kept) == len(param.choices):
        return space
    params[name] = param.model_copy(update={"choices": kept})
    dropped = _drop_conditioned(params, name, kept)
    starts = [
        start
        for start in space.starts or []
        if start.get(name, kept[0]) in kept and not dropped.intersection(start)
    ]
    return SearchSpace(
        description=space.description,
        params=params,
        starts=_fitting(params, starts) if space.starts is not None else None,
    )


def _drop_conditioned(params: dict[str, Any], name: str, kept: list[ParamValue]) -> set[str]:
    """Narrow every ``when`` on ``name`` to ``kept``, dropping params left with no value to exist for (and
    those that hang on them); the names dropped."""
    dropped: set[str] = set()
    for other, param in list(params.items()):
        if param.when is None or name not in param.when:
            continue
        values = [value for value in param.when[name] if value in kept]
        if values:
            params[other] = param.model_copy(update={"when": {**param.when, name: values}})
        else:
            del params[other]
            dropped.add(other)
    # A param that exists only under a dropped one goes too.
    while orphans := [n for n, p in params.items() if p.when and dropped.intersection(p.when)]:
        for orphan in orphans:
            del params[orphan]
            dropped.add(orphan)
    return dropped


def _fitting(params: dict[str, Any], starts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    from hps.search_spaces.compile import ParamsMismatch, compile_space

    compiled = compile_space(SearchSpace(params=params))
    kept = []
    for start in starts:
        try:
            compiled.encode(start)
        except ParamsMismatch:
            continue
        kept.append(start)
    return kept


@functools.cache
def _preset_names() -> tuple[str, ...]:
    directory = resources.files("hps.search_spaces") / "presets"
    names = (
        entry.name.removesuffix(_SUFFIX)
        for entry in directory.iterdir()
        if entry.is_file() and entry.name.endswith(_SUFFIX)
    )
    return tuple(sorted(names))


@functools.cache
def _load(name: str) -> SearchSpace:
    path = resources.files("hps.search_spaces") / "presets" / f"{name}{_SUFFIX}"
    data: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    # A preset naming another preset could loop; presets are flat on purpose.
    if not isinstance(data, dict) or "preset" in data:
        raise ValueError(f"preset file {path.name} must be a mapping without 'preset'")
    return SearchSpace.model_validate(data)
