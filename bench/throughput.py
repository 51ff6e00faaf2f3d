"""Three-step no-op workflows created in bulk, run by 2 worker processes; vs bare django-q2 tasks."""

import time

from bench.common import OBSERVER_INTERVAL, Row, Workers, last_ended, wait_until


def run(db, n: int = 500) -> list[Row]:
    from django_q.tasks import async_task

    from bench.benchapp.models import Mark
    from workflows import get_workflow
    from workflows.models import Instance

    with Workers(db, processes=2):
        # Baseline: n bare django-q2 tasks, each recording when it ran.
        started = time.time()
        for i in range(n):
            async_task("bench.benchapp.tasks.noop", f"raw-{i}")
        wait_until(lambda: Mark.objects.filter(key__startswith="raw-").count() >= n, 600, "raw tasks")
        raw_rate = n / (max(Mark.objects.filter(key__startswith="raw-").values_list("t", flat=True)) - started)

        handle = get_workflow("bench-three")
        started = time.time()
        for offset in range(0, n, 100):
            handle.create_batch([{"id": f"t{offset + i}"} for i in range(min(100, n - offset))])
        done = Instance.objects.filter(workflow_name="bench-three", status="complete")
        wait_until(lambda: done.count() >= n, 600, "workflows", interval=OBSERVER_INTERVAL)
        rate = n / (last_ended(done) - started)
    target = 300 if db.kind == "postgres" else 150
    return [
        Row(
            f"throughput, {n} three-step workflows created in bulk",
            rate,
            "workflows/s",
            raw_rate,
            "bare django-q2 tasks/s",
            f"> {target}/s",
            rate > target,
            peer_key="throughput_per_s",
        )
    ]


if __name__ == "__main__":
    from bench.run import main_for

    main_for(run)
