"""EXPLAIN the queries that must stay fast at scale, on PostgreSQL with 100,000 instances.

    python -m bench.explain

Prints each query's plan; each line says which index it uses. The queries are the
engine's own (built by the same code), not copies.
"""

from __future__ import annotations

from bench.common import Database


def plans() -> list[tuple[str, str, str]]:
    from django.db import connection

    from workflows import clock
    from workflows.models import Instance, Step
    from workflows.states import StepKind, StepStatus

    now = clock.now()
    queries = [
        (
            "dispatcher: earliest due",
            "wf_instance_due",
            Instance.objects.filter(due_at__isnull=False).order_by("due_at").values("due_at")[:1],
        ),
        (
            "dispatcher: due instances",
            "wf_instance_due",
            Instance.objects.filter(due_at__lte=now).order_by("due_at").values_list("pk", flat=True)[:200],
        ),
        (
            "inbox: pending waits by deadline",
            "wf_step_waits",
            Step.objects.filter(kind=StepKind.WAIT, status=StepStatus.WAITING)
            .order_by("wake_at", "pk")
            .values("pk")[:50],
        ),
        (
            "list: newest first",
            "wf_instance_created",
            Instance.objects.order_by("-created_at", "-pk").values("pk")[:51],
        ),
        (
            "list: workflow + status",
            "wf_instance_list",
            Instance.objects.filter(workflow_name="approval", status="waiting")
            .order_by("-created_at", "-pk")
            .values("pk")[:51],
        ),
        (
            "list: id prefix",
            "wf_instance_id_prefix",
            Instance.objects.filter(instance_id__startswith="p-77").values("pk")[:51],
        ),
        (
            "get: by workflow and id",
            "Index Scan",
            Instance.objects.filter(workflow_name="approval", instance_id="p-5").values("pk"),
        ),
    ]
    out = []
    with connection.cursor() as cursor:
        for label, index, qs in queries:
            sql, params = qs.query.sql_with_params()
            cursor.execute("EXPLAIN " + sql, params)
            out.append((label, index, "\n".join(row[0] for row in cursor.fetchall())))
    return out


def main() -> None:
    from bench.scale import fill

    db = Database("postgres")
    db.setup_django()
    try:
        fill(100_000, 10_000)
        for label, index, plan in plans():
            used = ("uses " if index in plan else "DOES NOT use ") + (index if index != "Index Scan" else "an index")
            print(f"## {label}: {used}\n{plan}\n")
    finally:
        db.drop()


if __name__ == "__main__":
    main()
