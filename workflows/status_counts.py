"""Instance counts per workflow, version and status, without counting the instances.

Database triggers append a +1/-1 row to ``wf_status_delta`` for each new instance and each
change of status (migration 0011); ``compact`` folds those rows into ``wf_status_count``
(the dispatcher calls it every few seconds); ``counts`` adds both in one statement, so a
page at a million instances reads a few hundred rows, and the figures are exact at every
moment. Deleting instances goes through ``delete_instances``, which counts the -1s itself.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from django.db import connection, connections, router, transaction
from django.db.models import Count, QuerySet

from workflows.models import Instance, StatusCount, StatusDelta

# Readers fold the deltas themselves when the dispatcher has not for a while (no worker).
COMPACT_READ_THRESHOLD = 5000
_LOCK_KEY = 7_274_001  # PostgreSQL advisory lock: one compaction at a time


class Counts:
    """``(workflow, version, status) -> n`` and each workflow's latest change of status."""

    def __init__(self, rows: list[tuple[str, str, str, int, Any]]) -> None:
        self.by_key: dict[tuple[str, str, str], int] = {}
        self.last_at: dict[str, datetime] = {}
        for workflow, version, status, n, last_at in rows:
            if n:
                self.by_key[(workflow, version, status)] = int(n)
            if last_at is not None:
                moment = last_at if isinstance(last_at, datetime) else _parse(last_at)
                if workflow not in self.last_at or moment > self.last_at[workflow]:
                    self.last_at[workflow] = moment

    def by_status(self, workflow: str) -> dict[str, int]:
        totals: dict[str, int] = defaultdict(int)
        for (name, _version, status), n in self.by_key.items():
            if name == workflow:
                totals[status] += n
        return dict(totals)

    def workflows(self) -> set[str]:
        return {name for name, _, _ in self.by_key}


def counts(workflows: list[str] | None = None) -> Counts:
    """The counts now (the folded rows plus the deltas not folded yet), of ``workflows`` or all."""
    where, params = "", []
    if workflows is not None:
        where = f" WHERE workflow_name IN ({', '.join(['%s'] * len(workflows))})" if workflows else " WHERE 1 = 0"
        params = list(workflows)
    sql = (
        "SELECT workflow_name, version, status, SUM(n), MAX(last_at), SUM(delta) FROM ("
        f"  SELECT workflow_name, version, status, n, last_at, 0 AS delta FROM wf_status_count{where}"
        f"  UNION ALL SELECT workflow_name, version, status, n, at, 1 FROM wf_status_delta{where}"
        ") AS both_ GROUP BY workflow_name, version, status"
    )
    with _reading().cursor() as cursor:
        cursor.execute(sql, params * 2)
        rows = cursor.fetchall()
    if sum(row[5] for row in rows) > COMPACT_READ_THRESHOLD:
        compact()  # the next reader need not add them up again
    return Counts([row[:5] for row in rows])


def compact() -> int:
    """Fold the deltas into the counts; returns how many deltas were folded."""
    with transaction.atomic():
        with connection.cursor() as cursor:
            if connection.vendor == "postgresql":
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_LOCK_KEY])
                if not cursor.fetchone()[0]:
                    return 0  # another process is folding them now
            cursor.execute("SELECT MAX(id) FROM wf_status_delta")
            highest = cursor.fetchone()[0]
            if highest is None:
                return 0
            cursor.execute(
                "INSERT INTO wf_status_count (workflow_name, version, status, n, last_at) "
                "SELECT workflow_name, version, status, SUM(n), MAX(at) FROM wf_status_delta WHERE id <= %s "
                "GROUP BY workflow_name, version, status "
                "ON CONFLICT (workflow_name, version, status) DO UPDATE SET n = wf_status_count.n + EXCLUDED.n, "
                "last_at = CASE WHEN EXCLUDED.last_at IS NULL OR wf_status_count.last_at > EXCLUDED.last_at "
                "THEN wf_status_count.last_at ELSE EXCLUDED.last_at END",
                [highest],
            )
            cursor.execute("DELETE FROM wf_status_delta WHERE id <= %s", [highest])
            folded = int(cursor.rowcount or 0)
            cursor.execute("DELETE FROM wf_status_count WHERE n = 0")
            return folded


def delete_instances(instances: QuerySet[Instance]) -> int:
    """Delete ``instances`` and take them off the counts, in the caller's transaction."""
    with transaction.atomic():
        # Locked first, so no status changes between counting them and deleting them.
        locked = Instance.objects.filter(pk__in=list(instances.select_for_update().values_list("pk", flat=True)))
        gone = list(locked.values_list("workflow_name", "version", "status").annotate(n=Count("pk")).order_by())
        count, _ = locked.delete()
        StatusDelta.objects.bulk_create(
            StatusDelta(workflow_name=w, version=v, status=s, n=-n, at=None) for w, v, s, n in gone
        )
    return count


def _reading() -> Any:
    """The connection reads go to (a replica for a dashboard page; see config/replica.py)."""
    return connections[router.db_for_read(StatusCount) or "default"]


def _parse(text: str) -> datetime:
    from django.utils.dateparse import parse_datetime
    from django.utils.timezone import make_aware

    moment = parse_datetime(text)
    if moment is None:
        raise ValueError(f"not a datetime: {text!r}")
    return moment if moment.tzinfo else make_aware(moment)
