"""How workers wait out a failing service, against a real HTTP server that answers every request with one
status: an outage (503) is waited out for long; a server error (500), which may be that one request's bug
and never end, is retried for a bounded while; a refusal (4xx) is not retried at all."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hps.client.backoff import Backoff, call_with_retry
from hps.client.http import HpsClient, HpsError

FAST = Backoff(base=0.05, cap=0.2)


@contextmanager
def answering(status: int) -> Iterator[tuple[str, list[float]]]:
    """A server on a free port that answers ``status`` to everything; yields its URL and the request times."""
    seen: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(time.monotonic())
            body = json.dumps({"error": "x", "detail": "always", "field": None}).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def complete_against(url: str, **limits: float) -> tuple[HpsError, float]:
    with HpsClient(url, "token") as client:
        started = time.monotonic()
        with pytest.raises(HpsError) as raised:
            call_with_retry(
                lambda: client.complete(1, 0, state="failed", reason="boom"), backoff=FAST, **limits
            )
    return raised.value, time.monotonic() - started


def test_a_server_error_is_retried_for_a_bounded_while_then_raised() -> None:
    with answering(500) as (url, seen):
        error, took = complete_against(url, give_up_after=60.0, give_up_on_server_errors_after=1.0)
    assert error.status == 500
    assert 0.5 <= took < 5.0 and len(seen) >= 3


def test_an_outage_is_waited_out_for_longer_than_a_server_error() -> None:
    with answering(503) as (url, seen):
        error, took = complete_against(url, give_up_after=2.5, give_up_on_server_errors_after=0.5)
    assert error.status == 503 and took >= 2.0 and len(seen) >= 5


def test_a_refusal_is_not_retried() -> None:
    with answering(422) as (url, seen):
        error, _ = complete_against(url, give_up_after=60.0)
    assert error.status == 422 and len(seen) == 1
