"""What happened to an instance, kept for people: attempts that never reported back.

Shared by the engine (a worker took over a dead worker's instance) and the public API
(terminate abandons a running step): either way the attempt that was running gets a failed
``Attempt`` row saying why, so the timeline never shows an attempt that simply vanished.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from workflows.models import Attempt, Step

# The error of an attempt whose worker stopped (crash, SIGKILL, lost lease).
INTERRUPTED: dict[str, Any] = {
    "name": "WorkflowInternalError",
    "message": "Attempt failed due to internal workflows error (the worker running it stopped)",
}
TERMINATED: dict[str, Any] = {"name": "Terminated", "message": "the instance was terminated while this attempt ran"}


def record_interrupted(steps: QuerySet[Step], now: datetime, error: dict[str, Any] = INTERRUPTED) -> None:
    """A failed Attempt row for the running attempt of each of ``steps`` (its worker is gone)."""
    for step_id, number, started in steps.values_list("id", "attempts", "attempt_started_at"):
        Attempt.objects.get_or_create(
            step_id=step_id,
            number=number,
            defaults={"started_at": started or now, "ended_at": now, "success": False, "error": error},
        )
