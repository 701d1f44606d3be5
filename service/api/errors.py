"""One place that turns every failure into ``{"error", "detail", "field"}`` with the right status.

Nothing a client sees carries a traceback, SQL or the database URL; unexpected errors are logged here
and answered as a bare 500.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hps.search_spaces import SearchSpaceError
from hps.server.errors import DomainError, RateLimited, ServiceUnavailable
from hps.wire.rules import InputRuleError

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
# Members of a plain union as pydantic names them in an error's path ("constrained-int", "literal['auto']").
_MEMBER_TAG = re.compile(
    r"(constrained-)?(int|float|str|bool|none|list|dict)|(literal|list|dict|tuple)\[.*\]"
)
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_NOT_AN_OBJECT = {"model_attributes_type", "model_type", "dict_type"}
# Containers whose keys are the client's own names, which may look like member tags.
_USER_KEYED = {"params", "grid", "attrs", "when"}
_STRATEGY_TAGS = {
    *("tpe", "random", "gp", "cmaes", "qmc", "grid"),
    *("none", "median", "percentile", "successive_halving", "hyperband"),
}


def error_body(code: str, detail: str, field: str | None) -> dict[str, Any]:
    """The error document of API.md. Text that came from a request may hold characters UTF-8 cannot
    encode (lone surrogates); they are escaped, so that an error can always be sent."""
    return {"error": code, "detail": _sendable(detail), "field": None if field is None else _sendable(field)}


def _sendable(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)


async def _domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    headers = {}
    if isinstance(exc, ServiceUnavailable | RateLimited):
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
    if not errors:
        return JSONResponse(error_body("invalid", "invalid request", None), status_code=422)
    if errors[0].get("type") == "json_invalid":
        return JSONResponse(error_body("malformed_json", "the body is not valid JSON", None), status_code=400)
    sent = request.headers.get("content-type")
    if _body_unread(errors) and "json" not in (sent or "").lower():
        # FastAPI reads a body as JSON only when it says it is JSON (a form posted from another site must
        # not pass for one), and then reports a bare "valid dictionary" error: say what to send instead.
        got = f"not {sent!r}" if sent else "and this request has no content-type"
        detail = f"the body must be JSON sent with 'content-type: application/json', {got}"
        return JSONResponse(error_body("invalid", detail, None), status_code=422)
    # Every problem, one entry per field; a union's branches each complain about the same field, so
    # their messages are joined with "or".
    problems: dict[str | None, list[str]] = {}
    for error in errors:
        field, message = _describe(error)
        said = problems.setdefault(field, [])
        if message not in said:
            said.append(message)
    detail = "; ".join(
        f"{field}: {' or '.join(messages)}" if field else " or ".join(messages)
        for field, messages in problems.items()
    )
    return JSONResponse(error_body("invalid", detail, next(iter(problems))), status_code=422)


def _body_unread(errors: Sequence[Any]) -> bool:
    """True when the whole body was refused as a non-object: what FastAPI reports for a non-JSON body."""
    return any(tuple(e.get("loc", ())) == ("body",) and e.get("type") in _NOT_AN_OBJECT for e in errors)


def _describe(error: Any) -> tuple[str | None, str]:
    """The dotted field path and what is wrong with it, preferring a rule error's own path."""
    parts = _drop_union_tags([str(p) for p in error.get("loc", ())])
    if parts and parts[0] in _LOCATION_ROOTS:
        parts = parts[1:]
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        parts.append(str((error.get("ctx") or {}).get("discriminator", "")).strip("'"))
    cause = (error.get("ctx") or {}).get("error")
    if isinstance(cause, SearchSpaceError):
        prefix = parts[: parts.index("search_space") + 1] if "search_space" in parts else parts
        path = ".".join([*prefix, cause.field]) if cause.field else ".".join(prefix)
        return path or None, cause.message
    if isinstance(cause, InputRuleError):
        path = ".".join([*parts, cause.field])
        return path, cause.message.removeprefix(f"{cause.field}: ")
    field = ".".join(parts) or None
    if error.get("type") in _NOT_AN_OBJECT:
        return field, f"must be a JSON object, got {_json_type(error.get('input'))}"
    return field, str(error.get("msg", "invalid value")).removeprefix("Value error, ")


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    names = {str: "a string", int: "a number", float: "a number", list: "an array", type(None): "null"}
    return names.get(type(value), "something else")


def _drop_union_tags(parts: list[str]) -> list[str]:
    """Pydantic puts a union's member into the path ("sampler.tpe.seed", "search_space.params.lr.float.low",
    "pruner.max_resource.constrained-int"); a client knows the field as "sampler.seed"."""
    kept: list[str] = []
    for index, part in enumerate(parts):
        after_union = index >= 1 and parts[index - 1] in ("sampler", "pruner")
        after_param = index >= 2 and parts[index - 2] == "params" and part in _PARAM_TAGS
        user_key = index >= 1 and parts[index - 1] in _USER_KEYED
        member = not user_key and _MEMBER_TAG.fullmatch(part) is not None
        if not ((after_union and part in _STRATEGY_TAGS) or after_param or member):
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
    """Every method some route serves on this path. Starlette lists only the first matching route's, and
    FastAPI's included routers keep their routes to themselves, so each method is tried against them."""
    allowed = []
    for method in _METHODS:
        scope = {**request.scope, "method": method}
        if any(route.matches(scope)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    return allowed


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return JSONResponse(
        error_body("internal", "internal error; the server log has the details", None),
        status_code=500,
    )
