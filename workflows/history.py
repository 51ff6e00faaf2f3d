"""What happened to an instance, kept for people: attempts that never reported back, and runs
that a restart replaced.

Shared by the engine (a worker took over a dead worker's instance) and the public API
(terminate and restart abandon a running step): the attempt that was running gets a failed
``Attempt`` row saying why, so the timeline never shows an attempt that simply vanished.
Steps that never finish (their instance was terminated, or restarted before them) are
marked cancelled rather than left "waiting" or "retrying" forever; a restart keeps the
replaced steps, with their attempts and tracebacks, in the run they belonged to.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from workflows.models import ApprovalRequest, Attempt, Step
from workflows.states import OPEN_STEP, ApprovalStatus, StepStatus

# The error of an attempt whose worker stopped (crash, SIGKILL, lost lease).
INTERRUPTED: dict[str, Any] = {
    "name": "WorkflowInternalError",
    "message": "Attempt failed due to internal workflows error (the worker running it stopped)",
}
TERMINATED: dict[str, Any] = {"name": "Terminated", "message": "the instance was terminated while this attempt ran"}
RESTARTED: dict[str, Any] = {"name": "Restarted", "message": "the instance was restarted while this attempt ran"}


def record_interrupted(steps: QuerySet[Step], now: datetime, error: dict[str, Any] = INTERRUPTED) -> None:
    """A failed Attempt row for the running attempt of each of ``steps`` (its worker is gone)."""
    for step_id, number, started in steps.values_list("id", "attempts", "attempt_started_at"):
        Attempt.objects.get_or_create(
            step_id=step_id,
            number=number,
            defaults={"started_at": started or now, "ended_at": now, "success": False, "error": error},
        )


def cancel_open_steps(steps: QuerySet[Step], now: datetime, reason: dict[str, Any]) -> None:
    """Steps that will never finish: their running attempt fails with ``reason``; all are cancelled.

    Clearing a step's lease also stops a fan-out worker still running it (its next write
    finds the lease gone).
    """
    record_interrupted(steps.filter(status=StepStatus.RUNNING), now, reason)
    ApprovalRequest.objects.filter(step__in=steps.filter(status__in=OPEN_STEP), status=ApprovalStatus.OPEN).update(
        status=ApprovalStatus.CANCELLED, closed_at=now, closed_by=reason["name"].lower(), nudge_at=None
    )
    steps.filter(status__in=OPEN_STEP).update(
        status=StepStatus.CANCELLED, ended_at=now, wake_at=None, lease_token=None, lease_until=None
    )
