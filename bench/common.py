"""What every benchmark shares: a fresh database, Django, worker processes, a results table.

Each run creates its own database (PostgreSQL ``wfbench_<random>`` on DATABASE_URL's server,
or a SQLite file), migrates it, and drops it at the end, so numbers never depend on what a
previous run left behind.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_BASE = os.environ.get("BENCH_PG_URL", "postgres://postgres@127.0.0.1:5432")


@dataclass
class Row:
    figure: str
    value: float | None
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None
    note: str = ""
    baseline_unit: str | None = None  # when the baseline is not in the figure's unit (no ratio then)
    peer: str = ""  # the same figure for DBOS, measured in the same run (bench/dbos_peer.py)
    peer_key: str = ""  # which of dbos_peer's figures that is


class Database:
    """A throwaway database for one run, and Django set up against it."""

    def __init__(self, kind: str):
        self.kind = kind
        self.name = f"wfbench_{uuid.uuid4().hex[:8]}"
        self.tmp = tempfile.mkdtemp(prefix="wfbench-")
        if kind == "postgres":
            import psycopg

            with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = f"{PG_BASE}/{self.name}"
        else:
            self.url = f"sqlite:///{self.tmp}/bench.sqlite3"

    def setup_django(self):
        os.environ["DATABASE_URL"] = self.url
        os.environ["DJANGO_SETTINGS_MODULE"] = "bench.settings"
        os.environ["WORKFLOWS_BUCKET_DIR"] = f"{self.tmp}/bucket"
        sys.path.insert(0, str(ROOT))
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)

    def drop(self):
        from django.db import connections

        connections.close_all()
        if self.kind == "postgres":
            import psycopg

            with psycopg.connect(f"{PG_BASE}/postgres", autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class Workers:
    """`manage.py workflows worker` processes against the benchmark database."""

    def __init__(self, db: Database, processes: int = 2, trees: int = 1):
        self.db = db
        self.processes = processes
        self.trees = trees  # separate `workflows worker` process trees, as on separate machines
        self.procs = []

    def __enter__(self):
        env = {
            **os.environ,
            "DATABASE_URL": self.db.url,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "WORKFLOWS_WORKERS": str(self.processes),
            "PYTHONUNBUFFERED": "1",
        }
        log = open(Path(self.db.tmp) / "worker.log", "ab")
        for _ in range(self.trees):
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, "manage.py", "workflows", "worker"],
                    cwd=ROOT,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        self.settle()
        return self

    def settle(self, quiet_cpu_seconds: float = 0.05, timeout: float = 60) -> None:
        """Wait until every process of the trees has started and gone idle.

        A tree's processes import the project after they fork: about a second of CPU each,
        so 4 trees on 2 cores are busy starting for several seconds. A fixed sleep left
        that inside the measured window of the bigger configurations.
        """
        import psutil

        time.sleep(1)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            before = self._cpu_seconds(psutil)
            time.sleep(0.5)
            if self._cpu_seconds(psutil) - before < quiet_cpu_seconds:
                return

    def _cpu_seconds(self, psutil) -> float:
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                times = psutil.Process(pid).cpu_times()
                total += times.user + times.system
        return total

    def pids(self) -> list[int]:
        """Every process of the worker trees (for memory readings)."""
        found = []
        for proc in self.procs:
            pending = [proc.pid]
            while pending:
                pid = pending.pop()
                found.append(pid)
                with contextlib.suppress(OSError):
                    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
                        pending.append(int(child))
        return found

    def __exit__(self, *exc):
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)


# How often a benchmark that reads the instances' own timestamps looks whether they are
# done: a 10 ms poll was a tenth of a core on these 2, taken from the workers it measures.
OBSERVER_INTERVAL = 0.1


def last_ended(instances) -> float:
    """When the last of these instances ended (epoch seconds), from their own rows."""
    from django.db.models import Max

    return instances.aggregate(last=Max("ended_at"))["last"].timestamp()


def busy_cores(before, after) -> float:
    """How many of the machine's cores were busy between two ``psutil.cpu_times()``."""
    import psutil

    total = sum(after) - sum(before)
    idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
    return psutil.cpu_count() * (total - idle) / total if total else 0.0


def wait_until(predicate, timeout: float, what: str, interval: float = 0.01):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


def percentile(values, p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def median(values) -> float:
    return statistics.median(values)


def raw_commit_ms(n: int = 500) -> float:
    """Baseline: one small row per autocommitted INSERT, sequentially, on Django's connection."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY, v TEXT)")
        cursor.execute("DELETE FROM bench_raw")
        started = time.perf_counter()
        for i in range(n):
            cursor.execute("INSERT INTO bench_raw (id, v) VALUES (%s, %s)", [i, "x"])
        elapsed = time.perf_counter() - started
    return 1000 * elapsed / n


def fmt(v: float | None) -> str:
    """A figure as the tables print it: three decimals under 10, one above."""
    if v is None:
        return "–"
    return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"


def table(rows: list[Row], title: str) -> str:
    lines = [
        f"## {title}",
        "",
        "| figure | project | baseline (same run) | ratio | DBOS (same run) | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = f"{r.value / r.baseline:.2f}×" if r.value and r.baseline and r.baseline_unit is None else "–"
        unit = r.unit if r.baseline_unit is None else r.baseline_unit
        base = f"{fmt(r.baseline)} {unit} ({r.baseline_label})" if r.baseline is not None else (r.baseline_label or "–")
        met = {True: "yes", False: "**no**", None: "–"}[r.met]
        note = f" — {r.note}" if r.note else ""
        peer = r.peer or "–"
        lines.append(f"| {r.figure} | {fmt(r.value)} {r.unit}{note} | {base} | {ratio} | {peer} | {r.target} | {met} |")
    return "\n".join(lines)
