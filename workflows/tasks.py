"""The django-q2 tasks: "advance instance N", "run handed-out step N", "deliver notification N".

A kick may be duplicated, late or lost (``workflows.timers``); each task claims what it
works on first, so a duplicate finds nothing to do and returns "not claimed".
"""

from __future__ import annotations

import logging

from workflows import clock, conf
from workflows.engine.backlog import work_through
from workflows.engine.bridge import DatabaseBridge
from workflows.engine.control import RunOutcome
from workflows.engine.leases import claim, claim_step, heartbeat
from workflows.engine.parking import fail_crash_loop
from workflows.engine.remote import RemoteRun
from workflows.engine.replay import InstanceRun

log = logging.getLogger("workflows.engine")


def advance(pk: int | None, *, renew_leases: bool = True, inline_callbacks: bool = False) -> str:
    """Claim instance ``pk`` and run it as far as it can go now. Safe to call for any pk, any time.

    ``pk`` None (PostgreSQL): the oldest runnable instance no other worker is claiming.

    ``inline_callbacks`` runs plain-function step callbacks on the calling thread, so they
    share its database connection and transaction (in-process test runs); steps then run
    one at a time, and a timed-out callback is waited for before its result is discarded.

    Returns what happened (a ``RunOutcome``).
    """
    now = clock.now()
    claimed = claim(pk, now)
    if claimed is None:
        return RunOutcome.NOT_CLAIMED
    crashes = claimed.instance.worker_crashes
    if crashes > conf.get("MAX_WORKER_CRASHES"):
        fail_crash_loop(claimed.lease, crashes, now, workflow=claimed.instance.workflow_name)
        log.error("%s: errored after %d worker crashes", claimed.instance, crashes)
        return RunOutcome.ERRORED
    bridge = DatabaseBridge()
    run = InstanceRun(claimed, bridge, inline_callbacks=inline_callbacks)
    if renew_leases:
        heartbeat.track(claimed.lease)
    try:
        return bridge.serve(run.main)
    finally:
        if renew_leases:
            heartbeat.untrack(claimed.lease)


def kicked(pk: int) -> str:
    """The task behind a kick: advance instance ``pk``, then whatever else is runnable
    (``engine.backlog``). Returns what happened to ``pk``."""
    outcome = advance(pk)
    work_through(advance)
    return outcome


def run_step(step_id: int) -> str:
    """Run one handed-out step for its instance (fan-out). Safe to call for any id, any time."""
    claimed = claim_step(step_id, clock.now(), batch=conf.get("LOCAL_STEP_CONCURRENCY"))
    if claimed is None:
        return RunOutcome.NOT_CLAIMED
    lease, claim_of_steps, keys = claimed
    bridge = DatabaseBridge()
    run = RemoteRun(claim_of_steps, bridge, keys)
    heartbeat.track(lease)
    try:
        return bridge.serve(run.main)
    finally:
        heartbeat.untrack(lease)


def deliver_notification(notification_pk: int) -> str:
    """Send one approval notification (one attempt; see ``workflows.notifications``)."""
    from workflows.notifications import deliver

    return deliver(notification_pk)


def run_bulk_job(job_id: int) -> str:
    """Run a bulk job to its end (see ``workflows.bulk``)."""
    from workflows.bulk import run

    return run(job_id)
