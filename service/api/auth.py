"""Authentication (who is calling) and authorization (may they) for every ``/v1`` route and the dashboard.

A token is presented as ``Authorization: Bearer <token>`` or, for browsers on the dashboard, as the password
of HTTP basic auth. ``HPS_ADMIN_TOKEN`` is accepted as an admin token of every project (for bootstrap).
Missing or unknown token: 401. A valid token without the scope a route needs: 403.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import Depends, Request

from hps.server.api.context import Hub, get_hub
from hps.server.errors import Forbidden, Unauthenticated
from hps.server.tokens import GRANTS, Principal, principal_for

BOOTSTRAP = Principal(name="HPS_ADMIN_TOKEN", grants=GRANTS["admin"], project=None)


def presented_token(authorization: str) -> str | None:
    """The token in an Authorization header (bearer, or basic auth's password), if any."""
    scheme, _, value = authorization.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        return value
    if scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        password = decoded.partition(":")[2]
        return password or None
    return None


def identify(hub: Hub, authorization: str, address: str) -> Principal:
    """The caller, or :class:`Unauthenticated`; :class:`RateLimited` when the caller's credential has
    made too many requests, or ``address`` too many failed attempts (see ``RateLimits``)."""
    try:
        principal = _principal(hub, authorization)
    except Unauthenticated:
        hub.limits.failed(address)
        raise
    hub.limits.admit(principal.token_id or principal.name)
    return principal


def client_address(scope: Mapping[str, Any]) -> str:
    """The peer address of a request (behind a proxy: the proxy's, unless uvicorn trusts it)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def _principal(hub: Hub, authorization: str) -> Principal:
    token = presented_token(authorization)
    if token is None:
        raise Unauthenticated("missing bearer token: send 'Authorization: Bearer <token>'")
    admin = hub.settings.admin_token
    if admin is not None and hmac.compare_digest(token.encode(), admin.get_secret_value().encode()):
        return BOOTSTRAP
    principal = principal_for(hub.db, hub.token_cache, token)
    if principal is None:
        raise Unauthenticated("invalid or revoked token")
    return principal


def authenticate(request: Request, hub: Hub = Depends(get_hub)) -> Principal:
    """FastAPI dependency: the caller (401 if none, 429 when over a rate limit)."""
    return identify(hub, request.headers.get("authorization", ""), client_address(request.scope))


def require(*scopes: str) -> Callable[..., Principal]:
    """A dependency that admits callers holding any of ``scopes`` (admin holds all): 403 otherwise."""

    def dependency(principal: Principal = Depends(authenticate)) -> Principal:
        if not principal.may(*scopes):
            needed = " or ".join(scopes)
            raise Forbidden(f"this token lacks the {needed} scope this route needs")
        return principal

    return dependency


# The dependencies routes use.
can_read = require("read")
can_write = require("write")
can_run = require("write", "worker")  # report, heartbeat, complete: external clients and workers
can_claim = require("worker")
can_admin = require("admin")


def can_scrape(principal: Principal = Depends(require("metrics"))) -> Principal:
    """``GET /metrics``: a metrics or admin token that sees every project, since the figures name every
    project's studies (a project-bound admin would see other projects there)."""
    if principal.project is not None:
        raise Forbidden("metrics cover every project: use a project-less metrics or admin token")
    return principal
