"""Event delivery: giving a wait_for_event its event, its timeout, or a place in the waiting list.

Events are rows (``send_event`` in the public API inserts them and wakes the instance).
A wait takes the oldest buffered event of its type that arrived no later than its
deadline (FIFO per type). Taking it is a read: the event is marked consumed by the step
in the same lease-checked commit as the step's result (``records.store_wait_result``),
which rides with the worker's next write. Until that commit, the event is unconsumed and
a replay of the wait finds that same event again, so an event is consumed once and never
lost. Two waits of one run cannot both find it: the bridge writes a deferred write
before it runs any other job (``engine.bridge``), so the second wait's read sees the
first one's mark. Once the deadline has passed with no such event the wait fails for
good, so a timed-out wait never consumes a later event. An event racing with parking is
caught by ``parking.park`` (``events_version``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction

from workflows import prepared
from workflows.engine.leases import Lease, LeaseLost, fence, lease_check_sql
from workflows.engine.rows import NEXT_EVENT_COLUMNS, StepKey, StepRow, next_event_sql
from workflows.models import Instance, Step
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
    found_events: dict[int, int],
) -> StepRow:
    """Record the wait (first time), then take its event or time it out; returns the updated row.

    ``found_events`` (event id -> wait step id): the events this run's waits found, whose
    marks may not be written yet. This wait does not take another wait's, and adds its own.
    Jobs run one at a time, in the order asked for, so waits running at once see each other's."""
    kind, name, occurrence = key
    if row is None:
        row = _insert_wait_fenced(lease, key, seq, event_type, deadline, now)
    if take_events:
        others = [event_id for event_id, step_id in found_events.items() if step_id != row.id]
        found = row.next_event if row.next_event and row.next_event[0] not in others else None
        row.next_event = None  # read with the claim: good for this first look only
        if found is None:
            found = _find_event(lease, row.id, event_type, deadline, others)
        if found is not None:
            found_events[found[0]] = row.id
            # The event is this step's once the caller stores the step's result with its
            # mark (deferred, with the next write: ``records.store_wait_result``). Until
            # then a replay finds the same event again: it is neither lost nor taken twice.
            row.event_id, payload, created_at, row.sender = found
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
    with prepared.cursor() as cursor:
        cursor.execute(sql, [*params, lease.pk, lease.token])
        found = cursor.fetchone()
    if not found:
        raise LeaseLost()
    return StepRow(found[0], kind, name, occurrence, seq, StepStatus.WAITING, wake_at=deadline)


def _find_event(
    lease: Lease, step_id: int, event_type: str, deadline: datetime, excluded: list[int]
) -> tuple[int, str, datetime, str] | None:
    """The oldest unconsumed event of the type that arrived by the deadline (one the step
    already consumed first: its result may not have been stored); (id, payload,
    created_at, sender's traceparent) or None. Raises LeaseLost when there is none
    because the lease is gone."""
    sql = next_event_sql(NEXT_EVENT_COLUMNS, "%s", "%s", "%s", "%s", _not_in(excluded))
    with prepared.cursor() as cursor:
        cursor.execute(sql, [lease.pk, event_type, deadline, step_id, *excluded, step_id])
        found = cursor.fetchone()
    if found is None:
        if not Instance.objects.filter(pk=lease.pk, lease_token=lease.token).exists():
            raise LeaseLost()
        return None
    event_id, payload, created_at, sender = found
    return event_id, payload, prepared.datetime_from(created_at), sender or ""


def _not_in(ids: list[int]) -> str:
    return f" AND e.id NOT IN ({', '.join(['%s'] * len(ids))})" if ids else ""
