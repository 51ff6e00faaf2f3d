"""Event delivery: giving a wait_for_event its event, its timeout, or a place in the waiting list.

Events are rows (``send_event`` in the public API inserts them and wakes the instance).
A wait takes the oldest buffered event of its type that arrived no later than its
deadline (FIFO per type): one fenced ``UPDATE ... RETURNING`` marks it consumed by the
step. The step's result follows with the worker's next write; until it is stored, a
replay of the wait takes that same event again, so an event is consumed once and never
lost. Once the deadline has passed with no such event the wait fails for good, so a
timed-out wait never consumes a later event. An event racing with parking is caught by
``parking.park`` (``events_version``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.db import connection, transaction

from workflows.engine.leases import Lease, LeaseLost, fence, lease_check_sql
from workflows.engine.rows import StepKey, StepRow
from workflows.models import Event, Instance, Step
from workflows.states import StepStatus
from workflows.values import decode, encode


def receive_event(
    lease: Lease,
    key: StepKey,
    row: StepRow | None,
    seq: int,
    event_type: str,
    deadline: datetime,
    timeout_error: dict[str, Any],
    now: datetime,
    *,
    take_events: bool = True,
) -> StepRow:
    """Record the wait (first time), then take its event or time it out; returns the updated row."""
    kind, name, occurrence = key
    if row is None:
        row = _insert_wait_fenced(lease, key, seq, event_type, deadline, now)
    if take_events:
        taken = _take_event_fenced(lease, row.id, event_type, deadline, now)
        if taken is not None:
            # The event is this step's now; the caller stores the step's result (deferred,
            # with the next write: ``records.store_result``). Until then a replay takes the
            # same event again, so it is neither lost nor consumed by another wait.
            payload, created_at, row.sender = taken
            row.result = encode({"type": event_type, "payload": decode(payload), "timestamp": created_at})
            row.status = StepStatus.SUCCEEDED
            return row
    if deadline <= now:
        with transaction.atomic():
            fence(lease, now)
            row.status, row.error = StepStatus.FAILED, timeout_error
            Step.objects.filter(pk=row.id).update(status=row.status, error=timeout_error, ended_at=now)
    return row


def _insert_wait_fenced(
    lease: Lease, key: StepKey, seq: int, event_type: str, deadline: datetime, now: datetime
) -> StepRow:
    kind, name, occurrence = key
    sql = (
        "INSERT INTO wf_step (instance_id, run_number, kind, name, occurrence, seq, status, attempts, started_at, "
        f"wake_at, event_type) SELECT %s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s WHERE {lease_check_sql()} RETURNING id"
    )
    params: list[Any] = [
        lease.pk, lease.run_number, kind, name, occurrence, seq, StepStatus.WAITING, now, deadline, event_type,
    ]  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, lease.pk, lease.token])
        found = cursor.fetchone()
    if not found:
        raise LeaseLost()
    return StepRow(found[0], kind, name, occurrence, seq, StepStatus.WAITING, wake_at=deadline)


def _take_event_fenced(
    lease: Lease, step_id: int, event_type: str, deadline: datetime, now: datetime
) -> tuple[str, datetime, str] | None:
    """Mark the oldest matching event consumed by the step (one it already took first: its
    result may not have been stored); (payload, created_at, sender's traceparent) or None."""
    sql = (
        "UPDATE wf_event SET consumed_at = COALESCE(consumed_at, %s), consumed_by_id = %s WHERE id = ("
        " SELECT id FROM wf_event WHERE instance_id = %s AND type = %s AND created_at <= %s"
        " AND (consumed_at IS NULL OR consumed_by_id = %s)"
        f" ORDER BY CASE WHEN consumed_by_id = %s THEN 0 ELSE 1 END, id LIMIT 1) AND {lease_check_sql()}"
        " RETURNING payload, created_at, trace_context"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, step_id, lease.pk, event_type, deadline, step_id, step_id, lease.pk, lease.token])
        found = cursor.fetchone()
    if found is None:
        if not Instance.objects.filter(pk=lease.pk, lease_token=lease.token).exists():
            raise LeaseLost()
        return None
    payload, created_at, sender = found
    if isinstance(created_at, str):  # SQLite returns text from a raw RETURNING
        created_at = Event._meta.get_field("created_at").to_python(created_at)
    if created_at.tzinfo is None:
        created_at = created_at.replace(tzinfo=UTC)
    return payload, created_at, sender or ""
