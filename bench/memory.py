"""A worker's resident memory over many steps (in this process, running the worker's code)."""

from bench.common import Row


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run(db, instances: int = 40, steps: int = 500) -> list[Row]:
    from workflows import get_workflow, tasks
    from workflows.models import Instance

    def batch(count):
        for _ in range(count):
            handle = get_workflow("bench-sequential").create(params={"n": steps})
            tasks.advance(
                Instance.objects.get(workflow_name="bench-sequential", instance_id=handle.id).pk, renew_leases=False
            )

    batch(4)  # warm up: imports, caches, connection
    before = rss_mb()
    batch(instances)
    after = rss_mb()
    total = instances * steps
    return [
        Row(
            f"worker memory over {total:,} steps",
            after - before,
            "MB growth",
            before,
            "resident before",
            "flat",
            (after - before) < 20,
            baseline_unit="MB",
        )
    ]


if __name__ == "__main__":
    from bench.run import main_for

    main_for(run)
