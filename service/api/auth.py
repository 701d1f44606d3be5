"""Bearer-token authentication for every ``/v1`` route."""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, Request

from service.api.context import Hub, get_hub
from service.errors import Unauthenticated


@dataclass(frozen=True)
class Principal:
    """Who is calling."""

    name: str


def authenticate(request: Request, hub: Hub = Depends(get_hub)) -> Principal:
    """Accept ``Authorization: Bearer <HPS_ADMIN_TOKEN>``; anything else is 401."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
    admin = hub.settings.admin_token
    if admin is None or not hmac.compare_digest(token.strip().encode(), admin.get_secret_value().encode()):
        raise Unauthenticated("invalid token")
    return Principal(name="admin")
