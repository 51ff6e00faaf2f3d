"""Bulk jobs: retry, resolve, terminate, pause or resume every instance matching a filter.

``start(action, filter)`` records the job and returns at once; the workers do the work
(``workflows.tasks.run_bulk_job``), never the web request. A runner first selects the
matching instances into items, in pk order and batches, then applies the action to each
pending item in one transaction with the item's result: killed in between, the
transaction rolls back and the next runner does that item again, so every instance is
acted on exactly once and the results are complete. One runner holds the job's lease at a
time; the dispatcher re-kicks a job whose lease ran out. Two jobs never hold the same
instance pending (a unique index): the later one records it as skipped. Each action goes
through the public handle, so it is audited per instance as the job's creator, with the
job's number.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, F, QuerySet

from workflows import clock, conf, timers
from workflows.actors import acting, current
from workflows.bulk_jobs import ACTIONS
from workflows.errors import WorkflowError
from workflows.models import BulkJob, BulkJobItem
from workflows.queries import InstanceFilter
from workflows.timers import grace
from workflows.values import encode_limited

log = logging.getLogger("workflows.bulk")

ACTIVE = ("selecting", "running")
SELECT_BATCH = 500
APPLY_BATCH = 50
RUN_TASK = "workflows.tasks.run_bulk_job"


@dataclass(frozen=True)
class Job:
    """A bulk job as people see it."""

    id: int
    action: str
    filter: dict[str, Any]
    options: dict[str, Any]
    actor: str
    channel: str
    status: str
    total: int
    done: int
    refused: int
    skipped: int
    created_at: datetime
    finished_at: datetime | None

    @property
    def processed(self) -> int:
        return self.done + self.refused + self.skipped

    @property
    def percent(self) -> int:
        if self.status == "done":
            return 100
        return int(100 * self.processed / self.total) if self.total else 0

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "processed": self.processed, "percent": self.percent}


def _job(row: BulkJob) -> Job:
    return Job(
        row.pk, row.action, row.filter, row.options, row.actor, row.channel, row.status, row.total, row.done,
        row.refused, row.skipped, row.created_at, row.finished_at,
    )  # fmt: skip


# --------------------------------------------------------------------------- starting, reading


def start(action: str, instance_filter: dict[str, Any], *, output: Any = None, note: str = "") -> Job:
    """Record a job for the workers; the current actor (``workflows.acting``) is its creator.

    ``resolve`` needs ``failed_step`` in the filter (the step to resolve) and takes ``output``
    and ``note``. WorkflowError names what is wrong with the action or the filter.
    """
    if action not in ACTIONS:
        raise WorkflowError(f"action must be one of {', '.join(ACTIONS)}, got {action!r:.40}")
    chosen = InstanceFilter.of(**instance_filter)
    chosen.queryset().exists()  # checks the statuses and attributes now, not in the worker
    options: dict[str, Any] = {}
    if not isinstance(note, str) or len(note) > 2000 or "\x00" in note:
        raise WorkflowError("note must be text of at most 2000 characters, without NUL characters")
    if action == "resolve":
        if not chosen.failed_step:
            raise WorkflowError("resolve needs failed_step in the filter: the step every instance resolves")
        encode_limited(output, what="the step's output", limit=conf.get("MAX_VALUE_BYTES"))
        options = {"step": chosen.failed_step, "output": output, "note": note}
    actor = current()
    now = clock.now()
    with transaction.atomic():
        row = BulkJob.objects.create(
            action=action, filter=_plain(chosen.as_dict()), options=options, user=actor.user, actor=actor.name,
            channel=actor.channel, created_at=now, due_at=now + grace() if conf.get("ENQUEUE") else now,
        )  # fmt: skip
        transaction.on_commit(lambda: kick(row.pk))
    return _job(row)


def _plain(found: dict[str, Any]) -> dict[str, Any]:
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in found.items()}


def _filter_of(row: BulkJob) -> InstanceFilter:
    stored = dict(row.filter)
    for key in ("created_after", "created_before"):
        if stored.get(key):
            stored[key] = datetime.fromisoformat(stored[key])
    return InstanceFilter.of(**stored)


def get(job_id: int) -> Job:
    row = BulkJob.objects.filter(pk=job_id).first() if isinstance(job_id, int) else None
    if row is None:
        raise WorkflowError(f"there is no bulk job {job_id!r}")
    return _job(row)


def jobs(limit: int = 20) -> list[Job]:
    return [_job(row) for row in BulkJob.objects.order_by("-pk")[:limit]]


def items(job_id: int, status: str | None = None, after: int = 0, limit: int = 500) -> list[dict[str, Any]]:
    """The job's items in order (``status`` narrows: done, refused, skipped, pending)."""
    qs = BulkJobItem.objects.filter(job_id=job_id, pk__gt=after)
    if status:
        qs = qs.filter(status=status)
    return [
        {
            "id": i.pk,
            "workflow": i.workflow_name,
            "instance_id": i.instance_key,
            "status": i.status,
            "message": i.message,
            "finished_at": i.finished_at,
        }  # fmt: skip
        for i in qs.order_by("pk")[:limit]
    ]


def cancel(job_id: int) -> Job:
    """Stop a job between items: what is done stays done; the rest is skipped."""
    now = clock.now()
    with transaction.atomic():
        updated = BulkJob.objects.filter(pk=job_id, status__in=ACTIVE).update(
            status="cancelled", finished_at=now, due_at=None
        )
        if updated:
            skipped = BulkJobItem.objects.filter(job_id=job_id, status="pending").update(
                status="skipped", message="the job was cancelled", finished_at=now
            )
            BulkJob.objects.filter(pk=job_id).update(skipped=F("skipped") + skipped)
    return get(job_id)


def kick(job_id: int) -> None:
    timers.send(RUN_TASK, job_id, f"bulk-{job_id}")


def restart_due(now: datetime) -> int:
    """Kick the runners of jobs whose runner died or whose kick was lost (the dispatcher)."""
    due = list(BulkJob.objects.filter(due_at__lte=now, status__in=ACTIVE).values_list("pk", flat=True)[:20])
    for pk in due:
        BulkJob.objects.filter(pk=pk).update(due_at=now + grace())
        if conf.get("ENQUEUE"):
            kick(pk)
        else:
            run(pk)  # in-process tests
    return len(due)


def due_timers() -> list[QuerySet]:
    """When a job whose runner died is to be restarted, as ``timers.earliest`` takes it."""
    return [BulkJob.objects.filter(due_at__isnull=False, status__in=ACTIVE).order_by("due_at").values("due_at")[:1]]


# --------------------------------------------------------------------------- running


def run(job_id: int) -> str:
    """Run a job to its end (or until cancelled); safe to call for any id, any time."""
    token = _claim(job_id)
    if token is None:
        return "not claimed"
    row = BulkJob.objects.get(pk=job_id)
    with acting(row.user, row.channel, name=row.actor or None, context={"bulk_job": job_id}):
        while _renew(job_id, token):
            row = BulkJob.objects.get(pk=job_id)
            if row.status == "selecting":
                _select_batch(row)
            elif row.status == "running":
                if not _apply_batch(row):
                    BulkJob.objects.filter(pk=job_id, lease_token=token, status="running").update(
                        status="done", finished_at=clock.now(), due_at=None, lease_token=None
                    )
            else:
                break
    return BulkJob.objects.get(pk=job_id).status


def _lease() -> timedelta:
    return timedelta(seconds=conf.get("LEASE_SECONDS"))


def _claim(job_id: int) -> str | None:
    now = clock.now()
    token = uuid.uuid4().hex
    claimed = (
        BulkJob.objects.filter(pk=job_id, status__in=ACTIVE)
        .exclude(lease_until__gt=now)
        .update(lease_token=token, lease_until=now + _lease(), due_at=now + _lease() + grace())
    )
    return token if claimed else None


def _renew(job_id: int, token: str) -> bool:
    now = clock.now()
    return bool(
        BulkJob.objects.filter(pk=job_id, lease_token=token, status__in=ACTIVE).update(
            lease_until=now + _lease(), due_at=now + _lease() + grace()
        )
    )


def _select_batch(row: BulkJob) -> None:
    """Turn the next batch of matching instances (by pk) into pending items."""
    found = list(
        _filter_of(row)
        .queryset()
        .filter(pk__gt=row.selected_up_to)
        .order_by("pk")
        .values_list("pk", "workflow_name", "instance_id")[:SELECT_BATCH]
    )
    handled = _handled_elsewhere(row, [f[0] for f in found])
    with transaction.atomic():
        BulkJobItem.objects.bulk_create(
            [
                BulkJobItem(job=row, instance_pk=pk, workflow_name=w, instance_key=i)
                for pk, w, i in found
                if pk not in handled
            ],
            ignore_conflicts=True,  # pending in another job, or selected by us before a crash
        )
        mine = set(BulkJobItem.objects.filter(job=row, instance_pk__in=[f[0] for f in found]).values_list(
            "instance_pk", flat=True
        ))  # fmt: skip
        elsewhere = [f for f in found if f[0] not in mine]  # pending in another job, or done by one just now
        BulkJobItem.objects.bulk_create(
            [
                BulkJobItem(
                    job=row,
                    instance_pk=pk,
                    workflow_name=w,
                    instance_key=i,
                    status="skipped",
                    message="already pending in, or just done by, another bulk job",
                    finished_at=clock.now(),
                )  # fmt: skip
                for pk, w, i in elsewhere
            ],
            ignore_conflicts=True,
        )
        total = BulkJobItem.objects.filter(job=row).count()
        skipped = BulkJobItem.objects.filter(job=row, status="skipped").count()
        changes: dict[str, Any] = {"total": total, "skipped": skipped}
        if found:
            changes["selected_up_to"] = found[-1][0]
        if len(found) < SELECT_BATCH:
            changes["status"] = "running"
        BulkJob.objects.filter(pk=row.pk, status="selecting").update(**changes)


def _handled_elsewhere(row: BulkJob, pks: list[int]) -> set[int]:
    """Instances another job with the same action, started before this one, has done since
    this one was started: two operators asking for the same thing at once act once."""
    return set(
        BulkJobItem.objects.filter(
            instance_pk__in=pks, status="done", finished_at__gte=row.created_at, job__action=row.action,
            job__created_at__lte=row.created_at,
        )
        .exclude(job=row)
        .values_list("instance_pk", flat=True)
    )  # fmt: skip


def _apply_batch(row: BulkJob) -> bool:
    """Apply the action to the next pending items; False when none is left."""
    pending = list(BulkJobItem.objects.filter(job=row, status="pending").order_by("pk")[:APPLY_BATCH])
    for item in pending:  # a cancel turns the pending items into skipped ones: _apply then finds none
        _apply(row, item)
    if pending:  # the job's figures, from its items (one query a batch rather than one an item)
        tally = dict(BulkJobItem.objects.filter(job=row).values_list("status").annotate(n=Count("pk")).order_by())
        BulkJob.objects.filter(pk=row.pk).update(done=tally.get("done", 0), refused=tally.get("refused", 0))
    return bool(pending)


def _apply(row: BulkJob, item: BulkJobItem) -> None:
    """One instance: the action and the item's result commit together, or neither does."""
    with transaction.atomic():
        locked = BulkJobItem.objects.select_for_update().filter(pk=item.pk, status="pending").first()
        if locked is None:
            return  # done by a runner before us
        try:
            with transaction.atomic():
                message = _act(row, item)
            status = "done"
        except WorkflowError as exc:
            status, message = "refused", str(exc)
        except Exception as exc:  # noqa: BLE001 - one broken instance must not stall the whole job
            log.exception("bulk job %s: %s/%s failed", row.pk, item.workflow_name, item.instance_key)
            status, message = "refused", f"failed: {type(exc).__name__}: {exc}"
        BulkJobItem.objects.filter(pk=item.pk).update(status=status, message=message[:2000], finished_at=clock.now())


def _act(row: BulkJob, item: BulkJobItem) -> str:
    from workflows.api import InstanceHandle

    handle = InstanceHandle(item.workflow_name, item.instance_key, item.instance_pk)
    if row.action == "retry":
        failed = handle.failed_step()
        if failed is None or handle.status()["status"] != "errored":
            raise WorkflowError("not errored with a failed step any more")
        handle.restart(from_step=failed)
        return f"retrying from step {failed[0]!r}"
    if row.action == "resolve":
        options = row.options
        handle.resolve_step(options["step"], options["output"], note=options.get("note", ""))
        return f"step {options['step']!r} resolved"
    if row.action == "terminate":
        handle.terminate()
        return "terminated"
    before = handle.status()["status"]
    if row.action == "pause" and before not in ("waiting", "running"):
        raise WorkflowError(f"only a waiting or running instance can be paused; it is {before}")
    if row.action == "resume" and before not in ("paused", "waitingForPause"):
        raise WorkflowError(f"only a paused instance can be resumed; it is {before}")
    getattr(handle, row.action)()
    return f"{before} -> {handle.status()['status']}"
