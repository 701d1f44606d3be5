"""Tokens, scopes, projects and limits, over real HTTP against real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from harness.api import assert_error, study_body, unique
from harness.databases import sqlite_url
from harness.ports import free_port
from harness.servers import ADMIN_TOKEN, RunningServer, start_server


def new_token(server: RunningServer, scopes: list[str], project: str | None) -> str:
    with server.client() as admin:
        made = admin.post("/v1/tokens", json={"name": unique("tok"), "scopes": scopes, "project": project})
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def create_in(server: RunningServer, project: str) -> int:
    with server.client() as admin:
        made = admin.post("/v1/studies", params={"project": project}, json=study_body(unique()))
    assert made.status_code == 201, made.text
    return int(made.json()["id"])


def test_tokens_are_shown_once_stored_hashed_and_revocable(api_server: RunningServer) -> None:
    with api_server.client() as admin:
        made = admin.post("/v1/tokens", json={"name": "ci", "scopes": ["read"], "project": "hashing"}).json()
        secret = made["token"]
        listed = admin.get("/v1/tokens").json()["items"]
        assert made["id"] in [t["id"] for t in listed]
        assert all("token" not in t for t in listed)
    with api_server.client(secret) as reader:
        assert reader.get("/v1/studies").status_code == 200
    engine = create_engine(api_server.database_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM hps_tokens")).all()
    engine.dispose()
    assert rows and not any(secret in str(value) for row in rows for value in row)
    with api_server.client() as admin:
        assert admin.delete(f"/v1/tokens/{made['id']}").status_code == 204
        assert_error(admin.delete("/v1/tokens/nope"), 404)
    with api_server.client(secret) as reader:
        assert_error(reader.get("/v1/studies"), 401, "unauthenticated")


SCOPE_CASES: list[tuple[str, str, str, dict[str, Any] | None, set[int]]] = [
    # scope, method, path template, body, statuses allowed
    ("read", "GET", "/v1/studies", None, {200}),
    ("read", "GET", "/v1/studies/{study}", None, {200}),
    ("read", "POST", "/v1/studies", {}, {403}),
    ("read", "POST", "/v1/studies/{study}/trials", None, {403}),
    ("read", "POST", "/v1/workers/claim", {"worker_id": "w", "device": "cpu", "tasks": ["digits"]}, {403}),
    ("read", "GET", "/v1/tokens", None, {403}),
    ("write", "POST", "/v1/studies", {}, {201}),
    ("write", "POST", "/v1/studies/{study}/trials", None, {201}),
    ("write", "POST", "/v1/workers/claim", {"worker_id": "w", "device": "cpu", "tasks": ["digits"]}, {403}),
    ("write", "POST", "/v1/tokens", {"name": "x", "scopes": ["read"], "project": "p"}, {403}),
    ("worker", "POST", "/v1/workers/claim", {"worker_id": "w", "device": "cpu", "tasks": ["digits"]}, {204}),
    ("worker", "GET", "/v1/studies", None, {403}),
    ("worker", "POST", "/v1/studies/{study}/trials", None, {403}),
    ("worker", "POST", "/v1/studies/{study}/trials/0/reports", {"step": 0, "value": 1.0}, {200, 409}),
]


@pytest.mark.parametrize(
    ("scope", "method", "path", "body", "allowed"),
    SCOPE_CASES,
    ids=[f"{c[0]}-{c[1]}-{c[2]}" for c in SCOPE_CASES],
)
def test_each_scope_gets_what_it_grants_and_403_otherwise(
    api_server: RunningServer,
    scope: str,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    allowed: set[int],
) -> None:
    project = unique("scopes")
    study_id = create_in(api_server, project)
    with api_server.client() as admin:
        admin.post(f"/v1/studies/{study_id}/trials")  # trial 0, so reports have something to hit
    token = new_token(api_server, [scope], project)
    if body == {}:
        body = study_body(unique())
    with api_server.client(token) as client:
        response = client.request(method, path.format(study=study_id), json=body)
    assert response.status_code in allowed, response.text
    if response.status_code == 403:
        assert_error(response, 403, "forbidden")


def test_another_projects_study_is_404_on_every_route(api_server: RunningServer) -> None:
    mine, theirs = unique("mine"), unique("theirs")
    hidden = create_in(api_server, theirs)
    with api_server.client() as admin:
        assert admin.post(f"/v1/studies/{hidden}/trials").status_code == 201
    writer = new_token(api_server, ["write"], mine)
    worker = new_token(api_server, ["worker"], mine)
    with api_server.client(writer) as client:
        listed = client.get("/v1/studies", params={"limit": 200}).json()["items"]
        assert hidden not in [s["id"] for s in listed]
        for method, path, body in [
            ("GET", f"/v1/studies/{hidden}", None),
            ("GET", f"/v1/studies/{hidden}/trials", None),
            ("GET", f"/v1/studies/{hidden}/trials/0", None),
            ("GET", f"/v1/studies/{hidden}/best", None),
            ("POST", f"/v1/studies/{hidden}/trials", None),
            ("POST", f"/v1/studies/{hidden}/trials/0/reports", {"step": 0, "value": 1.0}),
            ("POST", f"/v1/studies/{hidden}/trials/0/heartbeat", None),
            ("POST", f"/v1/studies/{hidden}/trials/0/complete", {"state": "complete", "value": 1.0}),
            ("POST", f"/v1/studies/{hidden}/cancel", None),
            ("DELETE", f"/v1/studies/{hidden}", None),
        ]:
            assert_error(client.request(method, path, json=body), 404, "study_not_found")
        created = client.post("/v1/studies", json=study_body(unique()))
        assert created.status_code == 201
        mine_id = created.json()["id"]
        assert client.get(f"/v1/studies/{mine_id}").status_code == 200
        assert_error(client.post("/v1/studies", params={"project": theirs}, json=study_body(unique())), 403)
    with api_server.client() as admin:
        task_study = {**study_body(unique()), "task": {"name": "quadratic"}}
        del task_study["metric"], task_study["direction"]
        assert admin.post("/v1/studies", params={"project": theirs}, json=task_study).status_code == 201
    with api_server.client(worker) as client:
        claim = client.post(
            "/v1/workers/claim", json={"worker_id": "w", "device": "cpu", "tasks": ["quadratic"]}
        )
        assert claim.status_code == 204  # their quadratic study is invisible to my worker
    with api_server.client() as admin:
        assert admin.get(f"/v1/studies/{hidden}").json()["state"] == "running"  # untouched


def test_only_admin_tokens_may_be_project_less(api_server: RunningServer) -> None:
    with api_server.client() as admin:
        refused = admin.post("/v1/tokens", json={"name": "n", "scopes": ["read"]})
        assert_error(refused, 422, field="project")
        assert_error(admin.post("/v1/tokens", json={"name": "n", "scopes": ["root"], "project": "p"}), 422)


REQUESTS_THAT_SMUGGLE = [
    {"task": {"name": "digits", "model": "/etc/passwd"}},
    {"task": {"name": "digits", "dataset": "../../secrets"}},
    {"task": {"name": "digits", "model": "https://evil.example/model.bin"}},
    {"task": {"name": "os:system"}},
    {"task": {"name": "text-classification", "trust_remote_code": True}},
    {"task": {"name": "digits", "model": "not-registered"}},
]


@pytest.mark.parametrize("change", REQUESTS_THAT_SMUGGLE, ids=lambda c: str(c["task"]))
def test_requests_carry_names_only_never_paths_urls_or_code(
    api_server: RunningServer, change: dict[str, Any]
) -> None:
    body = {k: v for k, v in study_body(unique()).items() if k not in ("metric", "direction")}
    with api_server.client() as client:
        assert_error(client.post("/v1/studies", json={**body, **change}), 422)


@pytest.fixture
def limited_server(tmp_path: Path) -> Iterator[RunningServer]:
    server = start_server(
        sqlite_url(tmp_path),
        tmp_path,
        HPS_RATE_LIMIT_PER_SECOND="2",
        HPS_RATE_LIMIT_BURST="3",
        HPS_MAX_BODY_BYTES="4096",
        HPS_CORS_ORIGINS='["https://ui.example"]',
    )
    try:
        yield server
    finally:
        server.process.stop()


def test_limits_body_size_rate_and_cors(limited_server: RunningServer) -> None:
    big = {"name": "x" * 5000}
    with limited_server.client() as client:
        assert_error(client.post("/v1/studies", json=big), 413, "too_large")

        def chunks() -> Iterator[bytes]:
            yield b'{"name": "'
            yield b"y" * 5000
            yield b'"}'

        streamed = client.post("/v1/studies", content=chunks(), headers={"content-type": "application/json"})
        assert_error(streamed, 413, "too_large")
        statuses = [client.get("/v1/studies").status_code for _ in range(6)]
        assert 429 in statuses
        limited = client.get("/v1/studies")
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["retry-after"]) >= 1
        assert httpx.get(f"{limited_server.base_url}/healthz").status_code == 200  # never limited
    allowed = httpx.options(
        f"{limited_server.base_url}/v1/studies",
        headers={"Origin": "https://ui.example", "Access-Control-Request-Method": "GET"},
    )
    assert allowed.headers.get("access-control-allow-origin") == "https://ui.example"


def test_no_cors_unless_configured(api_server: RunningServer) -> None:
    with api_server.client() as client:
        response = client.get("/v1/studies", headers={"Origin": "https://elsewhere.example"})
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_token_cli_goes_through_the_running_service(api_server: RunningServer, tmp_path: Path) -> None:
    # Run from another directory with another data dir: the token must still land where the server is.
    env = {"PATH": os.environ.get("PATH", ""), "HPS_DATA_DIR": str(tmp_path), "HPS_TOKEN": ADMIN_TOKEN}
    project = unique("cli")

    def hps(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "hps.cli", "token", *args, "--api", api_server.base_url]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)

    created = hps("create", "--name", "gpu-box", "--scope", "read", "--project", project)
    assert created.returncode == 0, created.stderr
    assert f"through the service at {api_server.base_url}" in created.stderr
    token_id, secret = created.stdout.split()[1], created.stdout.strip().splitlines()[-1]
    with api_server.client(secret) as client:
        assert client.get("/v1/studies").status_code == 200  # the running server knows it
    listed = hps("list", "--project", project)
    assert token_id in listed.stdout and "read" in listed.stdout and secret not in listed.stdout
    assert hps("revoke", token_id).returncode == 0
    assert "revoked" in hps("list", "--project", project).stdout
    assert not (tmp_path / "hps.db").exists()  # nothing written beside the command


def test_token_cli_writes_a_database_only_when_asked_and_says_which(tmp_path: Path) -> None:
    env = {"PATH": os.environ.get("PATH", ""), "HPS_DATA_DIR": str(tmp_path)}

    def hps(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "hps.cli", "token", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    nobody = f"http://127.0.0.1:{free_port()}"
    refused = hps(
        "create", "--name", "x", "--scope", "read", "--project", "p", "--api", nobody, "--token", "t"
    )
    assert refused.returncode == 3 and f"no answer from {nobody}" in refused.stderr
    assert not (tmp_path / "hps.db").exists()
    created = hps("create", "--name", "gpu-box", "--scope", "worker", "--project", "vision", "--database")
    assert created.returncode == 0, created.stderr
    assert f"SQLite file {tmp_path.resolve() / 'hps.db'}" in created.stderr
    token_id = created.stdout.split()[1]
    secret = created.stdout.strip().splitlines()[-1]
    assert secret.startswith("hps_")
    listed = hps("list", "--database")
    assert token_id in listed.stdout and "worker" in listed.stdout and secret not in listed.stdout
    assert hps("revoke", token_id, "--database").returncode == 0
    assert "revoked" in hps("list", "--database").stdout
    bad = hps("create", "--name", "bad", "--scope", "read", "--database")
    assert bad.returncode == 2 and "project" in bad.stderr
