"""Limits every request meets before any route runs: body size (413) and a per-token rate (429)."""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.api.errors import error_body

# Liveness, readiness and the OpenAPI document are never limited: orchestrators poll them.
_UNLIMITED = ("/healthz", "/readyz", "/openapi.json", "/docs")


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


class RateLimit:
    """A token bucket per presented credential (or client address without one): ``rate`` requests
    per second on average, bursts up to ``burst``. Over the limit: 429 with ``Retry-After``. Keyed
    before authentication, so guessing tokens is rate limited too."""

    def __init__(self, app: ASGIApp, rate: float, burst: int) -> None:
        self.app = app
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self.rate <= 0 or scope["path"].startswith(_UNLIMITED):
            await self.app(scope, receive, send)
            return
        wait = self._take(_key(scope))
        if wait > 0:
            detail = "too many requests for this token; slow down"
            await _answer(send, 429, "rate_limited", detail, {"Retry-After": str(math.ceil(wait))})
            return
        await self.app(scope, receive, send)

    def _take(self, key: str) -> float:
        """Take one request from the key's bucket; returns 0, or the seconds until one is free."""
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


def _key(scope: Scope) -> str:
    authorization = dict(scope["headers"]).get(b"authorization")
    if authorization:
        return hashlib.sha256(authorization).hexdigest()
    client = scope.get("client")
    return f"address:{client[0] if client else 'unknown'}"
