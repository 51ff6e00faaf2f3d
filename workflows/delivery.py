"""The statements of ``send_event``, written in SQL because they are on the wake-up path.

An event is three writes in the sender's transaction: lock the instance, insert the event,
and bump the instance's ``events_version`` (which a worker parking at that moment checks,
so the event is never missed), making the instance due at once when a wait of that type
is waiting for it. Built with the ORM these cost more to compile than to run; here the
"is it awaited" check rides in the UPDATE instead of being a query of its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from workflows.states import Status, StepKind, StepStatus
from workflows.timers import woken


def lock_instance(pk: int) -> tuple[str, str, str, str] | None:
    """(status, workflow_name, instance_id, trace_context) of the instance, locked for this
    transaction (SQLite: its IMMEDIATE transaction already holds the write lock)."""
    lock = " FOR UPDATE" if connection.vendor == "postgresql" else ""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT status, workflow_name, instance_id, trace_context FROM wf_instance WHERE id = %s{lock}", [pk]
        )
        return cursor.fetchone()


def insert_event(pk: int, event_type: str, payload: str, now: datetime, key: str | None, trace_context: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wf_event (instance_id, type, payload, created_at, idempotency_key, trace_context) "
            "VALUES (%s, %s, %s, %s, %s, %s)",
            [pk, event_type, payload, now, key, trace_context],
        )


def note_event(pk: int, event_type: str, now: datetime) -> bool:
    """Bump ``events_version``; when a wait of this type is waiting, make the instance due now.
    Returns whether one was (the caller then wakes it)."""
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
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return bool(row and row[0])
