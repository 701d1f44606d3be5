"""Tokens on the wire (admins): one to create, and tokens as the API shows them (a secret only once)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import ConfigDict, Field

from hps.wire.base import Out
from hps.wire.rules import RequestModel


class TokenIn(RequestModel):
    """A token to create."""

    # Only admin and metrics-only tokens may be project-less, and metrics tokens must be; the schema says
    # so, as validation does.
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {
                    "required": ["project"],
                    "properties": {
                        "project": {"type": "string"},
                        "scopes": {"not": {"contains": {"const": "metrics"}}},
                    },
                },
                {"properties": {"scopes": {"contains": {"const": "admin"}}, "project": {"type": "null"}}},
                {"properties": {"scopes": {"items": {"const": "metrics"}}, "project": {"type": "null"}}},
            ]
        },
    )

    name: str = Field(min_length=1, max_length=128)
    scopes: list[Literal["admin", "write", "read", "worker", "metrics"]] = Field(min_length=1, max_length=5)
    project: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$",
        description="The project the token sees: admin tokens may omit it, metrics tokens must.",
    )


class TokenOut(Out):
    """A token, without its secret."""

    id: str
    name: str
    scopes: list[str]
    project: str | None
    created_at: datetime
    revoked_at: datetime | None


class NewTokenOut(TokenOut):
    """A token just created: ``token`` is the secret, shown this once and never again."""

    token: str


class TokenList(Out):
    """Tokens."""

    items: list[TokenOut]
