"""Run every benchmark and print one table per database.

    python -m bench.run                 # PostgreSQL (BENCH_PG_URL) and SQLite
    python -m bench.run --db postgres   # one database
    python -m bench.run --quick         # smaller sizes, for a quick look
    python -m bench.run --broker redis  # kicks through django-q2's Redis broker

Numbers are medians or percentiles of this run; the baselines are measured in the same run.
"""

from __future__ import annotations

import argparse
import importlib
import os
import platform
import sys
import time

FIGURES = ["step_overhead", "linearity", "memory", "throughput", "wakeups", "fanout", "scaleout", "floors"]
QUICK = {
    "linearity": {"sizes": (100, 1000)},
    "memory": {"instances": 10, "steps": 200},
    "throughput": {"n": 200},
    "wakeups": {"events": 15, "timers": 15},
    "scaleout": {"n": 100},
    "floors": {"wakes": 15, "bulk": 1000},
}


def run_on(kind: str, figures: list[str], quick: bool) -> str:
    from bench.common import Database, table

    db = Database(kind)
    db.setup_django()
    rows = []
    try:
        for name in figures:
            module = importlib.import_module(f"bench.{name}")
            started = time.time()
            try:
                rows += module.run(db, **(QUICK.get(name, {}) if quick else {}))
            except Exception as exc:  # noqa: BLE001 (one broken figure must not hide the others)
                from bench.common import Row

                rows.append(Row(name, None, "", note=f"failed: {type(exc).__name__}: {exc}"))
            print(f"  {name}: {time.time() - started:.0f} s", file=sys.stderr)
    finally:
        db.drop()
    if any(row.peer_key for row in rows):
        from bench import dbos_peer

        started = time.time()
        peer = dbos_peer.measure(kind, quick)
        print(f"  dbos: {time.time() - started:.0f} s", file=sys.stderr)
        for row in rows:
            if row.peer_key:
                row.peer = dbos_peer.label(peer, row.peer_key, row.unit)
    broker = os.environ.get("WORKFLOWS_BROKER", "database")
    return table(
        rows,
        f"{'PostgreSQL' if kind == 'postgres' else 'SQLite'} ({platform.python_version()}, 2 worker processes, "
        f"kicks through the {broker} queue)",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["postgres", "sqlite", "both"], default="both")
    parser.add_argument("--only", nargs="*", choices=FIGURES, default=FIGURES)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--broker", choices=["database", "redis"], default="database", help="where kicks travel (WORKFLOWS_BROKER)"
    )
    args = parser.parse_args()
    os.environ["WORKFLOWS_BROKER"] = args.broker  # this process's and its workers' settings
    os.environ.setdefault("WORKFLOWS_QUEUE_NAME", f"wfbench-{os.getpid()}")
    kinds = ["postgres", "sqlite"] if args.db == "both" else [args.db]
    # Each database needs its own Django setup, so each runs in a fresh interpreter.
    if len(kinds) > 1:
        import subprocess

        for kind in kinds:
            subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "bench.run",
                    "--db",
                    kind,
                    "--only",
                    *args.only,
                    *(["--quick"] if args.quick else []),
                    "--broker",
                    args.broker,
                ],
                check=False,
            )
        return
    print(run_on(kinds[0], args.only, args.quick))
    print()


def main_for(run) -> None:
    """Let a single benchmark module run on its own: python -m bench.<name> [--db sqlite]."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    args = parser.parse_args()
    from bench.common import Database, table

    db = Database(args.db)
    db.setup_django()
    try:
        print(table(run(db), args.db))
    finally:
        db.drop()


if __name__ == "__main__":
    main()
