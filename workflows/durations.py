"""Durations: numbers are seconds; timedelta; "30s"/"24h" and "7 days" strings (decision 1)."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_UNITS = {
    "ms": 0.001,
    "millisecond": 0.001,
    "milliseconds": 0.001,
    "s": 1,
    "sec": 1,
    "secs": 1,
    "second": 1,
    "seconds": 1,
    "m": 60,
    "min": 60,
    "mins": 60,
    "minute": 60,
    "minutes": 60,
    "h": 3600,
    "hr": 3600,
    "hrs": 3600,
    "hour": 3600,
    "hours": 3600,
    "d": 86400,
    "day": 86400,
    "days": 86400,
    "w": 7 * 86400,
    "week": 7 * 86400,
    "weeks": 7 * 86400,
    "month": 30 * 86400,
    "months": 30 * 86400,
    "y": 365 * 86400,
    "year": 365 * 86400,
    "years": 365 * 86400,
}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*$")

MAX_SLEEP_SECONDS = 365 * 86400

ACCEPTED = 'a number of seconds, a timedelta, or a string such as "500ms", "30s", "5m", "24h", "2d", "1w", "7 days"'


def parse_duration(value: object) -> float:
    """Return ``value`` as a number of seconds, or raise ValueError naming it.

    Accepts int/float seconds (not bool), ``timedelta``, and strings of a number followed by
    a unit with or without a space. Negative, NaN and infinite values are rejected.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: expected {ACCEPTED}")
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        unit = match and _UNITS.get(match.group(2).lower())
        if match is None or not unit:
            raise ValueError(f"invalid duration {value!r}: expected {ACCEPTED}")
        seconds = float(match.group(1)) * unit
    else:
        raise ValueError(f"invalid duration {value!r} of type {type(value).__name__}: expected {ACCEPTED}")
    if math.isnan(seconds) or math.isinf(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite number of seconds >= 0")
    return seconds


def parse_bounded(value: object, *, what: str, minimum: float = 0.0, maximum: float = MAX_SLEEP_SECONDS) -> float:
    """``parse_duration`` plus a range check whose message names the value and the limits."""
    seconds = parse_duration(value)
    if seconds < minimum or seconds > maximum:
        raise ValueError(f"invalid {what} {value!r}: must be between {_human(minimum)} and {_human(maximum)}")
    return seconds


def _human(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)} days"
    if seconds >= 1 and seconds == int(seconds):
        return f"{int(seconds)} seconds"
    return f"{seconds:g} seconds"
