"""Keeping a trial's lease alive: a background thread heartbeats while the trial trains. Used by hps
workers and by the SDK's ``run_trial`` alike."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

from hps.client.backoff import Backoff
from hps.client.http import HpsClient, HpsError
from hps.wire.trials import HeartbeatOut

log = logging.getLogger(__name__)

MIN_INTERVAL_S = 0.2
_OUTAGE_BACKOFF = Backoff(base=0.5, cap=10.0)


class LeaseKeeper:
    """Heartbeats a trial at a third of its remaining lease (or every ``interval_s`` seconds). ``lost`` is
    set when the service says the lease is gone (409); ``stop_requested`` when it says the trial should
    stop; ``beats`` counts the heartbeats the service answered. :meth:`of_range_test` keeps an lr range
    test's lease instead."""

    def __init__(
        self,
        client: HpsClient,
        study_id: int,
        number: int,
        expires_at: datetime,
        *,
        interval_s: float | None = None,
    ) -> None:
        self._expires_at = expires_at
        self._interval_s = interval_s
        self._label = f"trial {study_id}/{number}"
        self._send: Callable[[], HeartbeatOut] = lambda: client.heartbeat(study_id, number)
        self.beats = 0
        self.lost = threading.Event()
        self.stop_requested = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{study_id}-{number}", daemon=True)

    @classmethod
    def of_range_test(
        cls, client: HpsClient, study_id: int, optimizer: str, expires_at: datetime
    ) -> LeaseKeeper:
        """A keeper of the lease of the study's lr range test of ``optimizer``."""
        keeper = cls(client, study_id, -1, expires_at)
        keeper._label = f"lr range test {study_id}/{optimizer}"
        keeper._send = lambda: client.heartbeat_range_test(study_id, optimizer)
        return keeper

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> Self:
        """Start heartbeating (``with`` does this)."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop heartbeating and wait for the thread (``with`` does this); stopping twice is harmless."""
        self._done.set()
        self._thread.join(timeout=10)

    @property
    def expires_at(self) -> datetime:
        """When the lease runs out, as last heard."""
        return self._expires_at

    def _interval(self) -> float:
        if self._interval_s is not None:
            return self._interval_s
        remaining = (self._expires_at - datetime.now(UTC)).total_seconds()
        return max(MIN_INTERVAL_S, remaining / 3)

    def _beat(self) -> None:
        failures = 0
        wait = self._interval()
        while not self._done.wait(wait):
            try:
                answer = self._send()
            except HpsError as error:
                if error.status == 409:
                    log.warning("%s: lease lost (%s)", self._label, error)
                    self.lost.set()
                    return
                # An outage: keep trying with backoff; the lease may survive a short one, and if it
                # does not, the service says so (409) once it is back.
                log.info("heartbeat of %s failed: %s", self._label, error)
                wait = _OUTAGE_BACKOFF.delay(failures) + MIN_INTERVAL_S
                failures += 1
                continue
            failures = 0
            self.beats += 1
            self._expires_at = answer.lease.expires_at
            wait = self._interval()
            if answer.should_stop:
                self.stop_requested.set()
