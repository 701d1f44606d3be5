"""Cursors for paged lists: the position after which the next page starts, as digits."""

from __future__ import annotations

MAX_PAGE = 200
DEFAULT_PAGE = 50
# Any cursor matching this is meaningful (a page after that position), so a client can never send a
# well-formed cursor the API rejects.
CURSOR_PATTERN = r"^[0-9]{1,18}$"


def encode_cursor(position: int | None) -> str | None:
    """The cursor for the page after ``position`` (None: there is no next page)."""
    return None if position is None else str(position)


def decode_cursor(cursor: str | None) -> int | None:
    """The position a cursor stands for (the query parameter's pattern already checked it)."""
    return None if cursor is None else int(cursor)
