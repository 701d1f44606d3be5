"""The OpenAPI document, with the input rules (``hps.wire.rules``) written into the request schemas
and links from each created resource to the calls that use it.

Pydantic describes each field's own constraints; the rules every request value meets wherever it sits are
added here, so that a client generating requests from ``/openapi.json`` (or a fuzzer checking that every
schema-valid request is accepted) knows them: text holds no NUL, and free-form JSON (trial attrs) is the
same JSON with that rule at every depth. Lone surrogates cannot be written in a JSON Schema; they are
refused all the same.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

NO_NUL = "^[^\\u0000]*$"
_REF = "#/components/schemas/"
_FREE_JSON = "JsonValue"


def install_openapi(app: FastAPI) -> None:
    """Serve the document with the input rules added (built once, on first request)."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            built = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            app.openapi_schema = with_links(with_input_rules(built))
        return app.openapi_schema

    app.openapi = document  # type: ignore[method-assign]


# Which answers feed which next calls (OpenAPI links): a client, or a stateful fuzzer, can follow
# create -> ask -> report -> complete without guessing ids. (source method, path, status) -> links.
_STUDY = {"study_id": "$response.body#/id"}
_TRIAL = {"study_id": "$response.body#/study_id", "number": "$response.body#/number"}
_CLAIMED = {"study_id": "$response.body#/study_id", "number": "$response.body#/trial/number"}
_SCHEDULE = {"schedule_id": "$response.body#/id"}
_TRIAL_PATH = "/v1/studies/{study_id}/trials/{number}"
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, dict[str, str]]]] = {
    ("post", "/v1/studies", "201"): {
        "GetStudy": ("get", "/v1/studies/{study_id}", _STUDY),
        "AskTrial": ("post", "/v1/studies/{study_id}/trials", _STUDY),
        "ListTrials": ("get", "/v1/studies/{study_id}/trials", _STUDY),
        "CancelStudy": ("post", "/v1/studies/{study_id}/cancel", _STUDY),
        "StudyReport": ("get", "/v1/studies/{study_id}/report", _STUDY),
        "RangeTests": ("get", "/v1/studies/{study_id}/lr-range-tests", _STUDY),
    },
    ("post", "/v1/studies/{study_id}/trials", "201"): {
        "GetTrial": ("get", _TRIAL_PATH, _TRIAL),
        "ReportTrial": ("post", f"{_TRIAL_PATH}/reports", _TRIAL),
        "Heartbeat": ("post", f"{_TRIAL_PATH}/heartbeat", _TRIAL),
        "CompleteTrial": ("post", f"{_TRIAL_PATH}/complete", _TRIAL),
    },
    ("post", "/v1/workers/claim", "200"): {
        "ReportTrial": ("post", f"{_TRIAL_PATH}/reports", _CLAIMED),
        "CompleteTrial": ("post", f"{_TRIAL_PATH}/complete", _CLAIMED),
    },
    ("post", "/v1/schedules", "201"): {
        "GetSchedule": ("get", "/v1/schedules/{schedule_id}", _SCHEDULE),
        "UpdateSchedule": ("patch", "/v1/schedules/{schedule_id}", _SCHEDULE),
        "RunSchedule": ("post", "/v1/schedules/{schedule_id}/run", _SCHEDULE),
        "ScheduleRuns": ("get", "/v1/schedules/{schedule_id}/runs", _SCHEDULE),
    },
}


def with_links(document: dict[str, Any]) -> dict[str, Any]:
    """Add :data:`LINKS` to the answers they start from."""
    paths = document.get("paths", {})
    for (method, path, status), links in LINKS.items():
        response = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        response["links"] = {
            name: {"operationId": paths[target][verb]["operationId"], "parameters": parameters}
            for name, (verb, target, parameters) in links.items()
            if verb in paths.get(target, {})
        }
    return document


def with_input_rules(document: dict[str, Any]) -> dict[str, Any]:
    """Add the input rules to every schema a request body or parameter uses (and nothing else)."""
    schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
    if _FREE_JSON in schemas:
        schemas[_FREE_JSON] = _free_json()
    for name in _reachable(_request_roots(document), schemas):
        _tighten(schemas[name])
    for operation in _operations(document):
        for parameter in operation.get("parameters", []):
            _tighten(parameter.get("schema", {}))
    return document


def _free_json() -> dict[str, Any]:
    ref = {"$ref": _REF + _FREE_JSON}
    return {
        "description": "Any JSON value; text (keys too) holds no NUL.",
        "anyOf": [
            {"type": "string", "pattern": NO_NUL},
            {"type": "number"},
            {"type": "boolean"},
            {"type": "null"},
            {"type": "array", "items": ref},
            {"type": "object", "additionalProperties": ref, "propertyNames": {"pattern": NO_NUL}},
        ],
    }


def _operations(document: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for item in document.get("paths", {}).values():
        for operation in item.values():
            if isinstance(operation, dict):
                yield operation


def _request_roots(document: dict[str, Any]) -> set[str]:
    roots: set[str] = set()
    for operation in _operations(document):
        content = operation.get("requestBody", {}).get("content", {})
        for media in content.values():
            roots |= set(_refs(media.get("schema", {})))
    return roots


def _reachable(roots: set[str], schemas: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    pending = [name for name in roots if name in schemas]
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        pending.extend(ref for ref in _refs(schemas[name]) if ref in schemas and ref not in seen)
    return seen - {_FREE_JSON}


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_REF):
            yield ref.removeprefix(_REF)
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _tighten(node: Any) -> None:
    """Text without a pattern, enum or const gets the no-NUL pattern; free-keyed objects get it for keys."""
    if isinstance(node, list):
        for value in node:
            _tighten(value)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "string" and not {"pattern", "enum", "const", "format"} & node.keys():
        node["pattern"] = NO_NUL
    if node.get("type") == "object" and node.get("additionalProperties", True) is not False:
        node.setdefault("propertyNames", {"pattern": NO_NUL})
    for key, value in node.items():
        if key not in ("propertyNames", "default", "examples", "const", "enum"):
            _tighten(value)
