"""The rules every value a request carries must meet, whichever field (or depth of a JSON field) it is in.

- Text holds no NUL character and no lone surrogate: PostgreSQL's text types cannot store NUL, and a lone
  surrogate cannot be encoded as UTF-8 (to store it, or to send it back). SQLite would store both, so
  without this rule the same request would be a 201 on one database and a failure on the other.
- Floats are finite, except in the fields a model names in ``non_finite_fields`` (a learning-curve
  point may be NaN: that is how a diverging run reports).

Numbers are bounded by each field's own limits (every integer field of a request declares one, within
±2^53, which JSON readers and Optuna's float columns hold exactly); free-form JSON such as trial attrs is
stored as JSON and keeps any number exactly.

Request models inherit :class:`RequestModel` (or :class:`Frozen`), which checks its whole tree of values
after pydantic has parsed it. A broken rule is an :class:`InputRuleError` naming the dotted path of the
value; the API answers it with 422. ``hps.server.api.openapi`` writes the text rule into the published
schemas.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, model_validator


class InputRuleError(ValueError):
    """A value broke one of the rules above. ``field`` is the dotted path below the model that raised."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(field, message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


class RequestModel(BaseModel):
    """Base of every request body: unknown fields are errors, and every value meets the rules above."""

    model_config = ConfigDict(extra="forbid")

    non_finite_fields: ClassVar[frozenset[str]] = frozenset()

    @model_validator(mode="after")
    def _check_values(self) -> Self:
        for name in type(self).model_fields:
            check_value(getattr(self, name), name, allow_non_finite=name in self.non_finite_fields)
        return self


class Frozen(RequestModel):
    """Immutable, strict models: unknown fields are errors, not silently dropped, and every value meets
    the input rules (this module)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def check_text(text: str, path: str) -> None:
    """Raise :class:`InputRuleError` when ``text`` holds a NUL or a lone surrogate."""
    if "\x00" in text:
        raise InputRuleError(path, f"{path}: text must not contain the NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = ascii(text[exc.start])
        raise InputRuleError(
            path, f"{path}: text holds a lone surrogate {bad}, which is not Unicode"
        ) from None


def sendable_text(text: str, limit: int) -> str:
    """``text`` made to meet the text rule (a NUL or a lone surrogate is written as its escape) and cut to
    ``limit`` characters: for free text a client builds from what it caught, such as an exception's
    message, which would otherwise be refused with the result it describes."""
    escaped = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return escaped[:limit]


def check_value(value: Any, path: str, *, allow_non_finite: bool = False) -> None:
    """Check ``value`` and everything inside it (dict keys included); raise :class:`InputRuleError`."""
    if isinstance(value, RequestModel):
        return  # it checked its own values when it was built
    if isinstance(value, str):
        check_text(value, path)
    elif isinstance(value, float):
        if not allow_non_finite and not math.isfinite(value):
            raise InputRuleError(path, f"{path}: must be a finite number, got {value}")
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            check_value(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, Mapping):
        for key, item in value.items():
            key_path = f"{path}.{_path_part(key)}"
            if isinstance(key, str):
                check_text(key, key_path)
            check_value(item, key_path)
    elif isinstance(value, list | tuple | set | frozenset):
        for index, item in enumerate(value):
            check_value(item, f"{path}.{index}")


def _path_part(key: object) -> str:
    """A key as it may appear in a path that goes back to the client: never the bad characters themselves."""
    text = str(key)
    return ascii(text)[1:-1] if "\x00" in text or not text.isprintable() else text
