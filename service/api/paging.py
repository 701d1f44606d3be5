"""Cursors for paged lists: the position after which the next page starts, as digits."""

from __future__ import annotations

from hps.server.api.params import MAX_ID

MAX_PAGE = 200
DEFAULT_PAGE = 50
# Any cursor matching this is meaningful (a page after that position), so a client can never send a
# well-formed cursor the API rejects.
CURSOR_PATTERN = r"^[0-9]{1,18}$"


def encode_cursor(position: int | None) -> str | None:
    """The cursor for the page after ``position`` (None: there is no next page)."""
    return None if position is None else str(position)


def cursor_before(cursor: str | None) -> int | None:
    """The bound of a newest-first page (ids below it), or None for no bound. Ids are 32-bit, so a
    cursor beyond the largest id bounds nothing: it never reaches the database, whose integer column
    could not compare with it."""
    if cursor is None or int(cursor) > MAX_ID:
        return None
    return int(cursor)


def cursor_after(cursor: str | None) -> int | None:
    """The bound of an oldest-first page (numbers above it); beyond the largest number, the largest."""
    return None if cursor is None else min(int(cursor), MAX_ID)
