"""Who is acting, and through what: set once around a request or command, read by the audit log.

Model-free, so ``workflows.acting`` can be imported anywhere (see ``workflows.audit``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from workflows.errors import WorkflowError

CHANNELS = ("dashboard", "api", "cli", "link", "python", "schedule", "system")


@dataclass(frozen=True)
class Actor:
    user: Any  # a Django user, or None (a script, the CLI, the engine itself)
    channel: str
    name: str  # the username, or what stands for the actor ("root@host" for the CLI)
    context: dict[str, Any] = field(default_factory=dict)  # added to each record, e.g. {"bulk_job": 7}


_current: ContextVar[Actor | None] = ContextVar("workflows_actor", default=None)


@contextlib.contextmanager
def acting(
    user: Any, channel: str, *, name: str | None = None, context: dict[str, Any] | None = None
) -> Iterator[Actor]:
    """Attribute every change made inside to ``user`` (or ``name``) through ``channel``;
    ``context`` is added to every record's details."""
    if channel not in CHANNELS:
        raise WorkflowError(f"channel must be one of {', '.join(CHANNELS)}, got {channel!r:.40}")
    username = name or (user.get_username() if getattr(user, "is_authenticated", False) else "")
    actor = Actor(user if getattr(user, "is_authenticated", False) else None, channel, username, context or {})
    token = _current.set(actor)
    try:
        yield actor
    finally:
        _current.reset(token)


def current() -> Actor:
    return _current.get() or Actor(None, "python", "")
