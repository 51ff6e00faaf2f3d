"""Dashboard pages and API lists with many instances in the database.

Fills FINISHED completed instances and PARKED waiting ones (a tenth of them waiting for an
approval), with SQL so that a million rows take seconds, then times each page and list
call server-side (Django's test client, templates included) and the engine's create ->
finish cost against the same on an empty database.

    python -m bench.scale --db postgres                 # 100,000 + 10,000 (the dashboard's figure)
    python -m bench.scale --db postgres --full          # 1,000,000 + 100,000 (the engine's)
"""

from __future__ import annotations

import argparse
import time

from bench.common import Database, Row, median, table

PAGES = [
    ("overview", "/"),
    ("instance list", "/instances/"),
    ("instance list, one workflow and status", "/instances/?workflow=approval&status=waiting"),
    ("instance list, id prefix search", "/instances/?q=p-77"),
    ("instance detail", "/instances/approval/p-5/"),
    ("approval inbox (an operator: every open request)", "/inbox/"),
    ("API list", "/api/workflows/approval/instances?status=complete&limit=50"),
]


def fill(finished: int, parked: int) -> None:
    from django.db import connection

    names = "'approval', 'data-pipeline', 'fan-out', 'race'"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            series = "generate_series(1, {n}) AS g(x)"
            ago = "now() - (x || ' seconds')::interval"
            ahead = "now() + interval '30 days' + (x || ' seconds')::interval"
            pick = f"(ARRAY[{names}])[1 + x % 4]"
        else:
            series = "(WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {n}) SELECT x FROM c)"
            ago = "strftime('%Y-%m-%d %H:%M:%f', 'now', '-' || x || ' seconds')"
            ahead = "strftime('%Y-%m-%d %H:%M:%f', 'now', '+30 days', '+' || x || ' seconds')"
            pick = "CASE x % 4 WHEN 0 THEN 'approval' WHEN 1 THEN 'data-pipeline' WHEN 2 THEN 'fan-out' ELSE 'race' END"
        columns = (
            "(workflow_name, instance_id, status, params, created_at, updated_at, ended_at, wake_at, due_at,"
            " pause_requested, events_version, worker_crashes, run_number, version, deployment, trace_context,"
            " last_span)"
        )
        cursor.execute(
            f"INSERT INTO wf_instance {columns} SELECT {pick}, 'f-' || x, 'complete', '{{}}', {ago}, {ago}, {ago},"
            f" NULL, NULL, FALSE, 0, 0, 1, '', '', '', '' FROM {series.format(n=finished)}"
        )
        cursor.execute(
            f"INSERT INTO wf_instance {columns} SELECT 'approval', 'p-' || x, 'waiting',"
            f' \'{{"userId": "u", "summary": "s"}}\', {ago}, {ago}, NULL, {ahead}, {ahead}, FALSE, 0, 0, 1, \'\', \'\','
            " '', ''"
            f" FROM {series.format(n=parked)}"
        )
        cursor.execute(
            "INSERT INTO wf_step (instance_id, kind, name, occurrence, seq, status, attempts, started_at, wake_at,"
            " event_type, run_number) "
            "SELECT id, 'approval', 'manager approval', 1, 1, 'waiting', 0, created_at, wake_at, NULL, 1 "
            "FROM wf_instance WHERE instance_id LIKE 'p-%' AND id % 10 = 0"
        )
        # Each of those an open request for the finance group, as step.wait_for_approval makes.
        cursor.execute(
            "INSERT INTO wf_approval (instance_id, step_id, workflow_name, instance_key, step_name, occurrence,"
            " title, details, approvers, quorum, requested_by, form, status, created_at, closed_by, on_timeout,"
            " reminders_sent) "
            "SELECT s.instance_id, s.id, 'approval', i.instance_id, s.name, 1, 'Request ' || i.instance_id, 'null',"
            " '[\"group:finance\"]', 1, 'u', '', 'open', s.started_at, '', 'error', 0 "
            "FROM wf_step s JOIN wf_instance i ON i.id = s.instance_id WHERE s.kind = 'approval'"
        )
        cursor.execute(
            "INSERT INTO wf_approval_approver (request_id, kind, value, escalated) "
            "SELECT id, 'group', 'finance', FALSE FROM wf_approval"
        )
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE")


def vacuum_folded_deltas() -> None:
    """What autovacuum does within a minute to the million deltas the fill folded at once
    (wf_status_delta is tuned for it: migration 0013). In production the deltas of two
    seconds are folded at a time; here, unvacuumed, the pages would scan 77 MB of dead rows."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE wf_status_delta")


def finance_member():
    from django.contrib.auth.models import Group, User

    user = User.objects.create_user("fiona", password="pw-bench-12345")
    user.groups.add(Group.objects.create(name="finance"))
    return user


def time_pages(client, pages) -> dict[str, float]:
    results = {}
    for label, url in pages:
        client.get(url)  # warm
        samples = []
        for _ in range(5):
            started = time.perf_counter()
            response = client.get(url)
            samples.append(1000 * (time.perf_counter() - started))
            assert response.status_code == 200, (url, response.status_code)
        results[label] = median(samples)
    return results


def engine_cycle_ms(n: int = 50) -> float:
    """Create, run and finish a 3-step instance in-process: the engine's per-instance cost."""
    from workflows import get_workflow, tasks
    from workflows.models import Instance

    samples = []
    for _ in range(n):
        started = time.perf_counter()
        handle = get_workflow("bench-three").create()
        tasks.advance(Instance.objects.get(workflow_name="bench-three", instance_id=handle.id).pk, renew_leases=False)
        samples.append(1000 * (time.perf_counter() - started))
    return median(samples)


def run(db, finished: int = 100_000, parked: int = 10_000) -> list[Row]:
    from django.conf import settings
    from django.contrib.auth.models import User
    from django.test import Client

    settings.ALLOWED_HOSTS = ["*"]
    settings.WORKFLOWS = {**settings.WORKFLOWS, "ENQUEUE": False}
    empty = engine_cycle_ms()
    started = time.perf_counter()
    fill(finished, parked)
    filled_in = time.perf_counter() - started
    from workflows import status_counts

    started = time.perf_counter()
    status_counts.compact()  # what the dispatcher does every 2 s, here once for the whole fill
    folded_in = time.perf_counter() - started
    vacuum_folded_deltas()
    loaded = engine_cycle_ms()
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "b@example.com", "pw"))
    rows = [
        Row(
            f"create -> 3 steps -> complete, with {finished:,} + {parked:,} rows",
            loaded,
            "ms",
            empty,
            "empty database",
            "within 20 %",
            loaded <= 1.2 * empty,
            note=f"filled in {filled_in:.0f} s, counts folded in {folded_in:.1f} s",
        )
    ]
    timed = time_pages(client, PAGES)
    approver = Client()
    approver.force_login(finance_member())
    timed.update(time_pages(approver, [("approval inbox (an approver in the finance group)", "/inbox/")]))
    for label, ms in timed.items():
        rows.append(Row(f"{label} ({finished + parked:,} instances)", ms, "ms", target="< 100 ms", met=ms < 100))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--full", action="store_true", help="1,000,000 finished + 100,000 parked")
    args = parser.parse_args()
    db = Database(args.db)
    db.setup_django()
    try:
        sizes = {"finished": 1_000_000, "parked": 100_000} if args.full else {}
        print(table(run(db, **sizes), f"{args.db}, scale"))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
