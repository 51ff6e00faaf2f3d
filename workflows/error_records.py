"""How an exception is stored and brought back (project decision 4: errors keep their identity).

A step that fails for good stores ``error_record(exc)``; every later replay raises
``rebuild_error(record)``, an exception of the same class with the same message where that
class can be rebuilt, so ``try/except`` around a step behaves the same on every replay.
"""

from __future__ import annotations

import logging
import pydoc
from typing import Any

from workflows.errors import NotSerialisable, ValueTooLarge
from workflows.values import decode, encode_limited

log = logging.getLogger("workflows.engine")

ARGS_LIMIT = 64 * 1024


class StepError(Exception):
    """Stands in for a stored step error whose original class cannot be rebuilt."""


def error_record(exc: BaseException) -> dict[str, Any]:
    """How an exception is stored: its class name, message, and how to rebuild it."""
    cls = type(exc)
    record: dict[str, Any] = {
        "name": getattr(exc, "error_name", None) or cls.__name__,
        "message": str(exc),
        "module": cls.__module__,
        "qualname": cls.__qualname__,
    }
    try:
        record["args"] = encode_limited(list(exc.args), what="error args", limit=ARGS_LIMIT)
    except (NotSerialisable, ValueTooLarge):
        pass  # rebuilt from the message alone
    return record


def public_error(record: dict[str, Any]) -> dict[str, str]:
    """What users see of a stored error: ``{"name", "message"}``."""
    return {"name": record["name"], "message": record["message"]}


def rebuild_error(record: dict[str, Any]) -> BaseException:
    """The stored error as an exception of its original class where that is possible.

    The rebuilt exception must print as the original did; otherwise a ``StepError`` that
    keeps the original name and message stands in, so replays behave the same every time.
    """
    name, message = record.get("name", "Error"), record.get("message", "")
    cls = pydoc.locate(f"{record.get('module')}.{record.get('qualname')}") if record.get("module") else None
    if isinstance(cls, type) and issubclass(cls, Exception):
        args: tuple = (message,)
        if "args" in record:
            try:
                args = tuple(decode(record["args"]))
            except (ValueError, TypeError):
                log.warning("stored args of %s cannot be decoded; rebuilding from the message", name)
        for build in (_by_constructor, _without_constructor):
            exc = build(cls, args)
            if exc is not None and str(exc) == message:
                if name != cls.__name__:
                    exc.error_name = name  # type: ignore[attr-defined]
                return exc
    exc = StepError(message)
    exc.error_name = name  # type: ignore[attr-defined]
    return exc


def _by_constructor(cls: type[Exception], args: tuple) -> Exception | None:
    try:
        return cls(*args)
    # The class is the user's: its constructor may raise anything for these args.
    except Exception as problem:  # noqa: BLE001
        log.debug("cannot rebuild %s from its args: %r", cls.__qualname__, problem)
        return None


def _without_constructor(cls: type[Exception], args: tuple) -> Exception | None:
    try:
        exc = cls.__new__(cls)
        exc.args = args
        str(exc)  # a __str__ that needs what __init__ sets fails here, not in the caller
        return exc
    except Exception as problem:  # noqa: BLE001 (the user's class, as above)
        log.debug("cannot rebuild %s without its constructor: %r", cls.__qualname__, problem)
        return None
