"""Rate limits that hold (issue 10): a caller is limited per credential however it is sent, and failed
authentications per client address on a stricter budget, over real HTTP against a real server."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.api import assert_error, unique
from harness.databases import sqlite_url
from harness.servers import ADMIN_TOKEN, RunningServer, start_server


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_server(
        sqlite_url(tmp_path),
        tmp_path,
        HPS_RATE_LIMIT_PER_SECOND="1",
        HPS_RATE_LIMIT_BURST="10",
        HPS_AUTH_FAILURE_RATE_PER_SECOND="0.2",
        HPS_AUTH_FAILURE_BURST="5",
    )
    try:
        yield server
    finally:
        server.process.stop()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def test_guessing_tokens_is_limited_per_address_whatever_the_tokens(limited: RunningServer) -> None:
    with httpx.Client(base_url=limited.base_url, timeout=30) as client:
        statuses = [
            client.get(
                "/v1/studies", headers={"Authorization": f"Bearer hps_{secrets.token_hex(6)}_x"}
            ).status_code
            for _ in range(40)
        ]
        assert statuses[:5] == [401] * 5 and set(statuses[5:]) == {429}, statuses
        refused = client.get("/v1/studies", headers={"Authorization": "Bearer wrong"})
        assert_error(refused, 429, "rate_limited")
        assert int(refused.headers["retry-after"]) >= 1
        # The failures are counted against the address, not against the callers who authenticate.
        valid = client.get("/v1/studies", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert valid.status_code == 200, valid.text


def test_one_credential_is_one_bucket_however_it_is_sent(limited: RunningServer) -> None:
    with limited.client() as admin:
        made = admin.post("/v1/tokens", json={"name": unique("t"), "scopes": ["read"], "project": "rl"})
        other = admin.post("/v1/tokens", json={"name": unique("t"), "scopes": ["read"], "project": "rl"})
    token, spare = made.json()["token"], other.json()["token"]
    with httpx.Client(base_url=limited.base_url, timeout=30) as client:
        # A new user name with every request: basic auth's user name never makes a bucket of its own.
        statuses = [
            client.get("/v1/studies", headers=basic(f"user{i}", token)).status_code for i in range(30)
        ]
        assert 429 in statuses and statuses.count(200) <= 12, statuses
        assert client.get("/v1/studies", headers={"Authorization": f"Bearer {token}"}).status_code == 429
        # Another token has a bucket of its own.
        assert client.get("/v1/studies", headers={"Authorization": f"Bearer {spare}"}).status_code == 200
