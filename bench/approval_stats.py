"""The Approvals page with 100,000 decided requests: its figures and the page, server-side.

Fills DECIDED closed requests spread over 40 days across five workflows (each with its
instance and step, by SQL so it takes seconds) and OPEN open ones, then times
``approvals.stats()`` (median and 90th percentile per workflow over 7 and 30 days, open
and overdue requests) and the ``/approvals/`` page. The baseline, measured in the same
run, is the obvious implementation: read every decision time of the last 30 days into
Python and take the percentiles there.

    python -m bench.approval_stats --db postgres
    python -m bench.approval_stats --db sqlite
"""

from __future__ import annotations

import argparse
import math
import time

from bench.common import Database, Row, median, table

WORKFLOWS = ("expense", "approval", "leave", "purchase", "access")


def fill(decided: int, open_: int) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            series = "generate_series(1, {n}) AS g(x)"
            ago = "now() - ((x % 3456000) || ' seconds')::interval"  # spread over 40 days
            pick = "(ARRAY['expense', 'approval', 'leave', 'purchase', 'access'])[1 + x % 5]"
        else:
            series = "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c)"
            ago = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || (x % 3456000) || ' seconds')"
            pick = (
                "CASE x % 5 WHEN 0 THEN 'expense' WHEN 1 THEN 'approval' WHEN 2 THEN 'leave' "
                "WHEN 3 THEN 'purchase' ELSE 'access' END"
            )
        for prefix, n, status in (("d-", decided, "complete"), ("o-", open_, "waiting")):
            cursor.execute(
                "INSERT INTO wf_instance (workflow_name, instance_id, status, params, created_at, updated_at,"
                " pause_requested, events_version, worker_crashes, run_number) "
                f"SELECT {pick}, '{prefix}' || x, '{status}', '{{}}', {ago}, {ago}, FALSE, 0, 0, 1"
                f" FROM {series.format(n=n)}"
            )
        cursor.execute(
            "INSERT INTO wf_step (instance_id, run_number, kind, name, occurrence, seq, status, attempts, started_at,"
            " wake_at) SELECT id, 1, 'approval', 'sign off', 1, 1,"
            " CASE WHEN status = 'waiting' THEN 'waiting' ELSE 'succeeded' END, 0, created_at,"
            " CASE WHEN status = 'waiting' THEN created_at END FROM wf_instance"
        )
        cursor.execute(
            "INSERT INTO wf_approval (instance_id, step_id, workflow_name, instance_key, step_name, occurrence, title,"
            " details, quorum, form, status, created_at, closed_at, closed_by, decision_seconds, on_timeout,"
            " reminders_sent) "
            "SELECT i.id, s.id, i.workflow_name, i.instance_id, 'sign off', 1, 'Request ' || i.instance_id, 'null', 1,"
            " '', CASE WHEN i.status = 'waiting' THEN 'open' ELSE 'approved' END, i.created_at,"
            " CASE WHEN i.status = 'waiting' THEN NULL ELSE i.updated_at END, 'ada',"
            " NULL, 'error', 0 FROM wf_instance i JOIN wf_step s ON s.instance_id = i.id"
        )
        # Decision times: up to two days, different for each request.
        cursor.execute("UPDATE wf_approval SET decision_seconds = (id % 86400) * 2.0 WHERE status = 'approved'")
        if connection.vendor == "postgresql":
            cursor.execute(
                "UPDATE wf_approval SET closed_at = created_at + (decision_seconds || ' seconds')::interval "
                "WHERE status = 'approved'"
            )
            cursor.execute("ANALYZE")
        else:
            cursor.execute(
                "UPDATE wf_approval SET closed_at = strftime('%Y-%m-%d %H:%M:%f', created_at, "
                "'+' || decision_seconds || ' seconds') WHERE status = 'approved'"
            )
            cursor.execute("ANALYZE")
    count_decision_times()


def count_decision_times() -> None:
    """What closing each request counts (``record_decision_time``), for the rows filled by SQL."""
    from collections import Counter

    from workflows.approval_stats import bucket_of
    from workflows.models import ApprovalRequest, ApprovalTiming

    decided = ApprovalRequest.objects.filter(decision_seconds__isnull=False)
    counts = Counter(
        (workflow, closed_at.date(), bucket_of(seconds))
        for workflow, closed_at, seconds in decided.values_list("workflow_name", "closed_at", "decision_seconds")
    )
    ApprovalTiming.objects.bulk_create(
        [ApprovalTiming(workflow_name=w, day=d, bucket=b, count=n) for (w, d, b), n in counts.items()], batch_size=2000
    )


def exact_percentiles() -> dict[str, tuple[float, float]]:
    """Every decision time of the 30-day window into Python, percentiles there (the baseline)."""
    from datetime import timedelta

    from workflows import now
    from workflows.models import ApprovalRequest

    since = now().replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=29)  # the same window
    by_workflow: dict[str, list[float]] = {}
    rows = ApprovalRequest.objects.filter(decision_seconds__isnull=False, closed_at__gte=since)
    for workflow, took in rows.values_list("workflow_name", "decision_seconds"):
        by_workflow.setdefault(workflow, []).append(took)
    found = {}
    for workflow, values in by_workflow.items():
        values.sort()
        found[workflow] = (values[math.ceil(0.5 * len(values)) - 1], values[math.ceil(0.9 * len(values)) - 1])
    return found


def timed(fn, n: int = 5) -> float:
    fn()  # warm
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(1000 * (time.perf_counter() - started))
    return median(samples)


def run(db, decided: int = 100_000, open_: int = 1_000) -> list[Row]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    from workflows import approvals

    settings.ALLOWED_HOSTS = ["*"]
    started = time.perf_counter()
    fill(decided, open_)
    filled_in = time.perf_counter() - started
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "pw"))
    figures = approvals.stats()
    assert sum(t.timings[30].decided for t in figures.workflows) > 0.5 * decided * 30 / 40
    exact = exact_percentiles()
    error = max(
        abs(got - want) / want
        for wf in figures.workflows
        for got, want in zip((wf.timings[30].median, wf.timings[30].p90), exact[wf.workflow], strict=True)
    )
    baseline = timed(exact_percentiles)
    stats_ms = timed(approvals.stats)

    def page() -> None:
        response = client.get("/approvals/")
        assert response.status_code == 200

    page_ms = timed(page)
    note = f"{decided:,} decided + {open_:,} open, filled in {filled_in:.0f} s"
    return [
        Row("approvals.stats(): percentiles, open, overdue", stats_ms, "ms", baseline, "all times into Python",
            "faster than the baseline", stats_ms < baseline, note=note),
        Row("the Approvals page (/approvals/)", page_ms, "ms", target="< 100 ms", met=page_ms < 100),
        Row("largest difference from the exact 30-day percentiles", 100 * error, "%", target="< 3 %",
            met=error < 0.03),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--decided", type=int, default=100_000)
    args = parser.parse_args()
    db = Database(args.db)
    db.setup_django()
    try:
        print(table(run(db, decided=args.decided), f"{args.db}, approval figures"))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
