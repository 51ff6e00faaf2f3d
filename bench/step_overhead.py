"""Per-step overhead of a no-op step.do in a sequential workflow, against one raw commit."""

import time

from bench.common import Row, median, raw_commit_ms


def run(db, steps: int = 200, repeats: int = 5) -> list[Row]:
    from workflows import get_workflow, tasks
    from workflows.models import Instance

    per_step = []
    for _ in range(repeats):
        handle = get_workflow("bench-sequential").create(params={"n": steps})
        pk = Instance.objects.get(workflow_name="bench-sequential", instance_id=handle.id).pk
        started = time.perf_counter()
        assert tasks.advance(pk, renew_leases=False) == "complete"
        per_step.append(1000 * (time.perf_counter() - started) / steps)
    commit = median([raw_commit_ms() for _ in range(3)])
    value = median(per_step)
    target = 0.8 if db.kind == "postgres" else 0.5
    return [
        Row(
            "per-step overhead, no-op step.do (sequential)",
            value,
            "ms",
            commit,
            "one raw INSERT commit",
            f"< {target} ms",
            value < target,
            peer_key="step_ms",
        )
    ]


if __name__ == "__main__":
    from bench.run import main_for

    main_for(run)
