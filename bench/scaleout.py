"""Scale-out: the same load run by 1, 2 and 4 `workflows worker` trees against one database.

Each tree is what one machine runs (a django-q2 cluster of 2 processes and a dispatcher);
here they share 2 cores, so the figure to watch is that throughput does not fall as trees
are added (no lock-contention collapse), and that no step ran twice: every step of every
instance has exactly one attempt.
"""

import time

import psutil

from bench.common import OBSERVER_INTERVAL, Row, Workers, busy_cores, last_ended, wait_until


def run(db, n: int = 300, trees: tuple[int, ...] = (1, 2, 4)) -> list[Row]:
    from django.db.models import Count

    from workflows import get_workflow
    from workflows.models import Attempt, Instance, Step

    rows, first = [], None
    for count in trees:
        prefix = f"x{count}-"
        with Workers(db, processes=2, trees=count):
            started = time.time()
            handle = get_workflow("bench-three")
            for offset in range(0, n, 100):
                handle.create_batch([{"id": f"{prefix}{offset + i}"} for i in range(min(100, n - offset))])
            done = Instance.objects.filter(workflow_name="bench-three", instance_id__startswith=prefix)
            cpu_before = psutil.cpu_times()
            wait_until(
                lambda d=done: d.filter(status="complete").count() >= n, 600, f"{count} trees", OBSERVER_INTERVAL
            )
            rate = n / (last_ended(done) - started)
            busy = busy_cores(cpu_before, psutil.cpu_times())
        steps = Step.objects.filter(instance__instance_id__startswith=prefix)
        # A step that ran twice has a second attempt: counted on its row, and a failed
        # first attempt leaves an Attempt row; every instance must have its 3 steps once.
        twice = steps.exclude(attempts=1).count() + (
            Attempt.objects.filter(step__in=steps).values("step_id").annotate(n=Count("pk")).filter(n__gt=1).count()
        )
        if steps.count() != 3 * n:
            twice += abs(steps.count() - 3 * n)
        first = first or rate
        rows.append(
            Row(
                f"scale-out, {n} three-step workflows, {count} worker tree{'s' if count > 1 else ''}",
                rate,
                "workflows/s",
                first if count > 1 else None,
                "1 tree" if count > 1 else "",
                "no fall vs 1 tree; no step twice",
                twice == 0 and rate >= 0.8 * first,
                # CPU per workflow, the whole machine's: when it grows with the trees, the
                # fall is the shared cores (more processes on them), not the database.
                note=f"{twice} steps ran twice; {busy:.1f} of {psutil.cpu_count()} cores busy,"
                f" {1000 * busy / rate:.1f} ms of CPU per workflow",
            )
        )
    return rows


if __name__ == "__main__":
    from bench.run import main_for

    main_for(run)
