"""The engine's one source of time, so tests can move it (or stop it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)
_frozen: datetime | None = None


def now() -> datetime:
    if _frozen is not None:
        return _frozen
    return datetime.now(UTC) + _offset


def advance(delta: timedelta) -> None:
    """Move the engine's clock forward (tests only)."""
    global _offset, _frozen
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta


def freeze(at: datetime | None = None) -> datetime:
    """Stop the engine's clock at ``at`` (default: now); only ``advance`` moves it then."""
    global _frozen
    _frozen = at or now()
    return _frozen


def reset() -> None:
    global _offset, _frozen
    _offset = timedelta(0)
    _frozen = None
