"""Waiting out outages: capped exponential backoff with full jitter, and API calls that retry while the
service is down or answers 503 (jitter keeps a fleet of workers from retrying in lockstep)."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from hps.client.http import HpsError

T = TypeVar("T")

# No answer at all (status 0), "later" (429, 503), a proxy in between failing (502, 504), or a server
# bug (500): none of them says the request was wrong, so a worker waits and tries again.
TRANSIENT_STATUSES = frozenset({0, 429, 500, 502, 503, 504})
# An outage ends; a server error on one request may be that request's own bug and may never end, so
# it is retried for a shorter while before the call gives up.
SERVER_ERROR = 500
SERVER_ERROR_PATIENCE_S = 120.0


@dataclass(frozen=True)
class Backoff:
    """Delays of ``base * 2**attempt`` seconds, capped at ``cap``, each drawn uniformly below that."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """The jittered delay before retry number ``attempt`` (0-based)."""
        return random.uniform(0, min(self.cap, self.base * 2 ** min(attempt, 30)))


def call_with_retry(
    call: Callable[[], T],
    *,
    backoff: Backoff = Backoff(),
    give_up_after: float = 600.0,
    give_up_on_server_errors_after: float = SERVER_ERROR_PATIENCE_S,
    stop: threading.Event | None = None,
    on_retry: Callable[[HpsError, float], None] | None = None,
) -> T:
    """Call the API, retrying transient failures until ``give_up_after`` seconds have passed (server
    errors, 500: ``give_up_on_server_errors_after``) or ``stop`` is set; other errors (404, 409, 422, …)
    are raised at once. The last error is raised when the call gives up."""
    started = time.monotonic()
    deadline = started + give_up_after
    server_error_deadline = started + min(give_up_after, give_up_on_server_errors_after)
    attempt = 0
    while True:
        try:
            return call()
        except HpsError as error:
            if error.status not in TRANSIENT_STATUSES:
                raise
            wait = max(backoff.delay(attempt), error.retry_after or 0.0)
            until = server_error_deadline if error.status == SERVER_ERROR else deadline
            if time.monotonic() + wait > until or (stop is not None and stop.is_set()):
                raise
            if on_retry is not None:
                on_retry(error, wait)
            if stop is not None:
                stop.wait(wait)
            else:
                time.sleep(wait)
            attempt += 1
