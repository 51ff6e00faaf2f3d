"""Wake-ups without a queue hop: the worker tree's own process hears the event and runs it.

On PostgreSQL, ``send_event`` (and a decision, which is an event) notifies the channel
``workflows_wake`` with the instance's pk (``workflows.timers.wake``), in the transaction that made it runnable, so
the notification arrives exactly when the change is visible. Every ``workflows worker``
listens on that channel in a thread of its main process and advances the instance at once,
on its own connection, instead of waiting for django-q2's pusher to hand a task to a worker
process (about half the latency of a wake-up; see bench/README.md).

The ordinary kick is still sent: when this thread is busy (one instance at a time) or no
worker listens, a worker process takes the instance through the queue, and the claim makes
sure only one of them runs it. Several trees all hear the notification; one claim wins.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import psycopg
from django.db import connection, connections

from workflows.engine.control import draining
from workflows.timers import WAKE_CHANNEL

log = logging.getLogger("workflows.worker")

LISTEN_TIMEOUT_SECONDS = 1.0


class FastLane(threading.Thread):
    """The listening thread of one worker tree's main process."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__(name="workflow-fast-lane", daemon=True)
        self.stop = stop

    def run(self) -> None:
        if connection.vendor != "postgresql":
            return
        while not self.stop.is_set():
            try:
                self._listen()
            except Exception:  # the queue still carries every kick: log, reconnect, carry on
                log.warning("fast lane: listening failed; retrying in 1 s", exc_info=True)
                self.stop.wait(1.0)
            finally:
                connections.close_all()

    def _listen(self) -> None:
        from workflows.tasks import advance

        with psycopg.connect(**connection.get_connection_params(), autocommit=True) as listener:
            listener.execute(f"LISTEN {WAKE_CHANNEL}")
            while not self.stop.is_set():
                for note in listener.notifies(timeout=LISTEN_TIMEOUT_SECONDS, stop_after=1):
                    if draining() or self.stop.is_set():
                        return
                    with contextlib.suppress(ValueError):
                        advance(int(note.payload))
