"""One place that turns every failure into ``{"error", "detail", "field"}`` with the right status.

Nothing a client sees carries a traceback, SQL or the database URL; unexpected errors are logged here
and answered as a bare 500.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException as StarletteHTTPException

from search_spaces import SearchSpaceError
from service.errors import DomainError, ServiceUnavailable

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}
_LOCATION_ROOTS = {"body", "query", "path", "header"}
_PARAM_TAGS = {"float", "int", "categorical"}
_STRATEGY_TAGS = {
    *("tpe", "random", "gp", "cmaes", "qmc", "grid"),
    *("none", "median", "percentile", "successive_halving", "hyperband"),
}


def error_body(code: str, detail: str, field: str | None) -> dict[str, Any]:
    """The error document of API.md."""
    return {"error": code, "detail": detail, "field": field}


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {}
    if isinstance(exc, ServiceUnavailable):
        headers["Retry-After"] = str(exc.retry_after_s)
    if exc.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    detail = exc.detail
    if exc.status == 422 and exc.field and not detail.startswith(exc.field):
        detail = f"{exc.field}: {detail}"
    return JSONResponse(error_body(exc.code, detail, exc.field), status_code=exc.status, headers=headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return JSONResponse(error_body("malformed_json", "the body is not valid JSON", None), status_code=400)
    field, detail = _describe(first)
    if len(errors) > 1:
        detail += f" (and {len(errors) - 1} more problem{'s' if len(errors) > 2 else ''})"
    return JSONResponse(error_body("invalid", detail, field), status_code=422)


def _describe(error: Any) -> tuple[str | None, str]:
    """The dotted field path and a message naming it, preferring a search-space error's own path."""
    parts = _drop_union_tags([str(p) for p in error.get("loc", ())])
    if parts and parts[0] in _LOCATION_ROOTS:
        parts = parts[1:]
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        parts.append(str((error.get("ctx") or {}).get("discriminator", "")).strip("'"))
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SearchSpaceError):
        prefix = parts[: parts.index("search_space") + 1] if "search_space" in parts else parts
        path = ".".join([*prefix, cause.field]) if cause.field else ".".join(prefix)
        return path or None, f"{path}: {cause.message}"
    field = ".".join(parts) or None
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return field, f"{field}: {message}" if field else message


def _drop_union_tags(parts: list[str]) -> list[str]:
    """Pydantic puts a tagged union's tag into the path ("sampler.tpe.seed",
    "search_space.params.lr.float.low"); a client knows the field as "sampler.seed"."""
    kept: list[str] = []
    for index, part in enumerate(parts):
        after_union = index >= 1 and parts[index - 1] in ("sampler", "pruner")
        after_param = index >= 2 and parts[index - 2] == "params" and part in _PARAM_TAGS
        if not ((after_union and part in _STRATEGY_TAGS) or after_param):
            kept.append(part)
    return kept


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "error")
    detail: str = exc.detail if isinstance(exc.detail, str) else "request refused"
    headers = dict(exc.headers or {})
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no route {request.method} {request.url.path}"
    if exc.status_code == 405:
        # Starlette lists only the first route's methods; a path served by several routes allows all.
        headers["Allow"] = ", ".join(_allowed_methods(request))
        detail = f"{request.method} is not allowed on {request.url.path}; allowed: {headers['Allow']}"
    return JSONResponse(error_body(code, detail, None), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(request.url.path):
            methods |= route.methods or set()
    return sorted(methods)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("internal", "internal error; the server log has the details", None),
        status_code=500,
    )
