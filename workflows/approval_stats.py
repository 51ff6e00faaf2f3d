"""How long humans take: open requests, overdue ones, and time to decision per workflow.

Percentiles are nearest-rank over the requests closed by a decision (a person's, or the
``on_timeout`` default) in the window; a request that timed out into an error has no
decision time and is counted as a timeout instead. Each closing counts its decision time
in ``wf_approval_timing`` (per workflow, day and 5 %-wide log-scale bucket), so the figures
read a few hundred rows whatever the number of requests, and survive the retention that
prunes old instances; a percentile is exact to within about 2.5 %. Windows are calendar
days in UTC: "7 days" is today and the six days before. bench/approval_stats.py measures it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Min, Q, Sum

from workflows import clock
from workflows.models import ApprovalApprover, ApprovalRequest, ApprovalTiming
from workflows.states import ApprovalStatus

WINDOWS = (7, 30)  # days
OVERDUE_SHOWN = 50


@dataclass(frozen=True)
class Timing:
    """Time to decision of one workflow's requests closed in the last ``days`` days."""

    days: int
    decided: int
    median: float | None  # seconds
    p90: float | None


@dataclass
class WorkflowFigures:
    workflow: str
    open: int = 0
    oldest_open: datetime | None = None
    timeouts_30d: int = 0
    timings: dict[int, Timing] = field(default_factory=dict)


@dataclass(frozen=True)
class Overdue:
    """An open request still undecided after a reminder or its escalation."""

    id: int
    workflow: str
    instance_id: str
    title: str
    created_at: datetime
    deadline: datetime | None
    reminders_sent: int
    escalated: bool


@dataclass
class ApprovalStats:
    now: datetime
    workflows: list[WorkflowFigures]
    open_by_approver: list[tuple[str, int]]  # ("group:finance", open requests naming it)
    overdue: list[Overdue]
    overdue_count: int


def stats(now: datetime | None = None) -> ApprovalStats:
    now = now or clock.now()
    figures: dict[str, WorkflowFigures] = {}

    def of(workflow: str) -> WorkflowFigures:
        return figures.setdefault(workflow, WorkflowFigures(workflow))

    # An instance that ends cancels its open requests (engine.parking.finish, terminate, restart).
    open_requests = ApprovalRequest.objects.filter(status=ApprovalStatus.OPEN)
    for row in open_requests.values("workflow_name").annotate(n=Count("pk"), oldest=Min("created_at")).order_by():
        of(row["workflow_name"]).open, of(row["workflow_name"]).oldest_open = row["n"], row["oldest"]
    for workflow, timings in _timings(now).items():
        of(workflow).timings = timings
    timed_out = ApprovalRequest.objects.filter(status=ApprovalStatus.TIMED_OUT, closed_at__gte=now - timedelta(days=30))
    for workflow, n in timed_out.values_list("workflow_name").annotate(n=Count("pk")).order_by():
        of(workflow).timeouts_30d = n
    by_approver = (
        ApprovalApprover.objects.filter(request__in=open_requests)
        .values("kind", "value")
        .annotate(n=Count("request", distinct=True))
        .order_by("-n", "kind", "value")
    )
    overdue = open_requests.filter(Q(reminders_sent__gt=0) | Q(escalated_at__isnull=False))
    return ApprovalStats(
        now=now,
        workflows=sorted(figures.values(), key=lambda f: f.workflow),
        open_by_approver=[(f"{row['kind']}:{row['value']}", row["n"]) for row in by_approver[:50]],
        overdue=[_overdue(r) for r in overdue.select_related("step").order_by("created_at", "pk")[:OVERDUE_SHOWN]],
        overdue_count=overdue.count(),
    )


def _overdue(row: ApprovalRequest) -> Overdue:
    return Overdue(
        row.pk, row.workflow_name, row.instance_key, row.title, row.created_at, row.step.wake_at,
        row.reminders_sent, row.escalated_at is not None,
    )  # fmt: skip


def _timings(now: datetime) -> dict[str, dict[int, Timing]]:
    """Per workflow and window: how many were decided, and the median and p90 time to decision."""
    today = now.date()
    first = {days: today - timedelta(days=days - 1) for days in WINDOWS}  # "7 days": today and the 6 before
    counts: dict[str, dict[int, dict[int, int]]] = {}
    rows = ApprovalTiming.objects.filter(day__gte=first[max(WINDOWS)]).values_list("workflow_name", "day", "bucket")
    for workflow, day, bucket, n in rows.annotate(n=Sum("count")).order_by():
        for days in WINDOWS:
            if day >= first[days]:
                window = counts.setdefault(workflow, {}).setdefault(days, {})
                window[bucket] = window.get(bucket, 0) + n
    return {
        workflow: {days: _timing(days, windows.get(days, {})) for days in WINDOWS}
        for workflow, windows in counts.items()
    }


def _timing(days: int, buckets: dict[int, int]) -> Timing:
    total = sum(buckets.values())
    return Timing(days, total, bucket_percentile(buckets, total, 0.5), bucket_percentile(buckets, total, 0.9))


# --------------------------------------------------------------------------- recording


GROWTH = 1.05  # each bucket is 5 % wider than the one before: percentiles within ~2.5 %


def bucket_of(seconds: float) -> int:
    return int(math.log(max(0.0, seconds) + 1) / math.log(GROWTH))


def bucket_value(bucket: int) -> float:
    """A bucket's representative time: the middle of its range on the log scale."""
    return math.sqrt(GROWTH**bucket * GROWTH ** (bucket + 1)) - 1


def bucket_percentile(buckets: dict[int, int], total: int, fraction: float) -> float | None:
    """The nearest-rank percentile of the counted times (None when nothing was counted)."""
    if total == 0:
        return None
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return bucket_value(bucket)
    return None  # not reached: the counts add up to total


def record_decision_time(workflow: str, closed_at: datetime, seconds: float) -> None:
    """Count one decided request (in the transaction that closes it; race-free upsert)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO wf_approval_timing (workflow_name, day, bucket, count) VALUES (%s, %s, %s, 1) "
            "ON CONFLICT (workflow_name, day, bucket) DO UPDATE SET count = wf_approval_timing.count + 1",
            [workflow, closed_at.date(), bucket_of(seconds)],
        )


def prune_timings(now: datetime) -> int:
    """Forget counts older than the longest window."""
    deleted, _ = ApprovalTiming.objects.filter(day__lt=now.date() - timedelta(days=max(WINDOWS) + 1)).delete()
    return deleted
