"""send_event -> the waiting instance's next step starts; and timer lateness (due -> started)."""

import time
from datetime import UTC, datetime, timedelta

from bench.common import Row, Workers, percentile, wait_until

# The benchmark reads when the step started from the step's own clock, so it need not watch
# the instance while the wake-up happens: polling status then took CPU from the worker
# being measured (2 cores), and a sender that sends and waits for nothing does not poll.
OBSERVER_QUIET_SECONDS = 0.05
# The first wake-ups after the workers start are reported on their own row, not in the
# percentiles: each fast-lane runner's first one pays its new database backend's first
# touch of the tables (and Python's first run of the path), 2.5-4 ms once per runner per
# process lifetime. DBOS's wake-ups are measured after its per-step loop has warmed it.
COLD_WAKES = 4


def _wake_once(waiter, instance_id: str) -> float:
    handle = waiter.create(id=instance_id)
    wait_until(lambda: handle.status()["status"] == "waiting", 30, "the wait")
    time.sleep(0.05)  # let the worker go idle, as a real waiting instance would be
    sent = time.time()
    handle.send_event("go")
    time.sleep(OBSERVER_QUIET_SECONDS)
    wait_until(lambda: handle.status()["status"] == "complete", 30, "resume")
    return 1000 * (handle.status()["output"] - sent)


def run(db, events: int = 40, timers: int = 40) -> list[Row]:
    from workflows import get_workflow

    lateness = []
    with Workers(db, processes=2):
        waiter = get_workflow("bench-wait")
        cold = [_wake_once(waiter, f"cold{i}") for i in range(COLD_WAKES)]
        latencies = [_wake_once(waiter, f"w{i}") for i in range(events)]

        sleeper = get_workflow("bench-sleep")
        base = datetime.now(UTC) + timedelta(seconds=2)
        dues = {}
        for i in range(timers):
            due = base + timedelta(milliseconds=97 * i)
            dues[f"s{i}"] = due
            sleeper.create(id=f"s{i}", params={"until": due})
        for iid, due in dues.items():
            handle = sleeper.get(iid)
            time.sleep(max(0.0, due.timestamp() + OBSERVER_QUIET_SECONDS - time.time()))
            wait_until(lambda h=handle: h.status()["status"] == "complete", 60, "timers")
            lateness.append(1000 * (handle.status()["output"] - due.timestamp()))
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    late99 = percentile(lateness, 99)
    t50, t99 = (3, 10) if db.kind == "postgres" else (15, 40)
    return [
        Row(
            "send_event -> next step starts, p50",
            p50,
            "ms",
            target=f"< {t50} ms",
            met=p50 < t50,
            peer_key="wake_p50_ms",
        ),
        Row(
            "send_event -> next step starts, p99",
            p99,
            "ms",
            target=f"< {t99} ms",
            met=p99 < t99,
            peer_key="wake_p99_ms",
        ),
        Row(
            f"send_event -> next step starts, the first {COLD_WAKES} after the workers start (not in p50 / p99)",
            max(cold),
            "ms",
            note="slowest; each: " + ", ".join(f"{ms:.1f}" for ms in cold),
        ),
        Row(
            "timer lateness (due -> step started), p99",
            late99,
            "ms",
            target="< 25 ms",
            met=late99 < 25,
            note=f"p50 {percentile(lateness, 50):.0f} ms",
        ),
    ]


if __name__ == "__main__":
    from bench.run import main_for

    main_for(run)
