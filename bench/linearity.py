"""Cost per step must not grow with the number of earlier steps: 100, 1,000 and 10,000 steps."""

import time

from bench.common import Row


def run(db, sizes=(100, 1000, 10000)) -> list[Row]:
    from django.db import connection

    from workflows import get_workflow, tasks
    from workflows.models import Instance

    rows, per_step = [], {}
    for n in sizes:
        handle = get_workflow("bench-sequential").create(params={"n": n})
        pk = Instance.objects.get(workflow_name="bench-sequential", instance_id=handle.id).pk
        queries = []

        def count(execute, sql, params, many, context, queries=queries):
            queries.append(1)
            return execute(sql, params, many, context)

        with connection.execute_wrapper(count):
            started = time.perf_counter()
            outcome = tasks.advance(pk, renew_leases=False)
            elapsed = time.perf_counter() - started
        assert outcome == "complete", outcome
        per_step[n] = 1000 * elapsed / n
        rows.append(
            Row(
                f"{n:,}-step workflow",
                per_step[n],
                "ms/step",
                note=f"{len(queries) / n:.2f} queries/step, {elapsed:.1f} s total",
            )
        )
    growth = per_step[sizes[-1]] / per_step[sizes[0]]
    rows.append(
        Row(f"cost per step, {sizes[-1]:,} vs {sizes[0]:,} steps", growth, "×", target="linear (≈1×)", met=growth < 1.5)
    )
    return rows


if __name__ == "__main__":
    from bench.run import main_for

    main_for(run)
