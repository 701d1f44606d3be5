"""Property-based tests of the whole request surface (issue 10): arbitrary unicode (NUL and lone surrogates
included), huge and non-finite numbers, deep nesting and wrong types, put into every field of every route's
request body and query, sent over real HTTP to a real server on SQLite and PostgreSQL. The properties:
never a 5xx, and every listing still answers 200 afterwards.

``HPS_PROPERTY_EXAMPLES`` sets the examples per route (default 40).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.api import study_body, unique
from harness.servers import RunningServer

EXAMPLES = int(os.environ.get("HPS_PROPERTY_EXAMPLES", "40"))
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Every Unicode code point, lone surrogates included (hypothesis leaves those out unless told).
ANY_CHARACTER = st.characters(exclude_categories=())
TEXT = st.one_of(
    st.text(ANY_CHARACTER, max_size=30),
    st.sampled_from(["\x00", "\ud800", "a\x00b", "\udfff\ud800", "\u202e", "💥" * 3, "x" * 5000, "", " "]),
)
NUMBERS = st.one_of(
    st.integers(),
    st.sampled_from([2**31, 2**53 + 1, -(2**63), 10**30, 10**400, -1, 0]),
    st.floats(),  # NaN and infinities included
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
)
SCALARS = st.one_of(TEXT, NUMBERS, st.booleans(), st.none())


def _deep(depth: int, inner: Any) -> Any:
    for level in range(depth):
        inner = [inner] if level % 2 else {"k": inner}
    return inner


HOSTILE = st.one_of(
    SCALARS,
    st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
        max_leaves=12,
    ),
    st.builds(_deep, st.integers(min_value=20, max_value=400), SCALARS),
)


def paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a JSON value, the value itself included."""
    yield prefix
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from paths(inner, (*prefix, key))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            yield from paths(inner, (*prefix, index))


def replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    """``value`` with the place at ``path`` replaced by ``new`` (a copy)."""
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: replaced(value[head], rest, new)}
    copy = list(value)
    copy[head] = replaced(copy[head], rest, new)
    return copy


def mutations(template: Any) -> st.SearchStrategy[Any]:
    """The template with one place replaced by something hostile, or a hostile key added to an object."""
    places = list(paths(template))
    objects = [path for path in places if isinstance(_at(template, path), dict)]
    replace = st.builds(replaced, st.just(template), st.sampled_from(places), HOSTILE)
    add = st.builds(
        lambda path, key, new: replaced(template, path, {**_at(template, path), key: new}),
        st.sampled_from(objects),
        TEXT,
        HOSTILE,
    )
    return st.one_of(replace, add)


def _at(value: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        value = value[part]
    return value


def send(client: httpx.Client, method: str, path: str, body: Any) -> httpx.Response:
    """JSON as Python writes it: NaN and Infinity as literals, every non-ASCII character escaped."""
    content = json.dumps(body, allow_nan=True)
    return client.request(method, path, content=content, headers={"content-type": "application/json"})


def assert_no_server_error(response: httpx.Response) -> None:
    assert response.status_code < 500, (response.request.method, response.request.url, response.text[:500])


def assert_listings_answer(client: httpx.Client, study_id: int) -> None:
    for path in ("/v1/studies", "/v1/schedules", "/v1/tokens", f"/v1/studies/{study_id}/trials"):
        cursor: str | None = None
        for _ in range(50):  # every page, so that no stored value breaks a later page
            params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            response = client.get(path, params=params)
            assert response.status_code == 200, (path, response.text[:500])
            cursor = response.json().get("next_cursor")
            if not cursor:
                break


@pytest.fixture
def client(api_server: RunningServer) -> Iterator[httpx.Client]:
    with api_server.client() as admin:
        yield admin


@pytest.fixture
def study_id(client: httpx.Client) -> int:
    body = study_body(unique("prop"), budget={"n_trials": 10_000, "max_failed": 10_000})
    made = client.post("/v1/studies", json=body)
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def _schedule_template() -> dict[str, Any]:
    return {key: value for key, value in study_body("x").items() if key != "name"}


STUDY = study_body("prop-study", task=None, budget={"n_trials": 5})
SCHEDULE = {"name": "prop-schedule", "cron": "0 3 * * *", "timezone": "UTC", "template": _schedule_template()}
SCHEDULE_PATCH = {"cron": "0 4 * * *", "timezone": "Europe/Berlin", "promotion": {"margin": 0.1}}
COMPLETION = {"state": "complete", "value": 0.5, "attrs": {"epochs": 3, "curve": [0.1, 0.2], "note": "ok"}}
FAILURE = {"state": "failed", "reason": "oom: out of memory", "attrs": {}}
REPORT = {"step": 1, "value": 0.5}
CLAIM = {"worker_id": "w-1", "device": "cpu", "tasks": ["quadratic", "digits"]}
TOKEN = {"name": "prop", "scopes": ["read"], "project": "prop"}


def test_creating_studies_never_fails_on_the_server(client: httpx.Client, study_id: int) -> None:
    @SETTINGS
    @given(mutations(STUDY))
    def check(body: Any) -> None:
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            body = {**body, "name": unique("prop")}  # a valid, unique name reaches the deeper checks
        assert_no_server_error(send(client, "POST", "/v1/studies", body))

    check()
    assert_listings_answer(client, study_id)


def test_schedules_never_fail_on_the_server(client: httpx.Client, study_id: int) -> None:
    made = client.post("/v1/schedules", json={**SCHEDULE, "name": unique("prop-sch")})
    assert made.status_code == 201, made.text
    schedule_id = made.json()["id"]

    @SETTINGS
    @given(mutations(SCHEDULE), mutations(SCHEDULE_PATCH))
    def check(body: Any, patch: Any) -> None:
        if isinstance(body, dict) and isinstance(body.get("name"), str):
            body = {**body, "name": unique("prop-sch")}
        assert_no_server_error(send(client, "POST", "/v1/schedules", body))
        assert_no_server_error(send(client, "PATCH", f"/v1/schedules/{schedule_id}", patch))

    check()
    assert_listings_answer(client, study_id)


def test_ask_report_and_complete_never_fail_on_the_server(client: httpx.Client, study_id: int) -> None:
    running = client.post(f"/v1/studies/{study_id}/trials").json()["number"]

    @SETTINGS
    @given(mutations(REPORT), mutations(COMPLETION), mutations(FAILURE), mutations({"worker_id": "w"}))
    def check(report: Any, completion: Any, failure: Any, ask: Any) -> None:
        assert_no_server_error(
            send(client, "POST", f"/v1/studies/{study_id}/trials/{running}/reports", report)
        )
        asked = send(client, "POST", f"/v1/studies/{study_id}/trials", ask)
        assert_no_server_error(asked)
        number = client.post(f"/v1/studies/{study_id}/trials").json()["number"]
        base = f"/v1/studies/{study_id}/trials/{number}"
        assert_no_server_error(send(client, "POST", f"{base}/complete", completion))
        assert_no_server_error(send(client, "POST", f"{base}/complete", failure))
        assert_no_server_error(client.post(f"{base}/heartbeat"))

    check()
    assert_listings_answer(client, study_id)


def test_claims_and_tokens_never_fail_on_the_server(client: httpx.Client, study_id: int) -> None:
    @SETTINGS
    @given(mutations(CLAIM), mutations(TOKEN))
    def check(claim: Any, token: Any) -> None:
        assert_no_server_error(send(client, "POST", "/v1/workers/claim", claim))
        assert_no_server_error(send(client, "POST", "/v1/tokens", token))

    check()
    assert_listings_answer(client, study_id)


QUERY_VALUES = st.one_of(
    TEXT,
    st.sampled_from(["2147483648", "99999999999999999999", "-1", "1e3", "%00", "%ED%A0%80", "%FF", "0x10"]),
)


def test_query_strings_never_fail_on_the_server(
    api_server: RunningServer, client: httpx.Client, study_id: int
) -> None:
    paths = (
        "/v1/studies",
        f"/v1/studies/{study_id}/trials",
        "/v1/schedules",
        f"/v1/studies/{study_id}/report",
    )

    @SETTINGS
    @given(st.sampled_from(["name", "state", "cursor", "limit", "project", "top"]), QUERY_VALUES)
    def check(key: str, value: str) -> None:
        # Every byte percent-escaped (a "%" is kept, so that "%ED%A0%80" reaches the server as invalid
        # UTF-8, and a lone surrogate as its UTF-8-like bytes).
        query = quote(value.encode("utf-8", "surrogatepass"), safe="%")
        for path in paths:
            assert_no_server_error(client.get(f"{api_server.base_url}{path}?{key}={query}"))

    check()
    assert_listings_answer(client, study_id)
