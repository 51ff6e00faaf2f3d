"""Cron schedules of workflows, run by django-q2's scheduler.

A workflow declares ``schedules = ["0 9 * * *"]``. ``sync_schedules`` (run when a worker
starts) keeps one django-q2 ``Schedule`` per (workflow, cron); each firing calls ``fire``
with the slot's time, which creates the instance ``<prefix>-<slot in ms>``. The id comes from
the slot, so a slot that fires twice (two schedulers, a retry) creates one instance.
"""

from __future__ import annotations

import logging
from datetime import datetime

from workflows.definition import registered

log = logging.getLogger("workflows.schedules")
NAME_PREFIX = "workflows:"


def wanted_schedules() -> dict[str, tuple[str, str]]:
    return {
        f"{NAME_PREFIX}{name}:{cron}": (name, cron)
        for name, cls in registered().items()
        for cron in (cls.schedules or [])
    }


def sync_schedules() -> None:
    """Create, update and delete django-q2 schedules to match the workflows' ``schedules``."""
    from django_q.models import Schedule

    wanted = wanted_schedules()
    if wanted:
        try:
            from croniter import croniter
        except ImportError:
            log.error("workflows declare cron schedules but croniter is not installed; they will not run")
            return
        for key, (name, cron) in wanted.items():
            if not croniter.is_valid(cron):
                log.error("workflow %s: invalid cron expression %r; skipped", name, cron)
                continue
            Schedule.objects.update_or_create(
                name=key,
                defaults={
                    "func": "workflows.schedules.fire",
                    "args": repr((name, cron)),
                    "schedule_type": Schedule.CRON,
                    "cron": cron,
                    "repeats": -1,
                    "intended_date_kwarg": "scheduled_time",
                },
            )
    Schedule.objects.filter(name__startswith=NAME_PREFIX).exclude(name__in=list(wanted)).delete()


def fire(name: str, cron: str, scheduled_time: str) -> list[str]:
    """Create the instance for one slot; a second firing of the same slot creates nothing."""
    from workflows import get_workflow
    from workflows.definition import lookup

    slot = datetime.fromisoformat(scheduled_time)
    slot_ms = int(slot.timestamp() * 1000)
    cls = lookup(name)
    prefix = (cls.schedule_id_prefix if cls else None) or name
    created = get_workflow(name).create_batch(
        [{"id": f"{prefix}-{slot_ms}", "params": {"timestamp": slot_ms}}],
        schedule={"cron": cron, "scheduled_time": slot_ms},
    )
    return [c.id for c in created]
