"""Durations as the CLI writes them (`"500ms"`, `"30s"`, `"5m"`), or seconds as a number."""

from __future__ import annotations

import re
from typing import Union

__all__ = ["Duration", "to_seconds", "to_text"]

Duration = Union[str, int, float]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$")


def to_seconds(value: Duration, what: str = "timeout") -> float:
    """Seconds in `value`; a bad value is a `ValueError` naming `what` and the accepted forms."""
    if isinstance(value, bool):
        raise ValueError(f"invalid `{what}`: {value!r}; expected seconds or a string like \"500ms\", \"30s\", \"5m\"")
    if isinstance(value, (int, float)):
        if value <= 0:
            raise ValueError(f"invalid `{what}`: {value!r}; it must be positive")
        return float(value)
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if match and float(match.group(1)) > 0:
            return float(match.group(1)) * _UNITS[match.group(2)]
    raise ValueError(f"invalid `{what}`: {value!r}; expected seconds or a string like \"500ms\", \"30s\", \"5m\"")


def to_text(value: Duration, what: str = "timeout") -> str:
    """The worker's form of `value` (whole milliseconds), after checking it."""
    return f"{max(1, round(to_seconds(value, what) * 1000))}ms"
