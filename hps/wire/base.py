"""What every answer shares: the base of response bodies, the error body, and health answers."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class Out(BaseModel):
    """Response bodies: documented, no extra fields."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(Out):
    """Every error answer."""

    error: str = Field(description="A stable, machine-readable code.")
    detail: str = Field(description="What is wrong, for a person.")
    field: str | None = Field(description="The request field at fault, dotted, or null.")


class Health(Out):
    """Liveness or readiness."""

    status: str
    detail: str | None = None
