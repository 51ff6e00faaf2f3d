"""Values that cross a step boundary round-trip exactly, or are refused with a clear error."""

import uuid
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from workflows.errors import NotSerialisable, ValueTooLarge
from workflows.values import TAG, decode, encode, encode_limited, freeze, roundtrip

SPECIAL = {
    "bytes": b"\x00\xffdata",
    "aware": datetime(2024, 2, 29, 13, 45, 30, 123456, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2020, 1, 2, 3, 4, 5),
    "date": date(2024, 2, 29),
    "decimal": Decimal("12.3400"),
    "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "tuple": (1, "two"),
    "nested": [b"x", {"when": date(1999, 12, 31)}],
    "json": {"text": "héllo ✓", "int": 7, "float": 1.5, "none": None, "list": [1, [2]]},
}


def test_special_types_round_trip_equal_and_of_the_same_type():
    back = roundtrip(SPECIAL)
    assert back == SPECIAL
    for key, value in SPECIAL.items():
        assert type(back[key]) is type(value), key
    assert str(back["decimal"]) == "12.3400"
    assert back["aware"].utcoffset() == timedelta(hours=2)


def test_a_user_dict_that_looks_like_a_tagged_value_stays_a_dict():
    tricky = {TAG: "bytes", "v": "AA=="}
    assert roundtrip(tricky) == tricky
    assert roundtrip([tricky]) == [tricky]


@pytest.mark.parametrize("bad", [{1, 2}, object(), float("nan"), {1: "int key"}, lambda: 1])
def test_values_outside_the_supported_types_are_refused(bad):
    with pytest.raises(NotSerialisable):
        encode(bad)


def test_circular_references_are_refused():
    loop = []
    loop.append(loop)
    with pytest.raises(NotSerialisable, match="circular"):
        encode(loop)


def test_the_size_limit_counts_utf8_bytes_and_names_the_limit():
    encode_limited("é" * 10, what="params", limit=22)
    with pytest.raises(ValueTooLarge, match="params is 23 bytes when stored; the limit is 22 bytes"):
        encode_limited("é" * 10 + "x", what="params", limit=22)


def test_frozen_payloads_refuse_mutation_at_every_depth():
    payload = freeze(decode(encode({"a": [1, {"b": 2}]})))
    with pytest.raises(TypeError, match="read-only"):
        payload["a"] = 1
    with pytest.raises(TypeError):
        payload["a"].append(3)
    with pytest.raises(TypeError):
        payload["a"][1]["b"] = 3
    assert payload == {"a": [1, {"b": 2}]}
