"""The runnable backlog: a worker that has finished its instance takes the next one itself.

A kick ("advance instance N", ``workflows.timers.kick``) is a signal that there is work,
not a ticket for one instance: the worker that receives it advances N, then keeps taking
the oldest runnable instances (queued, or waiting and due) from ``wf_instance`` until there
are none, for at most ``WORKFLOWS["BACKLOG_SECONDS"]``. So a burst of new instances costs a
handful of queue round trips instead of one each (``create_batch`` sends a few kicks, not
one per instance), and the kicks that arrive for instances already taken cost one claim
that matches nothing.

Claims stay the per-instance compare-and-set of ``engine.leases.claim``: two workers that
pick the same candidate both try, one wins, the other moves on (each tries the oldest
candidates in its own shuffled order, so they seldom collide). Instances whose worker died
are left to the dispatcher (it counts the crash and kicks them); a worker that is stopping
takes nothing more.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable

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


def work_through(advance: Callable[[int], str], budget: float | None = None) -> int:
    """Advance runnable instances until none is left, the budget is spent or the worker stops.

    Returns how many this worker claimed. When the budget runs out with work left, one kick
    is sent so that another task (maybe on another worker) carries on at once.
    """
    budget = conf.get("BACKLOG_SECONDS") if budget is None else budget
    deadline = time.monotonic() + budget
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
