"""Durations: numbers are seconds, plus timedelta and short or long strings (decision 1)."""

from datetime import timedelta

import pytest

from workflows.durations import parse_bounded, parse_duration


@pytest.mark.parametrize(
    "value,seconds",
    [
        (2, 2),
        (0.5, 0.5),
        (timedelta(minutes=2), 120),
        ("500ms", 0.5),
        ("30s", 30),
        ("5m", 300),
        ("24h", 86400),
        ("48h", 172800),
        ("2d", 172800),
        ("1w", 604800),
        ("30 seconds", 30),
        ("10 minutes", 600),
        ("1 hour", 3600),
        ("7 days", 604800),
        ("1 week", 604800),
        ("2 months", 5184000),
        ("1 year", 365 * 86400),
    ],
)
def test_accepted_forms(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize(
    "value", ["3 fortnights", "soon", "24 hourz", "", "-5s", "1.2.3s", True, None, [1], -1, float("inf")]
)
def test_anything_else_is_a_value_error_naming_the_value(value):
    with pytest.raises(ValueError) as raised:
        parse_duration(value)
    assert repr(value) in str(raised.value)


def test_bounds_name_the_limits():
    with pytest.raises(ValueError, match="between 1 seconds and 365 days"):
        parse_bounded("500ms", what="wait_for_event timeout", minimum=1)
    with pytest.raises(ValueError, match="366 days"):
        parse_bounded("366 days", what="sleep duration")
