"""How a replay pass is stopped: the signals the engine raises through the user's ``run()``.

Both are BaseExceptions, so a user's ``except Exception`` around a step cannot swallow them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

# A shared byte set up by `manage.py workflows worker` before it forks the worker processes;
# when it is 1, a worker hands its instance back at the next step boundary (graceful
# shutdown). Lock-free on purpose: a child killed while holding a lock would deadlock stop.
DRAIN_FLAG: Any = None


def draining() -> bool:
    return DRAIN_FLAG is not None and bool(DRAIN_FLAG.value)


class RunOutcome(StrEnum):
    """What advancing an instance led to (``workflows.tasks.advance`` returns it)."""

    NOT_CLAIMED = "not claimed"  # nothing to do now, or another worker has it
    COMPLETE = "complete"
    ERRORED = "errored"
    PARKED = "parked"  # waiting for a timer or an event
    PAUSED = "paused"
    HANDED_BACK = "handed back"  # the worker is stopping or the time slice is up
    ABANDONED = "abandoned"  # the lease was lost: terminated, restarted or taken over
    RERUN = "rerun"  # an event arrived while parking: replay again at once


class Suspend(BaseException):
    """Stop this pass; ``reason`` says why: "park", "pause", "handback" or "fatal"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Abandon(BaseException):
    """The lease is gone (terminated, restarted, taken over): stop without writing anything."""


class AttemptTimedOut(Exception):
    """The attempt ran past its timeout (distinct from a TimeoutError the callback raised)."""
