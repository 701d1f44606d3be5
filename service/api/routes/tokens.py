"""``/v1/tokens``: admins create, list and revoke API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from hps.server import tokens
from hps.server.api.auth import can_admin
from hps.server.api.context import Hub, get_hub
from hps.server.api.render import token_out
from hps.server.api.responses import COMMON, error
from hps.server.errors import Forbidden
from hps.server.tokens import Principal
from hps.wire.tokens import NewTokenOut, TokenIn, TokenList

router = APIRouter(prefix="/v1/tokens", tags=["tokens"], responses=COMMON)


@router.post("", status_code=201, response_model=NewTokenOut)
def create_token(
    body: TokenIn, hub: Hub = Depends(get_hub), who: Principal = Depends(can_admin)
) -> NewTokenOut:
    """Create a token; the answer holds its secret, which is never shown again."""
    project = body.project
    if who.project is not None:
        if project not in (None, who.project):
            raise Forbidden(f"this token manages project {who.project!r} only")
        project = who.project
    made = tokens.create_token(hub.db, name=body.name, scopes=list(body.scopes), project=project)
    return NewTokenOut(**token_out(made.record).model_dump(), token=made.secret)


@router.get("", response_model=TokenList)
def list_tokens(hub: Hub = Depends(get_hub), who: Principal = Depends(can_admin)) -> TokenList:
    """Tokens (of the caller's project), without their secrets."""
    return TokenList(items=[token_out(t) for t in tokens.list_tokens(hub.db, who.project)])


@router.delete(
    "/{token_id}",
    status_code=204,
    response_class=Response,
    responses={404: error("No such token.")},
)
def revoke_token(token_id: str, hub: Hub = Depends(get_hub), who: Principal = Depends(can_admin)) -> Response:
    """Revoke a token: it stops working at once on this replica, within seconds on the others."""
    tokens.revoke_token(hub.db, token_id, who.project, cache=hub.token_cache)
    return Response(status_code=204)
