"""Wake-ups without a queue hop: the worker tree's fast lane hears the event and runs it.

On PostgreSQL, ``send_event`` (and a decision, which is an event) notifies the channel
``workflows_wake`` with the instance's pk, in the transaction that made the instance
runnable (so it arrives exactly when the change is visible), and queues nothing
(``workflows.timers.woken``). Every ``workflows worker`` listens in a thread of its fast
lane process (a supervised child: ``engine.fast_lane_process``). A listener with a free
runner hands it the wake-up at once, and the runner claims and advances the instance on
its own connection (among several trees, the first claim wins; the others find nothing to
claim). No queue row, pusher or worker process is involved. The instance is due
``FAST_LANE_HEAD_START_SECONDS`` later: when no fast lane has claimed it by then (none
runs, or every runner is busy), the dispatcher kicks it through the queue.

On SQLite, where nothing can notify, the listening thread watches the database file for
commits instead (``PRAGMA data_version`` every 5 ms, which costs no I/O) and, after one,
runs the waiting instances that have come due: an event's wake-up is a commit, and no
queue round trip either.

The runners are ``WORKERS`` threads: a burst of events is served in parallel, and a
woken instance with a long step does not hold the lane. The dispatcher offers them the
instances whose timers it finds due (``offer``): a timer then costs no queue round trip.

A step handed out in a fan-out is notified too (``step:<id>``, PostgreSQL), besides its
queued kick: a free runner claims it at once, also while every worker process is busy
(the coordinator with its own steps), where the kick would wait for one of them.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import psycopg
from django.db import close_old_connections, connection, connections

from workflows import clock
from workflows.engine import warm_up
from workflows.engine.control import draining
from workflows.engine.leases import pinned
from workflows.models import Instance
from workflows.states import Status
from workflows.timers import STEP_PAYLOAD, WAKE_CHANNEL

log = logging.getLogger("workflows.worker")

LISTEN_TIMEOUT_SECONDS = 1.0
WATCH_SECONDS = 0.005  # SQLite: how often the file is looked at for a commit


class FastLane(threading.Thread):
    """The listening thread of one worker tree's fast lane process, and its runners."""

    def __init__(self, stop: threading.Event, runners: int) -> None:
        super().__init__(name="workflow-fast-lane", daemon=True)
        self.stop = stop
        self.size = max(1, runners)
        self.runners = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="workflow-fast-lane-run")
        self.free = threading.Semaphore(self.size)

    def warm_up(self) -> None:
        """Ready each runner now (``engine.warm_up``): the first wake-up after a start took
        40 ms more without this (modules, a thread, a database connection, the claim's plan)."""
        everyone = threading.Barrier(self.size)  # one task per runner thread, not two on one

        def ready_runner() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                everyone.wait(timeout=5)
            warm_up.ready()

        for _ in range(self.size):
            self.runners.submit(ready_runner)

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                if connection.vendor == "postgresql":
                    self._listen()
                else:
                    self._watch_file()
            except Exception:  # the dispatcher kicks what we miss: log, reconnect, carry on
                log.warning("fast lane: listening failed; retrying in 1 s", exc_info=True)
                self.stop.wait(1.0)
            finally:
                connections.close_all()

    def finish(self, timeout: float) -> None:
        """Wait (at most ``timeout`` seconds) for the instances being run to hand back."""
        deadline = time.monotonic() + timeout
        self.join(timeout)
        for _ in range(self.size):  # each runner gives its permit back once its instance is handed back
            self.free.acquire(timeout=max(0.0, deadline - time.monotonic()))
        self.runners.shutdown(wait=False, cancel_futures=True)

    def _listen(self) -> None:
        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as listener:
            listener.execute(f"LISTEN {WAKE_CHANNEL}")
            while not self.stop.is_set():
                for note in listener.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1):
                    if draining() or self.stop.is_set():
                        return
                    self._take(note.payload)

    def _watch_file(self) -> None:
        """SQLite: after each commit by anyone, run the waiting instances that have come due."""
        watcher = sqlite3.connect(connection.settings_dict["NAME"], timeout=5)
        try:
            seen = watcher.execute("PRAGMA data_version").fetchone()
            while not self.stop.wait(WATCH_SECONDS):
                version = watcher.execute("PRAGMA data_version").fetchone()
                if version != seen and not draining():
                    seen = version
                    self._run_woken()
        finally:
            watcher.close()

    def _run_woken(self) -> None:
        woken = Instance.objects.filter(pinned(), status=Status.WAITING, wake_at__lte=clock.now())
        for pk in woken.order_by("wake_at").values_list("pk", flat=True)[: self.size]:
            if not self.offer(pk):
                return  # every runner is busy: the dispatcher kicks the rest when they come due

    def _take(self, payload: str) -> None:
        """Run the woken instance, or the handed-out step, if a runner is free (its claim
        says whether it is ours)."""
        from workflows.tasks import advance, run_step

        handed_out = payload.startswith(STEP_PAYLOAD)
        with contextlib.suppress(ValueError):
            pk = int(payload.removeprefix(STEP_PAYLOAD))
            if not self.free.acquire(blocking=False):
                # Every runner is busy: the dispatcher kicks the instance when it comes due;
                # a step's queued kick reaches a worker process.
                return
            self.runners.submit(self._run, run_step if handed_out else advance, pk)

    def offer(self, pk: int) -> bool:
        """Run instance ``pk`` in a free runner now (the dispatcher's due timers); False when all are busy."""
        from workflows.tasks import advance

        if draining() or not self.free.acquire(blocking=False):
            return False
        self.runners.submit(self._run, advance, pk)
        return True

    def _run(self, task: Callable[[int], str], pk: int) -> None:
        """``advance`` an instance or ``run_step`` a handed-out step; not claimed means another
        tree's fast lane or a worker process has it, or there is nothing to do."""
        try:
            task(pk)
        except Exception:  # its due_at (a step: its queued kick) brings someone else to it
            log.exception("fast lane: %s(%s) failed", task.__name__, pk)
        finally:
            self.free.release()
            close_old_connections()
