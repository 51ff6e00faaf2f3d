"""The fast lane runs in a child process of its own, supervised by the worker tree's main process.

User code must never run in the process that supervises everything else: a step that
segfaults, is OOM-killed or calls ``os._exit`` would take the dispatcher and the
django-q2 cluster down with it. So the fast lane (``engine.fast_lane``: the LISTEN thread
and its runners) lives in a spawned child. The dispatcher hands it due instances through
a queue (``offer``); the child runs each in a free runner or kicks it through the queue.
When the child dies, the dispatcher's next tick starts a new one (``keep_alive``); what it
was running is recovered like any dead worker's instance, its crash counted.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import queue
import signal
from multiprocessing.synchronize import Event as ProcessEvent
from typing import Any

log = logging.getLogger("workflows.worker")

_spawn = multiprocessing.get_context("spawn")


class FastLaneProcess:
    """The main process's handle on the fast-lane child."""

    def __init__(self, runners: int) -> None:
        self.runners = runners
        self.process: Any = None
        self.offers: Any = None
        self.stop_event: ProcessEvent = _spawn.Event()

    def start(self) -> None:
        # A new queue per child: one killed while reading may leave the old one's lock held.
        self.offers = _spawn.Queue()
        self.process = _spawn.Process(
            target=serve, args=(self.offers, self.stop_event, self.runners), name="workflows-fast-lane", daemon=True
        )
        self.process.start()

    def keep_alive(self) -> None:
        """Start a new child if the last one died (called by the dispatcher every tick)."""
        if self.process is not None and not self.process.is_alive() and not self.stop_event.is_set():
            log.warning("fast lane: process exited with %s; starting a new one", self.process.exitcode)
            self.start()

    def offer(self, pk: int) -> bool:
        """Hand a due instance to the child (it runs it or kicks it); False when the child is gone."""
        if self.process is None or not self.process.is_alive():
            return False
        self.offers.put(pk)
        return True

    def stopping(self) -> None:
        """The tree is shutting down: no new child from now on."""
        self.stop_event.set()

    def stop(self, timeout: float) -> None:
        """Ask the child to hand back what it runs and exit; wait at most ``timeout`` seconds."""
        if self.process is None:
            return
        self.stop_event.set()
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()


def serve(offers: Any, stop: ProcessEvent, runners: int) -> None:
    """The child: the LISTEN thread and the runners, and the dispatcher's offers."""
    import threading

    import django

    django.setup()
    from workflows.engine import control
    from workflows.engine.fast_lane import FastLane
    from workflows.timers import kick

    control.DRAIN_FLAG = _spawn.RawValue("b", 0)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when we stop
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    lane_stop = threading.Event()
    lane = FastLane(lane_stop, runners)
    lane.warm_up()
    lane.start()
    while not stop.is_set():
        with contextlib.suppress(queue.Empty):
            pk = offers.get(timeout=0.2)
            if not lane.offer(pk):
                kick(pk)
    control.DRAIN_FLAG.value = 1  # running instances hand back at their next step boundary
    lane_stop.set()
    from workflows import conf

    lane.finish(conf.get("SHUTDOWN_GRACE_SECONDS"))
