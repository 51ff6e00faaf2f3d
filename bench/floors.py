"""The floors: what the same durable writes cost in raw psycopg, without Django or the engine.

Each figure does the writes our guarantees need, and nothing else, on the same server:

- per step: one autocommitted statement that stores step N's result and starts step N+1
  (the attempt start must be durable before user code runs; the result rides along);
- wake-up: the sender locks the instance, inserts the event and updates the instance in one
  transaction with a NOTIFY; a listening process claims the instance (UPDATE ... RETURNING),
  reads its steps, consumes the event and ends the wait in one transaction, then commits
  the next step's start; from the sender's first statement to that commit;
- bulk: 2 processes, each claiming new instances and running 3 steps and the completion
  (claim, 3 combined step writes, finish: 5 commits an instance), after one batch insert;
  and the same with 8 processes, as many as the 4-tree scale-out runs, on the same cores;
- fan-out: the fan-out figure's CPU-bound steps with no engine and no database, 4 threads
  in each of 2 processes, started at once.

The database floors are PostgreSQL's only (SQLite has no NOTIFY, and its floors are a
commit apiece); the fan-out floor is measured on both runs.
"""

from __future__ import annotations

import multiprocessing
import time
from typing import Any

import psycopg

from bench.common import Row, percentile
from bench.fanout import CORES, IDEAL_FACTOR

SCHEMA = """
CREATE TABLE IF NOT EXISTS floor_instance (id serial PRIMARY KEY, status text, lease text,
  wake_at timestamptz, events_version int DEFAULT 0);
CREATE TABLE IF NOT EXISTS floor_step (id serial PRIMARY KEY, instance_id int, name text, status text,
  result text, started_at timestamptz DEFAULT now());
CREATE TABLE IF NOT EXISTS floor_event (id serial PRIMARY KEY, instance_id int, type text, payload text,
  consumed boolean DEFAULT false);
CREATE INDEX IF NOT EXISTS floor_step_instance ON floor_step (instance_id);
"""
STEP = (
    "WITH done AS (UPDATE floor_step SET status = 'succeeded', result = %s WHERE id = %s "
    "AND EXISTS (SELECT 1 FROM floor_instance WHERE id = %s AND lease = %s) RETURNING id) "
    "INSERT INTO floor_step (instance_id, name, status) SELECT %s, %s, 'running' "
    "WHERE EXISTS (SELECT 1 FROM done) RETURNING id"
)
CLAIM = (
    "UPDATE floor_instance SET status = 'running', lease = %s "
    "WHERE id = %s AND status IN ('queued', 'waiting') RETURNING *"
)
FIRST_STEP = (
    "INSERT INTO floor_step (instance_id, name, status) SELECT %s, %s, 'running' "
    "WHERE EXISTS (SELECT 1 FROM floor_instance WHERE id = %s AND lease = %s) RETURNING id"
)
TAKE_EVENT = (
    "UPDATE floor_event SET consumed = true WHERE id = (SELECT id FROM floor_event "
    "WHERE instance_id = %s AND NOT consumed ORDER BY id LIMIT 1) RETURNING payload"
)
NEW_INSTANCE = "INSERT INTO floor_instance (status, lease) VALUES (%s, %s) RETURNING id"


def _connect(url: str) -> psycopg.Connection:
    return psycopg.connect(url, autocommit=True)


def per_step_ms(url: str, steps: int = 2000) -> float:
    with _connect(url) as conn:
        pk = conn.execute(NEW_INSTANCE, ["running", "t"]).fetchone()[0]
        step = conn.execute(FIRST_STEP, [pk, "s0", pk, "t"]).fetchone()[0]
        started = time.perf_counter()
        for i in range(steps):
            step = conn.execute(STEP, ["null", step, pk, "t", pk, f"s{i + 1}"]).fetchone()[0]
        return 1000 * (time.perf_counter() - started) / steps


def _listener(url: str, ready, results, n: int) -> None:
    with _connect(url) as listen, _connect(url) as conn:
        listen.execute("LISTEN floor_wake")
        ready.set()
        seen = 0
        for note in listen.notifies():
            pk = int(note.payload)
            conn.execute(CLAIM, ["w", pk]).fetchall()
            conn.execute("SELECT * FROM floor_step WHERE instance_id = %s", [pk]).fetchall()
            with conn.transaction():
                conn.execute(TAKE_EVENT, [pk]).fetchall()
                conn.execute(
                    "UPDATE floor_step SET status = 'succeeded' WHERE instance_id = %s AND name = 'wait'", [pk]
                )
            conn.execute(FIRST_STEP, [pk, "next", pk, "w"]).fetchone()
            results.put(time.time())
            seen += 1
            if seen == n:
                return


def wake_ms(url: str, n: int = 40) -> tuple[float, float]:
    ctx = multiprocessing.get_context("fork")
    ready, results = ctx.Event(), ctx.Queue()
    proc = ctx.Process(target=_listener, args=(url, ready, results, n))
    proc.start()
    ready.wait(10)
    latencies = []
    with _connect(url) as conn:
        for _ in range(n):
            pk = conn.execute(NEW_INSTANCE, ["waiting", None]).fetchone()[0]
            conn.execute("INSERT INTO floor_step (instance_id, name, status) VALUES (%s, 'wait', 'waiting')", [pk])
            time.sleep(0.05)
            sent = time.time()
            with conn.transaction():
                conn.execute("SELECT status FROM floor_instance WHERE id = %s FOR UPDATE", [pk]).fetchone()
                conn.execute("INSERT INTO floor_event (instance_id, type, payload) VALUES (%s, 'go', 'null')", [pk])
                conn.execute("UPDATE floor_instance SET events_version = events_version + 1 WHERE id = %s", [pk])
                conn.execute("SELECT pg_notify('floor_wake', %s)", [str(pk)])
            latencies.append(1000 * (results.get(timeout=10) - sent))
    proc.join(10)
    return percentile(latencies, 50), percentile(latencies, 99)


def _bulk_worker(url: str, pks: list[int]) -> None:
    with _connect(url) as conn:
        for pk in pks:
            conn.execute(CLAIM, ["b", pk]).fetchall()
            step = conn.execute(FIRST_STEP, [pk, "a", pk, "b"]).fetchone()[0]
            for name in ("b", "c"):
                step = conn.execute(STEP, ["1", step, pk, "b", pk, name]).fetchone()[0]
            conn.execute("UPDATE floor_step SET status = 'succeeded' WHERE id = %s", [step])
            conn.execute(
                "UPDATE floor_instance SET status = 'complete', lease = NULL WHERE id = %s AND lease = %s", [pk, "b"]
            )


def bulk_per_second(url: str, n: int = 2000, processes: int = 2) -> float:
    with _connect(url) as conn:
        started = time.perf_counter()
        created = conn.execute(
            "INSERT INTO floor_instance (status) SELECT 'queued' FROM generate_series(1, %s) RETURNING id", [n]
        )
        pks = [row[0] for row in created.fetchall()]
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_bulk_worker, args=(url, pks[i::processes])) for i in range(processes)]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return n / (time.perf_counter() - started)


def _burn_in_threads(work: int, threads: int, steps_cpu: Any) -> None:
    import threading

    from bench.benchapp.workflows import burn_measured

    def step() -> None:
        spent = burn_measured(work)
        with steps_cpu.get_lock():
            steps_cpu.value += spent

    running = [threading.Thread(target=step) for _ in range(threads)]
    for thread in running:
        thread.start()
    for thread in running:
        thread.join()


def fanout_floor_s(steps: int = 8, processes: int = 2) -> tuple[float, float, float]:
    """The fan-out figure's work with no engine at all: the same calibrated CPU-bound steps,
    ``steps / processes`` threads in each of ``processes`` processes at once. Returns (wall
    seconds, one step alone, the steps' own CPU time summed)."""
    from bench.benchapp.workflows import burn
    from bench.fanout import calibrate

    work = calibrate()
    started = time.perf_counter()
    burn(work)
    one = time.perf_counter() - started
    ctx = multiprocessing.get_context("fork")
    steps_cpu = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=_burn_in_threads, args=(work, steps // processes, steps_cpu)) for _ in range(processes)]
    started = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    return time.perf_counter() - started, one, steps_cpu.value


def run(db, wakes: int = 40, bulk: int = 2000) -> list[Row]:
    wall, one, steps_cpu = fanout_floor_s()
    fanout = Row(
        f"floor: fan-out, 8 CPU-bound steps of {one:.2f} s in 4 threads x 2 processes, no engine",
        wall,
        "s wall",
        steps_cpu / CORES,
        f"ideal: {steps_cpu:.2f} s of step CPU / {CORES} cores",
        target=f"< 4.2 s, < {IDEAL_FACTOR:.2f}x the ideal (ours)",
    )
    if db.kind != "postgres":
        return [fanout]
    with _connect(db.url) as conn:
        conn.execute(SCHEMA)
    p50, p99 = wake_ms(db.url, n=wakes)
    two = bulk_per_second(db.url, n=bulk)
    return [
        fanout,
        Row("floor: per step, raw psycopg (one combined commit)", per_step_ms(db.url), "ms", target="< 0.8 ms (ours)"),
        Row("floor: send_event -> next step starts, raw psycopg, p50", p50, "ms", target="< 3 ms (ours)"),
        Row("floor: send_event -> next step starts, raw psycopg, p99", p99, "ms", target="< 10 ms (ours)"),
        Row("floor: 3-step workflows, raw psycopg, 2 processes", two, "workflows/s", target="> 300/s"),
        Row(
            "floor: 3-step workflows, raw psycopg, 8 processes (the 4-tree scale-out's workers)",
            bulk_per_second(db.url, n=bulk, processes=8),
            "workflows/s",
            two,
            "2 processes",
            target="no fall (ours)",
        ),
    ]


if __name__ == "__main__":
    from bench.run import main_for

    main_for(run)
