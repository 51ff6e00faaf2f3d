"""Operational state for the health endpoint and metrics: workers, due work, queue depth."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Min
from django.utils import timezone

from workflows import clock, conf
from workflows.models import ApprovalRequest, Instance, Step, WorkerHeartbeat
from workflows.states import PENDING_STEP, PUBLIC_KIND, ApprovalStatus

ALIVE_SECONDS = 30


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def beat(started_at: datetime, processes: int) -> None:
    """Called by a worker's dispatcher every few seconds."""
    now = clock.now()
    WorkerHeartbeat.objects.update_or_create(
        name=worker_name(),
        defaults={
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "processes": processes,
            "started_at": started_at,
            "last_seen": now,
        },
    )
    WorkerHeartbeat.objects.filter(last_seen__lt=now - timedelta(days=1)).delete()


def forget() -> None:
    WorkerHeartbeat.objects.filter(name=worker_name()).delete()


def status() -> dict:
    """``{"database", "workers_alive", "worker_processes", "due_lag_seconds", "queue_depth", "queue_in_flight"}``.

    ``due_lag_seconds``: how long the most overdue instance has been due (timers not fired
    yet, or a dead worker's instance not yet taken over); near 0 when workers keep up.
    """
    now = clock.now()
    alive = WorkerHeartbeat.objects.filter(last_seen__gte=now - timedelta(seconds=ALIVE_SECONDS))
    earliest = Instance.objects.filter(due_at__lte=now).aggregate(m=Min("due_at"))["m"]
    return {
        "database": connection.vendor,
        "workers_alive": alive.count(),
        "worker_processes": sum(alive.values_list("processes", flat=True)),
        "due_lag_seconds": round((now - earliest).total_seconds(), 3) if earliest else 0.0,
        # Waiting tasks only: a row a worker took is locked until it is acked, and one taken by a
        # killed worker stays locked until django-q2's retry time; counting those overstated the
        # queue for hours. They are "in flight" (the dispatcher re-kicks their instances itself).
        **_queue(),
        "lease_seconds": conf.get("LEASE_SECONDS"),
    }


def _queue() -> dict[str, int]:
    """Kicks waiting in the queue, and (database queue only) taken and not acknowledged yet."""
    if conf.get("BROKER") == "redis":
        from django_q.brokers import get_broker

        return {"queue_depth": get_broker().queue_size() or 0, "queue_in_flight": 0}
    from django_q.models import OrmQ

    return {
        "queue_depth": OrmQ.objects.filter(lock__lte=timezone.now()).count(),  # django-q2's own clock
        "queue_in_flight": OrmQ.objects.filter(lock__gt=timezone.now()).count(),
    }


Gauge = tuple[str, str, tuple[str, ...], list[tuple[list[str], float]]]


def _labelled_gauges() -> tuple[list[tuple[list[str], float]], ...]:
    """Parked steps by kind, heartbeat ages by worker, open approvals by workflow."""
    parked = [
        ([PUBLIC_KIND.get(kind, kind)], float(n))
        for kind, n in Step.objects.filter(status__in=PENDING_STEP)
        .values_list("kind")
        .annotate(n=Count("pk"))
        .order_by()
    ]
    now = clock.now()
    beats = [
        ([name], round((now - last_seen).total_seconds(), 3))
        for name, last_seen in WorkerHeartbeat.objects.filter(
            last_seen__gte=now - timedelta(seconds=ALIVE_SECONDS)
        ).values_list("name", "last_seen")
    ]
    open_approvals = [
        ([row["workflow_name"]], float(row["n"]))
        for row in ApprovalRequest.objects.filter(status=ApprovalStatus.OPEN)
        .values("workflow_name")
        .annotate(n=Count("pk"))
        .order_by()
    ]
    return parked, beats, open_approvals


def gauges() -> list[Gauge]:
    """The engine's state as gauges: (name, help, label names, [(label values, value)])."""
    # Nothing here scans the instance or attempt tables: each figure is an index range or a
    # small table (the counters are in wf_metric, see workflows.metrics).
    state = status()
    parked, beats, open_approvals = _labelled_gauges()
    no_labels: tuple[str, ...] = ()
    single = [
        (
            "workflows_due_lag_seconds",
            "How long the most overdue instance has been due (timer lag).",
            "due_lag_seconds",
        ),
        ("workflows_queue_depth", "django-q2 tasks waiting in the queue.", "queue_depth"),
        ("workflows_queue_in_flight", "django-q2 tasks taken by a worker and not acknowledged yet.", "queue_in_flight"),
        ("workflows_workers_alive", "Worker process trees seen in the last 30 s.", "workers_alive"),
        (
            "workflows_worker_processes",
            "Worker processes of the live worker trees (their capacity).",
            "worker_processes",
        ),
    ]
    return [
        (
            "workflows_parked_steps",
            "Steps parked now (sleeping, waiting, waiting to retry), by kind.",
            ("kind",),
            parked,
        ),
        ("workflows_worker_heartbeat_age_seconds", "Seconds since each live worker tree reported.", ("worker",), beats),
        ("workflows_approvals_open", "Open approval requests, by workflow.", ("workflow",), open_approvals),
        *[(name, text, no_labels, [(list(no_labels), float(state[key]))]) for name, text, key in single],
    ]


def metrics() -> str:
    """Prometheus text exposition of every metric (see ``workflows.metrics``)."""
    from workflows.metrics import render

    return render().decode()
