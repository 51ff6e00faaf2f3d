"""Getting instances to workers: kicks through django-q2, and the dispatcher loop.

A kick is a django-q2 task "advance instance N". Whoever makes an instance runnable
(create, send_event, resume, restart) kicks it in the same transaction, so the kick exists
exactly when the change does (django-q2's ORM broker writes through the same connection).
Each kick also pushes the instance's ``due_at`` a grace period ahead: if the kick is lost
with a killed cluster, the dispatcher sends another one when that time comes.

The dispatcher, one per ``workflows worker`` process, is the only poller: one indexed
query for the earliest ``due_at`` (timers, expired leases of dead workers, lost kicks).
Parked instances cost nothing until they are due. Several dispatchers on several machines
share the work: each claims due rows with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite
serialises writers), so a due instance is kicked once.
"""
from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta

from django.db import close_old_connections, connection, transaction
from django.db.models import Min

from workflows import clock, conf
from workflows.models import Instance

log = logging.getLogger("workflows.dispatch")

TASK = "workflows.tasks.advance"
STEP_TASK = "workflows.tasks.run_step"


def kick(pk: int) -> None:
    """Queue "advance instance ``pk``" for a worker. Call inside the transaction that made it runnable."""
    if not conf.get("ENQUEUE"):
        return
    from django_q.tasks import async_task

    async_task(TASK, pk, task_name=f"advance-{pk}")


def kick_step(step_id: int) -> None:
    """Queue "run step N for its instance" (fan-out). Inside the transaction that queued the step."""
    if not conf.get("ENQUEUE"):
        return
    from django_q.tasks import async_task

    async_task(STEP_TASK, step_id, task_name=f"step-{step_id}")


def grace() -> timedelta:
    return timedelta(seconds=conf.get("DISPATCH_GRACE_SECONDS"))


def dispatch_due(limit: int = 200) -> int:
    """Kick every instance whose ``due_at`` has come (up to ``limit``); returns how many."""
    now = clock.now()
    with transaction.atomic():
        due = Instance.objects.filter(due_at__lte=now).order_by("due_at").values_list("pk", flat=True)
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        pks = list(due[:limit])
        if pks:
            Instance.objects.filter(pk__in=pks).update(due_at=now + grace())
            for pk in pks:
                kick(pk)
    return len(pks)


def seconds_until_next_due(maximum: float) -> float:
    earliest = Instance.objects.filter(due_at__isnull=False).aggregate(m=Min("due_at"))["m"]
    if earliest is None:
        return maximum
    return max(0.0, min(maximum, (earliest - clock.now()).total_seconds()))


PRUNE_EVERY_SECONDS = 60


def run_dispatcher(stop: threading.Event) -> None:
    """Kick due instances until ``stop`` is set; survives database outages by retrying.

    About once a minute it also prunes finished instances past their retention.
    """
    from workflows import health
    from workflows.retention import prune_finished

    poll = conf.get("POLL_SECONDS")
    next_prune = time.monotonic() + 5
    next_beat = 0.0
    started_at = clock.now()
    while not stop.is_set():
        try:
            close_old_connections()
            # One indexed MIN query per tick; the claiming transaction only when something is due.
            while seconds_until_next_due(poll) == 0 and dispatch_due() and not stop.is_set():
                pass
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + 5
                health.beat(started_at, conf.get("WORKERS"))
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                prune_finished()
            wait = seconds_until_next_due(poll)
        except Exception:
            log.exception("dispatcher: database error; retrying in 1 s")
            close_old_connections_hard()
            wait = 1.0
        stop.wait(wait)


def close_old_connections_hard() -> None:
    from django.db import connections

    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:
            pass
