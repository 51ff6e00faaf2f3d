"""How values cross a step boundary: JSON plus exact round-trips of a few Python types.

Step results, params, event payloads and run output are stored as JSON text (project
decision 6). ``bytes``, ``datetime``, ``date``, ``Decimal``, ``UUID`` and ``tuple`` are
stored as tagged objects ``{"$wf": <type>, "v": <text>}`` so that a replayed value is equal
to, and of the same type as, the first one. A user dict that happens to contain the tag key
is wrapped as ``{"$wf": "dict", "v": {...}}`` so it can never be mistaken for a tagged value.
Decoding walks top-down for the same reason.
"""

from __future__ import annotations

import base64
import json
import math
import uuid
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Any, NoReturn

from workflows.errors import NotSerialisable, ValueTooLarge

TAG = "$wf"
MAX_DEPTH = 200

# Extra storable types: class -> (tag, to_text, from_text). The engine registers
# InstanceHandle, so a step can return the child instance it created.
_EXTRA_TYPES: dict[type, tuple[str, Callable[[Any], str]]] = {}
_EXTRA_TAGS: dict[str, Callable[[str], Any]] = {}


def register_type(cls: type, tag: str, to_text: Callable[[Any], str], from_text: Callable[[str], Any]) -> None:
    _EXTRA_TYPES[cls] = (tag, to_text)
    _EXTRA_TAGS[tag] = from_text


def encode(value: Any, *, what: str = "value") -> str:
    """The stored (JSON text) form of ``value``; raises NotSerialisable naming what failed."""
    return _encoded(value, what)[0]


def _encoded(value: Any, what: str) -> tuple[str, int]:
    """The stored text and its size in UTF-8 bytes."""
    try:
        tree = _to_json(value, 0, set())
    except RecursionError:
        raise NotSerialisable(f"{what} is nested too deeply to be stored") from None
    text = json.dumps(tree, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text, len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        bad = text[exc.start : exc.end].encode("unicode_escape").decode("ascii")
        raise NotSerialisable(
            f"{what} contains {bad}, half of a UTF-16 surrogate pair, which is not text; send valid Unicode"
        ) from None


def encode_limited(value: Any, *, what: str, limit: int) -> str:
    """``encode`` plus the size limit, measured on the UTF-8 bytes of the stored form."""
    text, size = _encoded(value, what)
    if size > limit:
        raise ValueTooLarge(f"{what} is {size} bytes when stored; the limit is {limit} bytes")
    return text


def decode(text: str | None) -> Any:
    if text is None:
        return None
    return _from_json(json.loads(text))


def roundtrip(value: Any, *, what: str = "value") -> Any:
    return decode(encode(value, what=what))


def _to_json(value: Any, depth: int, stack: set[int]) -> Any:
    if value is None or isinstance(value, (bool, str, int)):
        return value
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise NotSerialisable(f"{value!r} is not a finite number and cannot be stored as JSON")
        return value
    if depth > MAX_DEPTH:
        raise NotSerialisable(f"value is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, dict):
        if id(value) in stack:
            raise NotSerialisable("value contains a circular reference")
        stack.add(id(value))
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotSerialisable(f"dict key {key!r} is a {type(key).__name__}; only str keys can be stored")
            out[key] = _to_json(item, depth + 1, stack)
        stack.discard(id(value))
        return {TAG: "dict", "v": out} if TAG in out else out
    if isinstance(value, (list, tuple)):
        if id(value) in stack:
            raise NotSerialisable("value contains a circular reference")
        stack.add(id(value))
        items = [_to_json(item, depth + 1, stack) for item in value]
        stack.discard(id(value))
        return {TAG: "tuple", "v": items} if isinstance(value, tuple) else items
    if isinstance(value, (bytes, bytearray)):
        return {TAG: "bytes", "v": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, datetime):
        return {TAG: "datetime", "v": value.isoformat()}
    if isinstance(value, date):
        return {TAG: "date", "v": value.isoformat()}
    if isinstance(value, Decimal):
        return {TAG: "decimal", "v": str(value)}
    if isinstance(value, uuid.UUID):
        return {TAG: "uuid", "v": str(value)}
    extra = _EXTRA_TYPES.get(type(value))
    if extra is not None:
        return {TAG: extra[0], "v": extra[1](value)}
    raise NotSerialisable(
        f"a {type(value).__name__} cannot be stored; use JSON types, bytes, datetime, date, Decimal or UUID"
    )


_DECODERS: dict[str, Callable[[Any], Any]] = {
    "bytes": lambda v: base64.b64decode(v),
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "decimal": Decimal,
    "uuid": uuid.UUID,
}


def _from_json(node: Any) -> Any:
    if isinstance(node, list):
        return [_from_json(item) for item in node]
    if isinstance(node, dict):
        tag = node.get(TAG)
        if tag is not None and len(node) == 2 and "v" in node:
            if tag == "dict":
                return {key: _from_json(item) for key, item in node["v"].items()}
            if tag == "tuple":
                return tuple(_from_json(item) for item in node["v"])
            if tag in _DECODERS:
                return _DECODERS[tag](node["v"])
            if tag in _EXTRA_TAGS:
                return _EXTRA_TAGS[tag](node["v"])
        return {key: _from_json(item) for key, item in node.items()}
    return node


class ReadOnlyDict(dict[str, Any]):
    """``event.payload``: a dict that refuses changes, so nobody mistakes a mutation for state."""

    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("event.payload is read-only; return new state from a step instead")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _refuse
    __ior__ = _refuse


class ReadOnlyList(list[Any]):
    def _refuse(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise TypeError("event.payload is read-only; return new state from a step instead")

    __setitem__ = __delitem__ = append = extend = insert = pop = remove = clear = sort = reverse = _refuse
    __iadd__ = __imul__ = _refuse


def freeze(value: Any) -> Any:
    """A deep read-only copy of a decoded value (dicts and lists; scalars are immutable)."""
    if isinstance(value, dict):
        return ReadOnlyDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, list):
        return ReadOnlyList(freeze(item) for item in value)
    if isinstance(value, tuple):
        return tuple(freeze(item) for item in value)
    return value


def to_plain_json(value: Any, *, for_people: bool = False) -> Any:
    """A JSON-ready copy for people and other programs (the API, the CLI, templates).

    Lossy on purpose, unlike ``encode``: datetimes and dates become ISO strings, Decimal and
    UUID strings, bytes base64 text, tuples lists, registered types their text form.
    ``for_people`` shows bytes as ``"<12,345 bytes>"`` instead (an image is not read as base64).
    """
    if value is None or isinstance(value, (bool, str, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): to_plain_json(v, for_people=for_people) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain_json(v, for_people=for_people) for v in value]
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        if for_people:
            return f"<{len(value):,} bytes>"
        return base64.b64encode(bytes(value)).decode("ascii")
    extra = _EXTRA_TYPES.get(type(value))
    if extra is not None:
        return extra[1](value)
    return repr(value)


def display_text(value: Any) -> str:
    """A value as one line of text for people: scalars as they are, anything else as compact JSON."""
    plain = to_plain_json(value, for_people=True)
    if isinstance(plain, str):
        return plain
    if isinstance(plain, bool) or plain is None:
        return json.dumps(plain)
    if isinstance(plain, (int, float)):
        return f"{plain:,}" if isinstance(plain, int) else str(plain)
    return json.dumps(plain, ensure_ascii=False)
