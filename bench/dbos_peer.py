"""The same figures for DBOS Transact, measured in the same run: the peer column of the tables.

    python -m bench.dbos_peer --db postgres     # prints the figures as JSON

Runs in its own interpreter (DBOS is a process-wide singleton) against its own fresh
database, with DBOS's defaults (LISTEN/NOTIFY on PostgreSQL). Each figure mirrors ours:
a 200-step sequential workflow of no-op steps; a workflow waiting in ``DBOS.recv`` woken
by ``DBOS.send`` (until a step after it records the time); three-step workflows enqueued
on a DBOS queue (polled every 50 ms, 8 at a time) and run by the process's own queue runner. Install with
``pip install .[bench]``; without it the tables say "not installed".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

NOT_INSTALLED = "not installed (pip install .[bench])"
KEYS = ("step_ms", "wake_p50_ms", "wake_p99_ms", "throughput_per_s")


def measure(kind: str, quick: bool) -> dict[str, Any]:
    """Run this module in a fresh interpreter; {key: value} or {"error": why}."""
    try:
        import dbos  # noqa: F401
    except ImportError:
        return {"error": NOT_INSTALLED}
    args = [sys.executable, "-m", "bench.dbos_peer", "--db", kind, *(["--quick"] if quick else [])]
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        return {"error": f"failed: {done.stderr.strip().splitlines()[-1:] or done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def label(found: dict[str, Any], key: str, unit: str) -> str:
    from bench.common import fmt

    if "error" in found:
        return str(found["error"])
    value = found.get(key)
    return "–" if value is None else f"{fmt(value)} {unit}"


def _run(kind: str, quick: bool) -> dict[str, float]:
    from dbos import DBOS

    from bench.common import median, percentile

    if kind == "postgres":
        import psycopg

        from bench.common import PG_BASE

        name = f"wfbench_dbos_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = f"{PG_BASE.replace('postgres://', 'postgresql://', 1)}/{name}"
    else:
        url = f"sqlite:///{tempfile.mkdtemp(prefix='wfbench-dbos-')}/dbos.sqlite3"

    @DBOS.step()
    def noop() -> None:
        return None

    @DBOS.step()
    def stamp() -> float:
        return time.time()

    @DBOS.workflow()
    def sequential(n: int) -> int:
        for _ in range(n):
            noop()
        return n

    @DBOS.workflow()
    def waiter() -> float:
        DBOS.recv("go", timeout_seconds=60)
        return stamp()

    @DBOS.workflow()
    def three() -> int:
        noop()
        noop()
        noop()
        return 3

    # Notifications polled every 50 ms where there is no LISTEN (SQLite), as our workers poll.
    config = {"name": "wfbench", "system_database_url": url, "log_level": "WARNING"}
    DBOS(config={**config, "notification_listener_polling_interval_sec": 0.05})  # type: ignore[typeddict-item]
    DBOS.launch()
    # Polled every 50 ms, as our workers poll their queue (DBOS's default is 1 s).
    queue = DBOS.register_queue("bench", worker_concurrency=8, polling_interval_sec=0.05)
    try:
        per_step = []
        for _ in range(5):
            started = time.perf_counter()
            sequential(200)
            per_step.append(1000 * (time.perf_counter() - started) / 200)
        latencies = []
        for _ in range(15 if quick else 40):
            handle = DBOS.start_workflow(waiter)
            time.sleep(0.1)  # parked in recv, as a waiting instance would be
            sent = time.time()
            DBOS.send(handle.workflow_id, "x", topic="go")
            latencies.append(1000 * (handle.get_result() - sent))
        n = 200 if quick else 500
        started = time.time()
        handles = [queue.enqueue(three) for _ in range(n)]
        for handle in handles:
            handle.get_result()
        rate = n / (time.time() - started)
    finally:
        DBOS.destroy()
        if kind == "postgres":
            with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return {
        "step_ms": median(per_step),
        "wake_p50_ms": percentile(latencies, 50),
        "wake_p99_ms": percentile(latencies, 99),
        "throughput_per_s": rate,
        "version": __import__("importlib.metadata").metadata.version("dbos"),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    os.environ.setdefault("DBOS__APPVERSION", "bench")
    print(json.dumps(_run(options.db, options.quick)))
