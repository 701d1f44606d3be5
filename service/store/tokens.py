"""Repository of ``hps_tokens``. All SQL about tokens lives here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from hps.server.store.models import TokenRow


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as stored: never its secret, only the secret's hash."""

    id: str
    name: str
    scopes: tuple[str, ...]
    project: str | None
    created_at: datetime
    revoked_at: datetime | None


def _record(row: TokenRow) -> TokenRecord:
    return TokenRecord(
        id=row.id,
        name=row.name,
        scopes=tuple(row.scopes),
        project=row.project,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )


class TokenRepository:
    """``hps_tokens`` within one unit of work."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def add(self, token: TokenRecord, secret_hash: str) -> None:
        """Store a new token."""
        self.session.add(
            TokenRow(
                id=token.id,
                name=token.name,
                secret_hash=secret_hash,
                scopes=list(token.scopes),
                project=token.project,
                created_at=token.created_at,
                revoked_at=None,
            )
        )
        self.session.flush()

    def by_hash(self, secret_hash: str) -> TokenRecord | None:
        """The token whose secret hashes to ``secret_hash``, revoked or not."""
        row = self.session.execute(
            select(TokenRow).where(TokenRow.secret_hash == secret_hash)
        ).scalar_one_or_none()
        return None if row is None else _record(row)

    def get(self, token_id: str) -> TokenRecord | None:
        """One token by id."""
        row = self.session.get(TokenRow, token_id)
        return None if row is None else _record(row)

    def all(self, project: str | None) -> list[TokenRecord]:
        """Every token (of one project, unless ``project`` is None), oldest first."""
        query = select(TokenRow).order_by(TokenRow.created_at, TokenRow.id)
        if project is not None:
            query = query.where(TokenRow.project == project)
        return [_record(row) for row in self.session.execute(query).scalars()]

    def revoke(self, token_id: str, now: datetime) -> None:
        """Mark a token revoked (it stays listed, and can never authenticate again)."""
        self.session.execute(
            update(TokenRow)
            .where(TokenRow.id == token_id, TokenRow.revoked_at.is_(None))
            .values(revoked_at=now)
        )
