"""Limits: body size (413, before any route runs) and request rates (429, checked where the caller is
authenticated, because only then is it known whose request it is)."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hps.server.api.errors import error_body
from hps.server.errors import RateLimited


async def _answer(send: Send, status: int, code: str, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps(error_body(code, detail, None)).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuse request bodies over ``max_bytes`` with 413, whether or not they declare a length."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._refuse(send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, send: Send) -> None:
        detail = f"the request body is larger than {self.max_bytes} bytes"
        await _answer(send, 413, "too_large", detail, {})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


@dataclass
class _Bucket:
    tokens: float
    updated: float


class TokenBuckets:
    """Token buckets by key: ``rate`` requests per second on average, bursts up to ``burst``. A rate of 0
    turns the limit off. Thread safe; memory is bounded (the buckets are dropped when too many keys)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """Take one request from the key's bucket; returns 0, or the seconds until one is free."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            if len(self._buckets) > 100_000:
                self._buckets.clear()  # bounded memory under a flood of distinct keys
            bucket = self._buckets.setdefault(key, _Bucket(float(self.burst), now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


class RateLimits:
    """The two limits every authenticated route meets (``hps.server.api.auth``):

    - a caller who authenticated is limited per *credential* (the token's id, or the bootstrap admin),
      however the token is sent (bearer, or basic auth with any user name);
    - a failed authentication is counted against the *client address*, on a stricter budget, so that
      guessing tokens is slow whichever tokens are guessed.
    """

    def __init__(self, rate: float, burst: int, failure_rate: float, failure_burst: int) -> None:
        self.callers = TokenBuckets(rate, burst)
        self.failures = TokenBuckets(failure_rate, failure_burst)

    def admit(self, credential: str) -> None:
        """Count a request of an authenticated caller; :class:`RateLimited` when over the limit."""
        wait = self.callers.take(f"credential:{credential}")
        if wait > 0:
            raise RateLimited("too many requests for this token; slow down", wait)

    def failed(self, address: str) -> None:
        """Count a failed authentication from ``address``; :class:`RateLimited` when over the limit."""
        wait = self.failures.take(f"address:{address}")
        if wait > 0:
            raise RateLimited("too many failed authentications from this address; slow down", wait)
