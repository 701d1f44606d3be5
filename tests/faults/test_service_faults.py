"""The service restarting, the database going away, crowds racing: answers stay 2xx, 409 or 503 (never a
500) and every count stays exact. Real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import multiprocessing
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
from scenario import assert_exact_budget, create_study, study, trials, wait_until
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from harness.api import ask_once
from harness.databases import postgres_database, sqlite_url
from harness.ports import free_port
from harness.processes import ServerProcess
from harness.proxy import TcpProxy
from harness.servers import ADMIN_TOKEN, RunningServer, ServerAt, ServerFactory
from harness.workers import start_worker


def test_restarting_the_api_mid_study_loses_and_duplicates_nothing(make_server: ServerFactory) -> None:
    port = free_port()
    slow = {"HPS_LEASE_SECONDS": "30"}
    server = make_server(port=port, **slow)
    study_id = create_study(server, n_trials=8, epochs=20)
    workers = [start_worker(server, f"steady-{i}") for i in range(2)]
    try:
        wait_until(lambda: study(server, study_id)["progress"]["complete"] >= 2, 60, "two trials")
        server.process.stop()
        time.sleep(2.0)  # the workers see the API vanish and back off
        server = make_server(port=port, **slow)
        for worker in workers:
            assert worker.wait(timeout=180) == 0, worker.output()
    finally:
        for worker in workers:
            worker.stop()
    final = assert_exact_budget(server, study_id, 8)
    assert final["progress"]["complete"] == 8
    assert all(t["attempt"] == 1 for t in trials(server, study_id))


def statuses_during(server: RunningServer, study_id: int, seconds: float) -> set[int]:
    """Every status the API answered to a read and an ask while ``seconds`` pass."""
    seen: set[int] = set()
    deadline = time.monotonic() + seconds
    with server.client() as client:
        while time.monotonic() < deadline:
            for method, path in (
                ("GET", f"/v1/studies/{study_id}"),
                ("POST", f"/v1/studies/{study_id}/trials"),
            ):
                response = client.request(method, path)
                seen.add(response.status_code)
                if response.status_code == 503:
                    assert response.headers["retry-after"].isdigit()
                    assert response.json()["error"] == "unavailable"
            time.sleep(0.2)
    return seen


def test_postgresql_outage_answers_503_then_recovers(server_at: ServerAt) -> None:
    with postgres_database() as database_url:
        _outage_through_a_proxy(server_at, database_url)


def _outage_through_a_proxy(server_at: ServerAt, database_url: str) -> None:
    proxy = TcpProxy("127.0.0.1", make_url(database_url).port or 5432)
    proxied = make_url(database_url).set(port=proxy.port).render_as_string(hide_password=False)
    try:
        # At debug level, where SQLAlchemy logs every statement it runs: the audit below must hold even so.
        server = server_at(proxied, HPS_LOG_LEVEL="debug")
        study_id = create_study(server, n_trials=6, epochs=10)
        worker_token, unused_token = (_token(server, "worker"), _token(server, "read"))
        worker = start_worker(server, "patient", env={"HPS_TOKEN": worker_token})
        try:
            wait_until(lambda: study(server, study_id)["progress"]["complete"] >= 1, 60, "a trial")
            proxy.cut()
            during = statuses_during(server, study_id, 3.0)
            # Token lookups that meet the outage: a token the server never saw, and a guessed one.
            for token in (unused_token, "hps_0123456789ab_guessed"):
                during.add(httpx.get(f"{server.base_url}/v1/studies", headers=_bearer(token)).status_code)
            ready = httpx.get(f"{server.base_url}/readyz", timeout=10)
            proxy.restore()
            assert worker.wait(timeout=180) == 0, worker.output()
        finally:
            worker.stop()
        assert 503 in during and 500 not in during, during
        assert ready.status_code == 503 and ready.headers["retry-after"]
        assert_exact_budget(server, study_id, 6)
        log = server.process.output()
        assert "500 Internal Server Error" not in log
        _assert_no_token_material(log, [worker_token, unused_token, "hps_0123456789ab_guessed"])
    finally:
        proxy.cut()


def _token(server: RunningServer, scope: str) -> str:
    with server.client() as admin:
        made = admin.post(
            "/v1/tokens", json={"name": f"audit-{scope}", "scopes": [scope], "project": "default"}
        )
    assert made.status_code == 201, made.text
    return str(made.json()["token"])


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _assert_no_token_material(log: str, tokens: list[str]) -> None:
    """The audit: no secret, no stored hash of one, and no SQL parameters at all in the server's log."""
    for token in tokens:
        # hps_<12-hex id>_<secret>: the secret is URL-safe base64 and may itself hold "_".
        secret = token.split("_", 2)[2]
        for material in (token, secret, hashlib.sha256(token.encode()).hexdigest()):
            assert material not in log, f"token material in the server log: {material[:12]}..."
    assert "[parameters:" not in log


def _hold_write_lock(path: str, seconds: float, held: threading.Event) -> None:
    connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    connection.execute("BEGIN EXCLUSIVE")
    held.set()
    time.sleep(seconds)
    connection.execute("ROLLBACK")
    connection.close()


def test_a_locked_sqlite_database_answers_503_not_500(tmp_path: Path, server_at: ServerAt) -> None:
    database_url = sqlite_url(tmp_path)
    server = server_at(database_url, HPS_SQLITE_BUSY_TIMEOUT_SECONDS="0.3")
    study_id = create_study(server, n_trials=4, epochs=10)
    worker = start_worker(server, "patient")
    try:
        wait_until(lambda: study(server, study_id)["progress"]["complete"] >= 1, 60, "a trial")
        held = threading.Event()
        locker = threading.Thread(
            target=_hold_write_lock, args=(make_url(database_url).database, 8.0, held), daemon=True
        )
        locker.start()
        held.wait(10)
        during = statuses_during(server, study_id, 4.0)
        locker.join()
        assert worker.wait(timeout=180) == 0, worker.output()
    finally:
        worker.stop()
    assert 503 in during and 500 not in during, during
    assert_exact_budget(server, study_id, 4)
    assert "500 Internal Server Error" not in server.process.output()


def test_twenty_racing_askers_get_exactly_the_five_trials_left(make_server: ServerFactory) -> None:
    # Leases outlive the test: a reaped lease would (rightly) hand its params out once more.
    server = make_server(HPS_LEASE_SECONDS="300")
    study_id = create_study(server, n_trials=8)
    with server.client() as client:
        for _ in range(3):
            assert client.post(f"/v1/studies/{study_id}/trials").status_code == 201
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    askers = [context.Process(target=ask_once, args=(server.base_url, study_id, results)) for _ in range(20)]
    for asker in askers:
        asker.start()
    for asker in askers:
        asker.join(timeout=180)
    statuses = sorted(results.get(timeout=10) for _ in askers)
    assert statuses == [201] * 5 + [409] * 15
    assert sorted(t["number"] for t in trials(server, study_id)) == list(range(8))


def test_twenty_servers_starting_on_an_empty_database_create_the_schema_once(
    db_kind: str, database_url: str, tmp_path: Path
) -> None:
    if db_kind == "sqlite":
        # `hps serve` migrates SQLite itself: twenty of them race on one empty file.
        env = {
            "HPS_DATABASE_URL": database_url,
            "HPS_ADMIN_TOKEN": ADMIN_TOKEN,
            "HPS_DATA_DIR": str(tmp_path),
        }
        servers = [ServerProcess(env, tmp_path / f"server-{i}.log") for i in range(20)]
        try:
            for server in servers:
                server.wait_ready(timeout=180)
        finally:
            outputs = [server.output() for server in servers]
            for server in servers:
                server.stop()
        assert not [o for o in outputs if "Traceback" in o or "ERROR" in o]
    else:
        # On PostgreSQL migrating is the operator's `hps db upgrade`: twenty of them race.
        env = {"HPS_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin", "HPS_DATA_DIR": str(tmp_path)}
        command = [sys.executable, "-m", "hps.cli", "db", "upgrade"]
        upgrades = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True) for _ in range(20)]
        codes = [(p.wait(timeout=300), p.stderr.read() if p.stderr else "") for p in upgrades]
        assert all(code == 0 for code, _ in codes), codes
    engine = create_engine(database_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM hps_alembic_version")).scalar_one() == 1
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    engine.dispose()
