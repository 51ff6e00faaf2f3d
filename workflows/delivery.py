"""The statements of ``send_event``, written in SQL because they are on the wake-up path.

An event is a lock and three writes in the sender's transaction: lock the instance
(``lock_instance``; the caller checks its status), then insert the event and its audit
record and bump the instance's ``events_version`` (which a worker parking at that moment
checks, so the event is never missed), making the instance due at once when a wait of
that type is waiting for it, and wake it (``deliver``). On PostgreSQL the three writes and
the fast lanes' notification are one statement. The lock stays a statement of its own: a
statement sees the rows committed before it started, and the "is a wait waiting for this
type" check must see those of a worker that parked while the sender waited for the lock.
Built with the ORM these cost more to compile than to run.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db import connection

from workflows import prepared
from workflows.models import AuditRecord
from workflows.states import Status, StepKind, StepStatus
from workflows.timers import WAKE_CHANNEL, notifies, wake, woken


def lock_instance(pk: int) -> tuple[str, str, str, str] | None:
    """(status, workflow_name, instance_id, trace_context) of the instance, locked for this
    transaction (SQLite: its IMMEDIATE transaction already holds the write lock)."""
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    with prepared.cursor() as cursor:
        cursor.execute(
            f"SELECT status, workflow_name, instance_id, trace_context FROM wf_instance WHERE id = %s{lock}", [pk]
        )
        return cursor.fetchone()


def deliver(
    pk: int, event_type: str, payload: str, now: datetime, key: str | None, trace_context: str, audit: AuditRecord
) -> None:
    """Insert the event and its audit record, bump the instance and wake it if a wait of
    the type is waiting (after ``lock_instance``, in the same transaction)."""
    if connection.vendor != "postgresql":
        insert_event(pk, event_type, payload, now, key, trace_context)
        audit.save()
        if note_event(pk, event_type, now):
            wake(pk)
        return
    # ``wake`` is this statement's NOTIFY when a wait is waiting (and nothing without workers).
    note_sql, note_params = _note_sql(pk, event_type, now)
    notify = notifies()
    sql = (
        f"WITH event AS ({_INSERT_EVENT_SQL}), audit AS ({_INSERT_AUDIT_SQL}), note AS ({note_sql} AS awaited) "
        f"SELECT awaited{', CASE WHEN awaited THEN pg_notify(%s, %s) END' if notify else ''} FROM note"
    )
    params = [
        pk, event_type, payload, now, key, trace_context,
        audit.at, audit.user_id, audit.actor, audit.channel, audit.action, audit.workflow_name,
        audit.instance_key, json.dumps(audit.details), *note_params, *([WAKE_CHANNEL, str(pk)] if notify else []),
    ]  # fmt: skip
    with prepared.cursor() as cursor:
        cursor.execute(sql, params)


_INSERT_EVENT_SQL = (
    "INSERT INTO wf_event (instance_id, type, payload, created_at, idempotency_key, trace_context) "
    "VALUES (%s, %s, %s, %s, %s, %s)"
)
_INSERT_AUDIT_SQL = (
    "INSERT INTO wf_audit (at, user_id, actor, channel, action, workflow_name, instance_key, details) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)"
)


def insert_event(pk: int, event_type: str, payload: str, now: datetime, key: str | None, trace_context: str) -> None:
    with prepared.cursor() as cursor:
        cursor.execute(_INSERT_EVENT_SQL, [pk, event_type, payload, now, key, trace_context])


def note_event(pk: int, event_type: str, now: datetime) -> bool:
    """Bump ``events_version``; when a wait of this type is waiting, make the instance due now.
    Returns whether one was (the caller then wakes it)."""
    sql, params = _note_sql(pk, event_type, now)
    with prepared.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return bool(row and row[0])


def _note_sql(pk: int, event_type: str, now: datetime) -> tuple[str, list[Any]]:
    """``note_event``'s UPDATE, ending in ``RETURNING <is a wait of the type waiting>``."""
    awaited = (
        "(status = %s AND EXISTS (SELECT 1 FROM wf_step WHERE instance_id = %s AND kind = %s AND status = %s "
        "AND event_type = %s))"
    )
    awaited_params: list[Any] = [Status.WAITING, pk, StepKind.WAIT, StepStatus.WAITING, event_type]
    sql = (
        "UPDATE wf_instance SET events_version = events_version + 1, updated_at = %s, "
        f"wake_at = CASE WHEN {awaited} THEN %s ELSE wake_at END, "
        f"due_at = CASE WHEN {awaited} THEN %s ELSE due_at END "
        f"WHERE id = %s RETURNING {awaited}"
    )
    runnable = woken(now)
    params = [now, *awaited_params, runnable["wake_at"], *awaited_params, runnable["due_at"], pk, *awaited_params]
    return sql, params
