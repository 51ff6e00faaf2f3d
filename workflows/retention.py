"""Pruning finished instances once their retention period is over (decision 8).

The default is WORKFLOWS["RETENTION_DAYS"] (30); a workflow may set ``retention`` (any
duration) to keep its instances longer or shorter. Deletes run in small batches, each its
own transaction, so the tables are never locked for long. An instance id can be reused
once its instance has been pruned.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from workflows import clock, conf
from workflows.approval_stats import prune_timings
from workflows.definition import Workflow, registered
from workflows.durations import parse_duration
from workflows.models import Instance
from workflows.states import FINISHED
from workflows.status_counts import delete_instances

log = logging.getLogger("workflows.retention")


def retention_of(workflow_cls: type[Workflow]) -> timedelta:
    custom = getattr(workflow_cls, "retention", None)
    if custom is not None:
        return timedelta(seconds=parse_duration(custom))
    return timedelta(days=conf.get("RETENTION_DAYS"))


def prune_finished(batch_size: int = 200, max_batches: int = 10) -> int:
    """Delete finished instances past their retention (with steps, attempts, events); returns how many."""
    now = clock.now()
    default_cutoff = now - timedelta(days=conf.get("RETENTION_DAYS"))
    custom = {
        name: now - retention_of(cls)
        for name, cls in registered().items()
        if getattr(cls, "retention", None) is not None
    }
    deleted = 0
    for name, cutoff in [*custom.items(), (None, default_cutoff)]:
        finished = Instance.objects.filter(status__in=FINISHED, ended_at__lt=cutoff)
        finished = finished.filter(workflow_name=name) if name else finished.exclude(workflow_name__in=list(custom))
        for _ in range(max_batches):
            pks = list(finished.order_by("ended_at").values_list("pk", flat=True)[:batch_size])
            if not pks:
                break
            delete_instances(Instance.objects.filter(pk__in=pks, status__in=FINISHED))
            deleted += len(pks)
    if deleted:
        log.info("retention: pruned %d finished instances", deleted)
    prune_timings(now)
    return deleted
