"""django-q2's ORM broker, woken at once on PostgreSQL instead of polling.

``enqueue`` sends ``NOTIFY workflows_kick`` in the same transaction as the queue row, so the
notification is delivered exactly when the task becomes visible (at commit) and dropped
with it on rollback. ``dequeue`` claims like the ORM broker; when the queue is empty it
waits on ``LISTEN workflows_kick`` (a dedicated autocommit connection, opened lazily in
the pusher process after the fork) rather than sleeping, with a timeout as a safety net
for a missed notification. On SQLite, where nothing can notify, it watches the database
file for commits (``PRAGMA data_version``, every 5 ms) and looks at the queue only when
something was committed.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from time import sleep
from typing import Any

import psycopg
from django.db import connection
from django.utils import timezone
from django_q.brokers.orm import ORM
from django_q.conf import Conf

log = logging.getLogger("workflows.broker")
CHANNEL = "workflows_kick"
WAIT_SECONDS = 1.0
SQLITE_WATCH_SECONDS = 0.005


class NotifyingORM(ORM):
    def __init__(self, list_key: str | None = None) -> None:
        super().__init__(list_key)
        self._listener: psycopg.Connection[Any] | None = None
        self._watcher: sqlite3.Connection | None = None

    def enqueue(self, task: str) -> int:
        pk = super().enqueue(task)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, '')", [CHANNEL])
        return pk

    def dequeue(self) -> list[tuple[int, str]] | None:
        claimed = self._claim()
        if claimed:
            return claimed
        if connection.vendor == "sqlite":
            self._wait_for_a_commit(WAIT_SECONDS)
        elif not self._wait_for_notification(WAIT_SECONDS):
            sleep(Conf.POLL)
        return None

    def _wait_for_a_commit(self, timeout: float) -> bool:
        """SQLite: return once another connection has committed (a kick may have come), or after
        ``timeout``. ``PRAGMA data_version`` changes on such a commit and costs no I/O, so it is
        read every few milliseconds on a connection of its own, instead of querying the queue."""
        try:
            if self._watcher is None:
                self._watcher = sqlite3.connect(connection.settings_dict["NAME"], timeout=5)
            start = self._watcher.execute("PRAGMA data_version").fetchone()
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                sleep(SQLITE_WATCH_SECONDS)
                if self._watcher.execute("PRAGMA data_version").fetchone() != start:
                    return True
        except sqlite3.Error:
            log.warning("broker: watching the SQLite file failed; polling", exc_info=True)
            self._watcher = None
            sleep(Conf.POLL)
        return False

    def _claim(self) -> list[tuple[int, str]]:
        """The ORM broker's claim: a compare-and-set on ``lock`` per row (another cluster may win)."""
        rows = self.get_connection().filter(key=self.list_key, lock__lt=timezone.now())[: Conf.BULK]
        claimed: list[tuple[int, str]] = []
        for row in rows:
            if self.get_connection().filter(id=row.id, lock=row.lock).update(lock=self.timeout(row)):
                claimed.append((row.pk, row.payload))
        return claimed

    def _wait_for_notification(self, timeout: float) -> bool:
        try:
            if self._listener is None or self._listener.closed:
                self._listener = psycopg.connect(**connection.get_connection_params(), autocommit=True)
                self._listener.execute(f"LISTEN {CHANNEL}")
            for _ in self._listener.notifies(timeout=timeout, stop_after=1):
                pass
            return True
        except psycopg.Error:
            log.warning("broker: LISTEN connection failed; polling until it is back", exc_info=True)
            if self._listener is not None:
                with contextlib.suppress(psycopg.Error):
                    self._listener.close()  # already broken: closing it is best effort
            self._listener = None
            return False
