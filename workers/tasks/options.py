"""Reading a registered model's or dataset's ``options`` (the operator's registry file): each value is
checked, and a wrong one is a ValueError that names the option."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def str_option(options: Mapping[str, Any], name: str, default: str) -> str:
    """A non-empty string option."""
    value = options.get(name, default)
    if not isinstance(value, str) or not value:
        raise ValueError(f"option {name!r} must be a non-empty string, not {value!r}")
    return value


def int_option(options: Mapping[str, Any], name: str, default: int) -> int:
    """A positive integer option (booleans are not integers here)."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"option {name!r} must be a positive integer, not {value!r}")
    return value


def fraction_option(options: Mapping[str, Any], name: str, default: float) -> float:
    """A number strictly between 0 and 1."""
    value = options.get(name, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ValueError(f"option {name!r} must be a number between 0 and 1, not {value!r}")
    return float(value)
