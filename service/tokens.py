"""API tokens: created with scopes and a project, stored hashed, shown once, revocable.

Scopes: ``read`` (see studies, trials, the catalog), ``write`` (create, cancel and delete studies and drive
them with ask/report/complete; includes ``read``), ``worker`` (claim, report, heartbeat and complete
trials, nothing else), ``metrics`` (scrape ``GET /metrics``, nothing else) and ``admin`` (everything,
tokens included). A token sees one project's studies; only admin and metrics-only tokens may be
project-less, which means they see every project (metrics tokens must be: the figures cover every project).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from hps.server.clock import utcnow
from hps.server.errors import InvalidInput, NotFound
from hps.server.store.database import Database
from hps.server.store.tokens import TokenRecord, TokenRepository

SCOPES = ("admin", "write", "read", "worker", "metrics")
# What each scope grants.
GRANTS: dict[str, frozenset[str]] = {
    "admin": frozenset(SCOPES),
    "write": frozenset({"write", "read"}),
    "read": frozenset({"read"}),
    "worker": frozenset({"worker"}),
    "metrics": frozenset({"metrics"}),
}
TOKEN_PREFIX = "hps_"
PROJECT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"
# How long a checked token is trusted without asking the database again: revocation takes effect
# within this many seconds on every replica.
CACHE_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: what they may do, and which project they see (None: every project)."""

    name: str
    grants: frozenset[str]
    project: str | None
    token_id: str | None = None

    def may(self, *scopes: str) -> bool:
        """True when the caller holds any of ``scopes``."""
        return any(scope in self.grants for scope in scopes)

    @property
    def is_admin(self) -> bool:
        """Admins may do anything, including mutating through the dashboard."""
        return "admin" in self.grants


@dataclass(frozen=True, slots=True)
class NewToken:
    """A freshly created token; ``secret`` is shown this once and never stored."""

    record: TokenRecord
    secret: str


def grants_of(scopes: tuple[str, ...]) -> frozenset[str]:
    """Everything the scopes grant together."""
    return frozenset().union(*(GRANTS[scope] for scope in scopes))


def hash_secret(secret: str) -> str:
    """Tokens are 256-bit random strings, so a plain SHA-256 is a safe way to store them."""
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(
    db: Database, *, name: str, scopes: list[str], project: str | None, now: datetime | None = None
) -> NewToken:
    """Create a token; a token without ``admin`` must be bound to a project, unless it holds ``metrics``
    only, which must not be."""
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        raise InvalidInput(f"scopes must be some of {', '.join(SCOPES)}; got {scopes}", field="scopes")
    if "metrics" in scopes and project is not None:
        raise InvalidInput(
            "a metrics token sees every project's figures; create it without a project", field="project"
        )
    if project is None and "admin" not in scopes and set(scopes) != {"metrics"}:
        raise InvalidInput(
            "only an admin or a metrics-only token may see every project; give a project", field="project"
        )
    token_id = secrets.token_hex(6)
    secret = f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    record = TokenRecord(
        id=token_id,
        name=name,
        scopes=tuple(dict.fromkeys(scopes)),
        project=project,
        created_at=now or utcnow(),
        revoked_at=None,
    )
    db.run(lambda session: TokenRepository(session).add(record, hash_secret(secret)), write=True)
    return NewToken(record, secret)


def list_tokens(db: Database, project: str | None) -> list[TokenRecord]:
    """Tokens of a project (every token when ``project`` is None)."""
    return db.run(lambda session: TokenRepository(session).all(project), write=False)


def revoke_token(
    db: Database,
    token_id: str,
    project: str | None,
    now: datetime | None = None,
    *,
    cache: TokenCache | None = None,
) -> TokenRecord:
    """Revoke a token the caller can see; revoking twice is harmless."""
    moment = now or utcnow()

    def work(session: Session) -> TokenRecord:
        tokens = TokenRepository(session)
        found = tokens.get(token_id)
        if found is None or (project is not None and found.project != project):
            raise NotFound(f"no token {token_id!r}", field="token_id")
        tokens.revoke(token_id, moment)
        revoked = tokens.get(token_id)
        assert revoked is not None
        return revoked

    revoked = db.run(work, write=True)
    if cache is not None:
        cache.forget(secret_prefix(token_id))  # this process at once; the others within CACHE_SECONDS
    return revoked


def secret_prefix(token_id: str) -> str:
    """The cache key family of a token id (see ``TokenCache.forget``)."""
    return f"{TOKEN_PREFIX}{token_id}_"


class TokenCache:
    """Checked tokens, trusted for ``CACHE_SECONDS``: most requests need no token query. One per app (the
    API's hub holds it), so two apps in one process never share what they trusted."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, Principal | None]] = {}
        self._lock = threading.Lock()

    def get(self, secret: str) -> tuple[bool, Principal | None]:
        """(found, principal) — a cached miss is (True, None)."""
        with self._lock:
            entry = self._entries.get(secret)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, secret: str, principal: Principal | None) -> None:
        """Remember the answer for a while (bounded: the cache is cleared when it grows large)."""
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[secret] = (time.monotonic() + CACHE_SECONDS, principal)

    def forget(self, prefix: str) -> None:
        """Drop every cached secret of one token, so this process sees a revocation at once."""
        with self._lock:
            for secret in [s for s in self._entries if s.startswith(prefix)]:
                del self._entries[secret]


def principal_for(db: Database, cache: TokenCache, secret: str) -> Principal | None:
    """The principal a presented token stands for, or None when it is unknown or revoked."""
    found, principal = cache.get(secret)
    if found:
        return principal
    record = db.run(lambda session: TokenRepository(session).by_hash(hash_secret(secret)), write=False)
    if record is None or record.revoked_at is not None:
        principal = None
    else:
        principal = Principal(
            name=record.name, grants=grants_of(record.scopes), project=record.project, token_id=record.id
        )
    cache.put(secret, principal)
    return principal
