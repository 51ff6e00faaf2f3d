"""Cron schedules of workflows, run by django-q2's scheduler.

A workflow declares ``schedules = ["0 9 * * *"]``. ``sync_schedules`` (run when a worker
starts) keeps one django-q2 ``Schedule`` per (workflow, cron); each firing calls ``fire``
with the slot's time, which creates the instance ``<prefix>-<slot in ms>``. The id comes from
the slot, so a slot that fires twice (two schedulers, a retry) creates one instance.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import connection, transaction

from workflows.definition import registered

log = logging.getLogger("workflows.schedules")
NAME_PREFIX = "workflows:"


def wanted_schedules() -> dict[str, tuple[str, str]]:
    return {
        f"{NAME_PREFIX}{name}:{cron}": (name, cron)
        for name, cls in registered().items()
        for cron in (cls.schedules or [])
    }


# Every worker syncs the schedules when it starts, and several start at once: the sync runs
# under this advisory lock on PostgreSQL (SQLite's IMMEDIATE transactions serialise it anyway),
# so two workers never both create the same schedule.
SYNC_LOCK = 0x77666C_5C4ED


def sync_schedules() -> None:
    """Create, update and delete django-q2 schedules to match the workflows' ``schedules``.

    Safe when several workers start at the same moment: one sync at a time, and duplicates
    left by an older, unlocked version are removed.
    """
    from django_q.models import Schedule

    wanted = wanted_schedules()
    if wanted and not _croniter_available():
        return
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [SYNC_LOCK])
        for key, (name, cron) in wanted.items():
            if not _valid(name, cron):
                continue
            fields = {
                "func": "workflows.schedules.fire", "args": repr((name, cron)), "schedule_type": Schedule.CRON,
                "cron": cron, "repeats": -1, "intended_date_kwarg": "scheduled_time",
            }  # fmt: skip
            existing = list(Schedule.objects.filter(name=key).order_by("pk"))
            if not existing:
                Schedule.objects.create(name=key, **fields)
                continue
            Schedule.objects.filter(pk=existing[0].pk).update(**fields)
            Schedule.objects.filter(pk__in=[s.pk for s in existing[1:]]).delete()
        Schedule.objects.filter(name__startswith=NAME_PREFIX).exclude(name__in=list(wanted)).delete()


def _croniter_available() -> bool:
    try:
        import croniter  # noqa: F401
    except ImportError:
        log.error("workflows declare cron schedules but croniter is not installed; they will not run")
        return False
    return True


def _valid(name: str, cron: str) -> bool:
    from croniter import croniter

    if not croniter.is_valid(cron):
        log.error("workflow %s: invalid cron expression %r; skipped", name, cron)
        return False
    return True


def fire(name: str, cron: str, scheduled_time: str) -> list[str]:
    """Create the instance for one slot; a second firing of the same slot creates nothing."""
    from workflows import get_workflow
    from workflows.definition import lookup

    slot = datetime.fromisoformat(scheduled_time)
    slot_ms = int(slot.timestamp() * 1000)
    cls = lookup(name)
    prefix = (cls.schedule_id_prefix if cls else None) or name
    from workflows.actors import acting

    with acting(None, "schedule", name=f"cron {cron}"):
        created = get_workflow(name).create_batch(
            [{"id": f"{prefix}-{slot_ms}", "params": {"timestamp": slot_ms}}],
            schedule={"cron": cron, "scheduled_time": slot_ms},
        )
    return [c.id for c in created]
