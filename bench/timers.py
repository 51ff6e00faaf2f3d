"""Parked instances cost nothing; 10,000 timers due at the same second drain at full speed.

Writes PARKED instances waiting far in the future and TIMERS instances parked in a sleep
that all end at one moment (rows written with SQL, as the engine would leave them), runs a
worker (2 processes), reads the worker tree's CPU time while everything is parked, then
measures how fast the timers drain once due.

    python -m bench.timers --db postgres [--parked 100000 --timers 10000]
"""

from __future__ import annotations

import argparse
import os
import time
from datetime import UTC, datetime, timedelta

from bench.common import Database, Row, Workers, table, wait_until


def cpu_seconds(pids) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime + stime
        except OSError:
            pass
    return total / ticks


def fill_timers(count: int, due: datetime) -> None:
    from django.db import connection

    from workflows.models import Instance, Step

    rows = [
        Instance(
            workflow_name="bench-timer",
            instance_id=f"t{i}",
            status="waiting",
            params="{}",
            created_at=due - timedelta(minutes=1),
            updated_at=due - timedelta(minutes=1),
            started_at=due - timedelta(minutes=1),
            wake_at=due,
            due_at=due,
        )
        for i in range(count)
    ]
    Instance.objects.bulk_create(rows, batch_size=2000)
    pks = dict(Instance.objects.filter(workflow_name="bench-timer").values_list("instance_id", "pk"))
    Step.objects.bulk_create(
        [
            Step(
                instance_id=pk,
                kind="sleep",
                name="nap",
                occurrence=1,
                seq=1,
                status="sleeping",
                wake_at=due,
                started_at=due - timedelta(minutes=1),
            )
            for pk in pks.values()
        ],
        batch_size=2000,
    )
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def run(db, parked: int = 100_000, timers: int = 10_000, idle_seconds: float = 10) -> list[Row]:
    from django.db.models import Max

    from bench.scale import fill
    from workflows.models import Instance

    def idle_cpu(workers) -> float:
        before, started = cpu_seconds(workers.pids()), time.monotonic()
        time.sleep(idle_seconds)
        return (cpu_seconds(workers.pids()) - before) / (time.monotonic() - started)

    with Workers(db, processes=2) as workers:
        time.sleep(2)
        empty_cpu = idle_cpu(workers)
    fill(0, parked)  # waiting until far in the future
    due = datetime.now(UTC) + timedelta(seconds=40 + timers / 1000)
    fill_timers(timers, due)
    parked_rows = Instance.objects.filter(instance_id__startswith="p-")
    newest_before = parked_rows.aggregate(m=Max("updated_at"))["m"]
    with Workers(db, processes=2) as workers:
        time.sleep(2)
        parked_cpu = idle_cpu(workers)
        touched = parked_rows.aggregate(m=Max("updated_at"))["m"] != newest_before
        remaining = (due - datetime.now(UTC)).total_seconds()
        assert remaining > 1, "filling took longer than planned; raise the margin"
        time.sleep(remaining)
        done = Instance.objects.filter(workflow_name="bench-timer", status="complete")
        wait_until(lambda: done.count() >= timers, 1200, "the timers to drain", interval=0.5)
        drained_in = (datetime.now(UTC) - due).total_seconds()
    return [
        Row(
            f"idle worker CPU with {parked + timers:,} instances parked",
            100 * parked_cpu,
            "% of one core",
            100 * empty_cpu,
            "the same worker, empty database",
            "no cost per parked instance",
            met=parked_cpu <= 1.5 * empty_cpu + 0.5 and not touched,
            note="no parked instance touched" if not touched else "PARKED INSTANCES WERE TOUCHED",
        ),
        Row(
            f"{timers:,} timers due at the same moment",
            timers / drained_in,
            "instances/s",
            target="full worker speed",
            note=f"drained in {drained_in:.0f} s; compare the bulk throughput figure",
        ),
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--parked", type=int, default=100_000)
    parser.add_argument("--timers", type=int, default=10_000)
    args = parser.parse_args()
    db = Database(args.db)
    db.setup_django()
    try:
        print(table(run(db, args.parked, args.timers), f"{args.db}, parked instances and timers"))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
