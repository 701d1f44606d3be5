"""Opaque cursors for paged lists: a client passes back what it was given, nothing more."""

from __future__ import annotations

import base64
import binascii

from service.errors import InvalidInput

MAX_PAGE = 200
DEFAULT_PAGE = 50


def encode_cursor(position: int | None) -> str | None:
    """The cursor for the page after ``position`` (None: there is no next page)."""
    if position is None:
        return None
    return base64.urlsafe_b64encode(f"p:{position}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int | None:
    """The position a cursor stands for; a cursor hps did not make is a 422 on ``cursor``."""
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        prefix, _, number = text.partition(":")
        if prefix != "p" or not number.isdigit():
            raise ValueError(text)
        return int(number)
    except (ValueError, binascii.Error, UnicodeError):
        raise InvalidInput("cursor: not a cursor this API returned", field="cursor") from None
