"""The runnable backlog: a worker that has finished its instance takes the next one itself.

A kick ("advance instance N", ``workflows.timers.kick``) is a signal that there is work,
not a ticket for one instance: the worker that receives it advances N, then keeps taking
the oldest runnable instances (queued, or waiting and due) from ``wf_instance`` until there
are none, for at most ``WORKFLOWS["BACKLOG_SECONDS"]``. So a burst of new instances costs a
handful of queue round trips instead of one each (``create_batch`` sends a few kicks, not
one per instance), and the kicks that arrive for instances already taken cost one claim
that matches nothing.

On PostgreSQL each claim is one statement that takes the oldest runnable instance no other
worker is taking at that moment (``FOR UPDATE SKIP LOCKED``), so several workers, on
several machines, never queue up behind each other's claims. On SQLite, whose writers
queue up anyway, a worker reads a few candidates and claims each with the per-instance
compare-and-set of ``engine.leases.claim``, in its own shuffled order. Instances whose worker died
are left to the dispatcher (it counts the crash and kicks them); a worker that is stopping
takes nothing more.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

from django.db import connection

from workflows import clock, conf
from workflows.engine.control import RunOutcome, draining
from workflows.engine.leases import pinned
from workflows.models import Instance
from workflows.states import Status
from workflows.timers import kick

CANDIDATES = 16  # read at once; another worker may take some of them first


def runnable(limit: int | None = None) -> list[int]:
    """The oldest instances with work a worker may take now (a dead worker's excepted)."""
    now = clock.now()
    return list(
        Instance.objects.filter(pinned(), status__in=[Status.QUEUED, Status.WAITING], wake_at__lte=now)
        .order_by("wake_at")
        .values_list("pk", flat=True)[: limit or CANDIDATES]
    )


def work_through(advance: Callable[[int | None], str], budget: float | None = None) -> int:
    """Advance runnable instances until none is left, the budget is spent or the worker stops.

    Returns how many this worker claimed. When the budget runs out with work left, one kick
    is sent so that another task (maybe on another worker) carries on at once.
    """
    budget = conf.get("BACKLOG_SECONDS") if budget is None else budget
    deadline = time.monotonic() + budget
    if connection.features.has_select_for_update_skip_locked:
        return _claim_in_turn(advance, deadline)
    return _try_candidates(advance, deadline)


def _claim_in_turn(advance: Callable[[int | None], str], deadline: float) -> int:
    """PostgreSQL: each claim takes the oldest runnable instance nobody else is taking."""
    claimed = 0
    while not draining():
        if time.monotonic() >= deadline:
            _pass_on()
            return claimed
        if advance(None) == RunOutcome.NOT_CLAIMED:
            return claimed
        claimed += 1
    return claimed


def _pass_on() -> None:
    """One kick for the rest (it is another task's now, maybe another worker's)."""
    rest = runnable(1)
    if rest:
        kick(rest[0])


def _try_candidates(advance: Callable[[int | None], str], deadline: float) -> int:
    """SQLite (writers queue up anyway): read a few candidates, claim each in turn."""
    claimed = 0
    while not draining():
        candidates = runnable()
        if not candidates:
            return claimed
        # Workers reading the backlog at the same moment would all try the oldest first;
        # in a shuffled order they mostly take different ones (still among the oldest).
        random.shuffle(candidates)
        for pk in candidates:
            if time.monotonic() >= deadline or draining():
                kick(pk)  # the rest is another task's (maybe another worker's)
                return claimed
            if advance(pk) != RunOutcome.NOT_CLAIMED:
                claimed += 1
    return claimed
