"""The catalog: search-space presets (tasks, models and datasets come with the workers)."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from search_spaces import UnknownPreset, list_presets, load_preset
from service.api.auth import Principal, authenticate
from service.api.schemas import ErrorOut, SearchSpaceItem, SearchSpaceList
from service.errors import NotFound

router = APIRouter(prefix="/v1", tags=["catalog"])


def _space_json(name: str) -> dict[str, object]:
    return load_preset(name).model_dump(mode="json", exclude_none=True)


@router.get("/search-spaces", response_model=SearchSpaceList)
def list_search_spaces(_: Principal = Depends(authenticate)) -> SearchSpaceList:
    """Every preset, each as the JSON a study request may inline."""
    return SearchSpaceList(items=[SearchSpaceItem(name=n, space=_space_json(n)) for n in list_presets()])


@router.get(
    "/search-spaces/{name}",
    response_model=dict[str, object],
    responses={404: {"model": ErrorOut, "description": "No such preset."}},
)
def get_search_space(name: str, _: Principal = Depends(authenticate)) -> dict[str, object]:
    """One preset, as the JSON a study request may inline as its ``search_space``."""
    try:
        return _space_json(name)
    except UnknownPreset:
        raise NotFound(f"no search-space preset named {name!r}", field="name") from None
