"""The catalog: search-space presets, and the tasks, models and datasets the operator registered."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from hps.search_spaces import UnknownPreset, list_presets, load_preset
from hps.server.api.auth import can_read
from hps.server.api.context import Hub, get_hub
from hps.server.api.render import entry_out, task_out
from hps.server.api.responses import COMMON
from hps.server.errors import NotFound
from hps.server.tokens import Principal
from hps.wire.base import ErrorOut
from hps.wire.catalog import EntryList, SearchSpaceItem, SearchSpaceList, TaskList

router = APIRouter(prefix="/v1", tags=["catalog"], responses=COMMON)


def _space_json(name: str) -> dict[str, object]:
    return load_preset(name).model_dump(mode="json", exclude_none=True)


@router.get("/search-spaces", response_model=SearchSpaceList)
def list_search_spaces(_: Principal = Depends(can_read)) -> SearchSpaceList:
    """Every preset, each as the JSON a study request may inline."""
    return SearchSpaceList(items=[SearchSpaceItem(name=n, space=_space_json(n)) for n in list_presets()])


@router.get(
    "/search-spaces/{name}",
    response_model=dict[str, object],
    responses={404: {"model": ErrorOut, "description": "No such preset."}},
)
def get_search_space(name: str, _: Principal = Depends(can_read)) -> dict[str, object]:
    """One preset, as the JSON a study request may inline as its ``search_space``."""
    try:
        return _space_json(name)
    except UnknownPreset:
        raise NotFound(f"no search-space preset named {name!r}", field="name") from None


@router.get("/tasks", response_model=TaskList)
def list_tasks(hub: Hub = Depends(get_hub), _: Principal = Depends(can_read)) -> TaskList:
    """Registered tasks, their metrics and defaults."""
    return TaskList(items=[task_out(info) for _, info in sorted(hub.registry.tasks.items())])


@router.get("/models", response_model=EntryList)
def list_models(hub: Hub = Depends(get_hub), _: Principal = Depends(can_read)) -> EntryList:
    """Registered pretrained models (names and tasks; their files stay private)."""
    return EntryList(items=[entry_out(m) for _, m in sorted(hub.registry.models.items())])


@router.get("/datasets", response_model=EntryList)
def list_datasets(hub: Hub = Depends(get_hub), _: Principal = Depends(can_read)) -> EntryList:
    """Registered datasets (names and tasks; their files stay private)."""
    return EntryList(items=[entry_out(d) for _, d in sorted(hub.registry.datasets.items())])
