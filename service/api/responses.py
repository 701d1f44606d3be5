"""Error answers every route can give, documented once for the OpenAPI document."""

from __future__ import annotations

from typing import Any

from hps.wire.base import ErrorOut


def error(description: str) -> dict[str, Any]:
    """An OpenAPI response entry with the error body."""
    return {"model": ErrorOut, "description": description}


COMMON: dict[int | str, dict[str, Any]] = {
    400: error("The body is not valid JSON."),
    401: error("No token, or an unknown or revoked one."),
    403: error("The token lacks the scope this route needs."),
    413: error("The request body is too large."),
    422: error("A field is invalid; `field` names it."),
    429: error("Too many requests for this token; retry after `Retry-After` seconds."),
    503: error("The database is unreachable; retry after `Retry-After` seconds."),
}
Responses = dict[int | str, dict[str, Any]]
STUDY_NOT_FOUND: Responses = {404: error("No such study (or not in this token's project).")}
TRIAL_NOT_FOUND: Responses = {404: error("No such study or trial.")}
SCHEDULE_NOT_FOUND: Responses = {404: error("No such schedule (or not in this token's project).")}
