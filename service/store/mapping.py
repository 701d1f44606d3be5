"""Rows to records and back, by field name: a record (a frozen dataclass the use cases see) names its
fields as its row's columns, so each entity's fields are written once in its table and once in its record,
never again in a mapper."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

Record = TypeVar("Record")


def record_of(row: object, record: type[Record]) -> Record:
    """The ``record`` type built from the same-named attributes of ``row``."""
    return record(**{field.name: getattr(row, field.name) for field in fields(record)})  # type: ignore[arg-type]


def values_of(record: object, *, without: tuple[str, ...] = ()) -> dict[str, Any]:
    """A record's fields as column values (``without``: the ones the database fills in, such as ``id``)."""
    return {field.name: getattr(record, field.name) for field in fields(record) if field.name not in without}  # type: ignore[arg-type]
