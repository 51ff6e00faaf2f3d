"""Due times and waking: when an instance has work, and how a worker hears of it.

Two columns of ``wf_instance`` drive everything:

- ``wake_at``: when a waiting instance has something to do: its earliest timer (a sleep,
  a retry delay, a wait's deadline: ``next_wake``), or now when an awaited event arrived.
  A worker may claim a waiting instance only once it is due.
- ``due_at``: when the dispatcher should look at the instance next. Whoever makes an
  instance runnable kicks it (a django-q2 task "advance instance N") in the same
  transaction and pushes ``due_at`` a grace period ahead (``wake_now``): if the kick is lost
  with a killed cluster, the dispatcher kicks again when that time comes. Parked instances
  are due at their ``wake_at``; running ones at the end of their lease; paused and finished
  ones never (NULL). An event's wake-up is not queued at all: the fast lanes find the
  instance at once, and ``due_at`` is a few milliseconds ahead in case none claims it
  (``woken``).

Shared by the public API (create, send_event, resume, restart) and the engine (parking,
the dispatcher); it imports nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import F, QuerySet, Subquery, Value
from django.db.models.expressions import Expression
from django.db.models.functions import Coalesce

from workflows import conf, prepared
from workflows.models import ApprovalRequest, Step
from workflows.states import PENDING_STEP, ApprovalStatus

ADVANCE_TASK = "workflows.tasks.kicked"
WAKE_CHANNEL = "workflows_wake"  # see workflows.engine.fast_lane
STEP_TASK = "workflows.tasks.run_step"
DELIVER_TASK = "workflows.tasks.deliver_notification"


def grace() -> timedelta:
    """How long a kick may wait in the queue before the dispatcher sends another."""
    return timedelta(seconds=conf.get("DISPATCH_GRACE_SECONDS"))


def wake_now(now: datetime) -> dict[str, Any]:
    """The instance columns that make it runnable at once (pair with ``kick``)."""
    return {"wake_at": now, "due_at": now + grace()}


def kick(pk: int) -> None:
    """Queue "advance instance ``pk``" for a worker. Call inside the transaction that made it runnable.

    The worker then carries on with other runnable instances (``engine.backlog``), so one
    kick can serve many: ``kick_some`` for a batch.
    """
    send(ADVANCE_TASK, pk, f"advance-{pk}")


def woken(now: datetime) -> dict[str, Any]:
    """The columns of an instance an event (or a decision) made runnable; pair with ``wake``.

    With workers, nothing is queued: the fast lanes find the instance at once
    (``engine.fast_lane``: notified on PostgreSQL, watching the file on SQLite), and
    ``due_at`` is only ``FAST_LANE_HEAD_START_SECONDS`` ahead, so that the dispatcher kicks
    it through the queue if no fast lane has claimed it by then (every runner busy, or none
    running). Without (``ENQUEUE`` off): ``wake_now``.
    """
    if not conf.get("ENQUEUE"):
        return wake_now(now)
    return {"wake_at": now, "due_at": now + timedelta(seconds=conf.get("FAST_LANE_HEAD_START_SECONDS"))}


def wake(pk: int) -> None:
    """Wake an instance made runnable with ``woken``'s columns (an event arrived), in that
    transaction: on PostgreSQL every listening fast lane hears it at commit, and the first
    to claim it runs it; on SQLite the fast lanes see the commit itself."""
    if notifies():
        _tell_fast_lanes(str(pk))


def notifies() -> bool:
    """Whether wake-ups are notified to the fast lanes (PostgreSQL, with workers)."""
    return bool(conf.get("ENQUEUE")) and connection.vendor == "postgresql"


def kick_some(pks: list[int]) -> None:
    """Kicks for a batch of new instances: a few, each of which works through the backlog."""
    for pk in pks[: conf.get("KICKS_PER_BATCH")]:
        kick(pk)


STEP_PAYLOAD = "step:"  # a wake-up notification for a handed-out step, not an instance


def kick_step(step_id: int, *, tell_fast_lanes: bool = True) -> None:
    """Queue "run step N for its instance" (fan-out). Inside the transaction that queued the step.

    On PostgreSQL the fast lanes are told too: a free runner claims the step at once,
    without the queue hop, and also when every worker process is busy (the coordinator with
    its own steps, the others with earlier handed-out ones), where the queued kick would wait
    for one to finish. Whichever claims the step first runs it; the other finds it taken.
    ``tell_fast_lanes`` False: a step another notified step's claim takes along in its batch.
    """
    send(STEP_TASK, step_id, f"step-{step_id}")
    if tell_fast_lanes and notifies():
        _tell_fast_lanes(f"{STEP_PAYLOAD}{step_id}")


def _tell_fast_lanes(payload: str) -> None:
    """Notify every listening fast lane, at the commit of the current transaction."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify(%s, %s)", [WAKE_CHANNEL, payload])


def kick_delivery(notification_pk: int) -> None:
    """Queue "deliver notification N"."""
    send(DELIVER_TASK, notification_pk, f"notify-{notification_pk}")


def send(task: str, pk: int, name: str) -> None:
    """Queue django-q2 task ``task(pk)`` (inside the transaction that calls for it)."""
    if not conf.get("ENQUEUE"):
        return
    from django_q.tasks import async_task

    if conf.get("BROKER") == "redis":
        # Redis is not in the transaction: a kick pushed now could reach a worker before
        # the change is visible. After commit it cannot; if this process dies in between,
        # the instance's due_at (set with the change) brings the dispatcher's kick instead.
        transaction.on_commit(lambda: async_task(task, pk, task_name=name))
    else:
        async_task(task, pk, task_name=name)


def next_wake(instance_pk: int, now: datetime) -> Expression:
    """SQL for the instance's earliest pending timer, or ``now`` when it has none."""
    earliest = (
        Step.objects.filter(instance_id=instance_pk, status__in=PENDING_STEP).order_by("wake_at").values("wake_at")[:1]
    )
    return Coalesce(Subquery(earliest), Value(now))


def shift_timers(instance_pk: int, by: timedelta) -> None:
    """Move every pending timer of an instance later (paused time does not count), its
    approval requests' reminders and escalations with them."""
    Step.objects.filter(instance_id=instance_pk, status__in=PENDING_STEP).update(wake_at=F("wake_at") + by)
    ApprovalRequest.objects.filter(instance_id=instance_pk, status=ApprovalStatus.OPEN).update(
        nudge_at=F("nudge_at") + by, next_reminder_at=F("next_reminder_at") + by, escalate_at=F("escalate_at") + by
    )


def wake_steps_now(instance_pk: int, status: str, now: datetime) -> int:
    """Make the instance's steps in ``status`` due now (e.g. skip retry delays); returns how many."""
    return Step.objects.filter(instance_id=instance_pk, status=status).update(wake_at=now)


def earliest(timers: Iterable[QuerySet]) -> datetime | None:
    """The earliest of several timers, in one query; each timer is a queryset of one
    datetime column, ordered by it and sliced to one row (``.order_by(c).values(c)[:1]``)."""
    return read_earliest(*earliest_statement(timers))


def earliest_statement(timers: Iterable[QuerySet]) -> tuple[str, tuple[Any, ...]]:
    """``earliest``'s SELECT, with its parameters, for a caller that runs it often: the
    dispatcher asks on every tick of every worker tree, and building the querysets took
    2 ms of CPU a tick (as separate aggregates, run twice a tick, it was eight queries)."""
    parts = [queryset.query.sql_with_params() for queryset in timers]
    sql = "SELECT " + ", ".join(f"({part_sql})" for part_sql, _ in parts)
    return sql, tuple(param for _, part_params in parts for param in part_params)


def read_earliest(sql: str, params: tuple[Any, ...]) -> datetime | None:
    """Run an ``earliest_statement``: the earliest of its timers, or None."""
    with prepared.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    found = [prepared.datetime_from(value) for value in row if value is not None]
    return min(found, default=None)
