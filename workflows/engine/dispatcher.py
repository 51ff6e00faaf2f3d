"""The dispatcher: one loop per ``workflows worker`` that kicks whatever has come due.

It is the only poller: indexed queries for the earliest ``due_at`` per tick (timers,
expired leases of dead workers, lost kicks; see ``workflows.timers``) and the earliest
approval reminder or notification retry (``workflows.notifications``), and the claiming
transaction only when something is due. Parked instances cost nothing until then.
Several dispatchers on several machines share the work: each claims due rows with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL (SQLite serialises writers), so a due instance is
kicked once. About once a minute it also prunes finished instances past their retention,
and every few seconds it reports the worker's heartbeat (``/health/``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.db import close_old_connections, connection, connections, transaction

from workflows import bulk, clock, conf, notifications
from workflows.engine.leases import pinned, pinned_sql
from workflows.models import Instance
from workflows.timers import earliest_statement, grace, kick, read_earliest

if TYPE_CHECKING:
    from workflows.engine.fast_lane_process import FastLaneProcess

log = logging.getLogger("workflows.dispatch")

PRUNE_EVERY_SECONDS = 60
BEAT_EVERY_SECONDS = 5
COMPACT_EVERY_SECONDS = 2
SKIPPED_DUE_RETRY_SECONDS = 0.005


def dispatch_due(limit: int = 200, offer: Callable[[int], bool] | None = None) -> int:
    """Kick every instance whose ``due_at`` has come (up to ``limit``); returns how many.

    ``offer(pk)`` (this process's fast lane) may take some of them first: an instance it
    takes is run here at once, after the commit, instead of crossing the queue; the rest
    are kicked. Either way ``due_at`` moved a grace period ahead, the net under both.
    """
    now = clock.now()
    with transaction.atomic():
        due = Instance.objects.filter(pinned(), due_at__lte=now).order_by("due_at").values_list("pk", flat=True)
        if connection.features.has_select_for_update_skip_locked:
            due = due.select_for_update(skip_locked=True)
        pks = list(due[:limit])
        if pks:
            Instance.objects.filter(pk__in=pks).update(due_at=now + grace())
            for pk in pks:
                if offer is None:
                    kick(pk)
                else:
                    transaction.on_commit(functools.partial(_offer_or_kick, offer, pk))
    return len(pks)


def _offer_or_kick(offer: Callable[[int], bool], pk: int) -> None:
    if not offer(pk):
        kick(pk)


def seconds_until_next_due(maximum: float) -> float:
    """How long until an instance, a reminder or a notification has come due (at most
    ``maximum``): one prepared query over every kind of timer, built once."""
    pinned_where, pinned_params = pinned_sql()
    when = read_earliest(*_timers_statement(pinned_where, tuple(pinned_params)))
    if when is None:
        return maximum
    return max(0.0, min(maximum, (when - clock.now()).total_seconds()))


@functools.lru_cache(maxsize=8)
def _timers_statement(pinned_where: str, pinned_params: tuple[str, ...]) -> tuple[str, tuple[Any, ...]]:
    """The earliest-timer SELECT for this process's pinning (the cache's key)."""
    instances = Instance.objects.filter(pinned(), due_at__isnull=False).order_by("due_at").values("due_at")[:1]
    return earliest_statement([instances, *notifications.due_timers(), *bulk.due_timers()])


def run_due(offer: Callable[[int], bool] | None = None) -> int:
    """Everything that has come due: instances to kick, reminders to send, deliveries to retry,
    bulk jobs whose runner died."""
    return dispatch_due(offer=offer) + notifications.run_due() + bulk.restart_due(clock.now())


def run_dispatcher(stop: threading.Event, fast_lane: FastLaneProcess | None = None) -> None:
    """Kick due instances until ``stop`` is set; survives database outages by retrying."""
    from workflows import health, status_counts
    from workflows.retention import prune_finished

    poll = conf.get("POLL_SECONDS")
    next_prune = time.monotonic() + 5
    next_beat = 0.0
    next_compact = 0.0
    started_at = clock.now()
    while not stop.is_set():
        try:
            close_old_connections()
            offer = fast_lane.offer if fast_lane is not None else None
            wait = seconds_until_next_due(poll)
            while wait == 0 and not stop.is_set():
                if not run_due(offer):
                    wait = SKIPPED_DUE_RETRY_SECONDS  # another tree's dispatcher holds what is due
                    break
                wait = seconds_until_next_due(poll)
            if fast_lane is not None:
                fast_lane.keep_alive()
            if time.monotonic() >= next_beat:
                next_beat = time.monotonic() + BEAT_EVERY_SECONDS
                health.beat(started_at, conf.get("WORKERS"))
            if time.monotonic() >= next_compact:
                next_compact = time.monotonic() + COMPACT_EVERY_SECONDS
                status_counts.compact()
            if time.monotonic() >= next_prune:
                next_prune = time.monotonic() + PRUNE_EVERY_SECONDS
                prune_finished()
        except Exception:
            # The loop must outlive a database restart (and any one bad tick): log, reconnect, retry.
            log.exception("dispatcher: tick failed; retrying in 1 s")
            close_all_connections()
            wait = 1.0
        stop.wait(wait)


def close_all_connections() -> None:
    """Drop every connection of this thread (after an outage they may be half-dead)."""
    for conn in connections.all(initialized_only=True):
        try:
            conn.close()
        except Exception:  # a connection that cannot even close is gone anyway
            log.debug("dispatcher: closing a broken connection failed", exc_info=True)
