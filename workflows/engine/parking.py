"""How a worker lets go of an instance: park it until its next timer, hand it back, or finish it.

Each is one fenced UPDATE that also clears the lease, so the instance is either still ours
or released, never both. Parking is what frees a worker while an instance sleeps, waits out
a retry delay or waits for an event: parked instances are rows, not processes, and cost
nothing until the dispatcher finds them due (``workflows.timers``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Case, Value, When

from workflows import conf, metrics, prepared
from workflows.engine.bridge import Deferred
from workflows.engine.leases import Lease, LeaseLost
from workflows.engine.records import success_cte
from workflows.models import ApprovalRequest, Instance, Step
from workflows.states import ApprovalStatus, Status, StepStatus
from workflows.timers import grace, kick, next_wake


def _paused_or(status: str, now: datetime) -> dict[str, Any]:
    """Release columns: paused when a pause was asked meanwhile, else ``status``."""
    return {
        "status": Case(When(pause_requested=True, then=Value(Status.PAUSED)), default=Value(status)),
        "paused_at": Case(When(pause_requested=True, then=Value(now)), default=Value(None)),
        "lease_token": None,
        "lease_until": None,
        "updated_at": now,
    }


def park(lease: Lease, now: datetime) -> bool:
    """Release the instance until its earliest timer; paused instead if a pause was asked.

    One UPDATE (the earliest timer is a subquery). It succeeds only if no event arrived
    since the claim (``events_version``); otherwise it returns False and the caller replays
    again, so an event racing with parking is never missed. Raises LeaseLost when the
    instance is no longer ours.
    """
    wake = next_wake(lease.pk, now)
    qs = Instance.objects.filter(pk=lease.pk, lease_token=lease.token)
    updated = qs.filter(events_version=lease.events_version).update(
        **_paused_or(Status.WAITING, now),
        wake_at=wake,
        due_at=Case(When(pause_requested=True, then=Value(None)), default=wake),
    )
    if updated:
        return True
    current = qs.values_list("events_version", flat=True).first()
    if current is None:
        raise LeaseLost()
    lease.events_version = current
    return False


def hand_back(lease: Lease, now: datetime) -> None:
    """Give the instance back to the queue now (worker shutting down, or its time slice is up)."""
    with transaction.atomic():
        updated = Instance.objects.filter(pk=lease.pk, lease_token=lease.token).update(
            **_paused_or(Status.QUEUED, now),
            wake_at=now,
            due_at=Case(When(pause_requested=True, then=Value(None)), default=Value(now + grace())),
        )
        if not updated:
            raise LeaseLost()
        kick(lease.pk)


def finish(
    lease: Lease,
    now: datetime,
    *,
    output_text: str | None = None,
    error: dict[str, Any] | None = None,
    open_approvals: bool = False,
    workflow: str = "",
    deferred: Deferred | None = None,
) -> None:
    """The instance is complete (with ``output_text``) or errored (with ``error``), for good.

    With ``open_approvals`` (an approval still waited when ``run`` ended, say beside a failed
    branch) its requests are cancelled in the same transaction: nobody is asked any more.
    A ``deferred`` write (``engine.bridge``) that stores the last step's result is part of
    the same statement on PostgreSQL: one commit ends the instance; any other is written first.
    """
    metrics.count(
        "workflows_instances_failed" if error is not None else "workflows_instances_completed", workflow=workflow
    )
    success = None if open_approvals else success_cte(deferred, lease)
    if deferred is not None and success is None:
        deferred.write()
    if not open_approvals:
        return _finish(lease, now, output_text, error, success)
    with transaction.atomic():
        _finish(lease, now, output_text, error)
        ApprovalRequest.objects.filter(instance_id=lease.pk, status=ApprovalStatus.OPEN).update(
            status=ApprovalStatus.CANCELLED, closed_at=now, closed_by="instance finished", nudge_at=None
        )


def _finish(
    lease: Lease,
    now: datetime,
    output_text: str | None,
    error: dict[str, Any] | None,
    success: tuple[str, list[Any]] | None = None,
) -> None:
    """One fenced UPDATE, in SQL: it ends every instance, and the ORM took longer to build it
    than to run it. ``success``: the last step's result, as ``records.success_cte``'s clauses."""
    status = Status.ERRORED if error is not None else Status.COMPLETE
    cast = "::jsonb" if connection.vendor == "postgresql" else ""
    with_done, done_params = (f"WITH {success[0]} ", success[1]) if success else ("", [])
    sql = (
        f"{with_done}UPDATE wf_instance SET status = %s, output = %s, error = %s{cast}, ended_at = %s, wake_at = NULL, "
        "due_at = NULL, lease_token = NULL, lease_until = NULL, pause_requested = %s, updated_at = %s "
        f"WHERE id = %s AND lease_token = %s{' AND EXISTS (SELECT 1 FROM done)' if success else ''}"
    )
    error_text = None if error is None else json.dumps(error)
    with prepared.cursor() as cursor:
        cursor.execute(sql, [*done_params, status, output_text, error_text, now, False, now, lease.pk, lease.token])
        if cursor.rowcount != 1:
            raise LeaseLost()


def fail_crash_loop(lease: Lease, crashes: int, now: datetime, workflow: str = "") -> None:
    """Error an instance whose workers keep dying, naming the step they died in."""
    steps = list(Step.objects.filter(instance_id=lease.pk, status=StepStatus.RUNNING).values_list("name", flat=True))
    where = f" (in step {', '.join(repr(s) for s in steps)})" if steps else ""
    finish(
        lease,
        now,
        workflow=workflow,
        error={
            "name": "WorkflowInternalError",
            "message": f"the worker running this instance died {crashes} times in a row{where}; giving up "
            f"(WORKFLOWS['MAX_WORKER_CRASHES'] is {conf.get('MAX_WORKER_CRASHES')})",
        },
    )
