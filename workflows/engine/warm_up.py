"""Readying a newly started worker process before its first instance arrives.

A worker process's first instance took 70-100 ms to start its first step, against about
10 ms for the next one: the engine's modules were imported, the database connection was
opened, and a new PostgreSQL backend loaded the catalog entries of the tables and indexes
that the claim touches and planned it, all while the instance waited. After a deploy or a
restart every worker pays that once; in a fan-out the coordinator and the worker it hands
steps to both paid it inside the measured wall time.

``ready()`` does that work up front in each django-q2 worker process (django-q2's
``post_spawn`` signal, connected by ``engine.worker``) and in each fast-lane runner. It
claims nothing: the claims it runs ask for pk 0, which no row has, and write nothing.
A database that is down at that moment is not an error here, and nothing the warm-up
meets may stop a worker from starting: the first real claim connects, as it did before.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import Error as DatabaseFailure
from django.db import connection

log = logging.getLogger("workflows.worker")

NO_ROW = 0  # primary keys start at 1


def ready(**_signal: Any) -> None:
    """Import the engine, open this thread's connection and prime the claims (PostgreSQL)."""
    import workflows.engine.fanout  # noqa: F401  (imported on an instance's first gather otherwise)
    import workflows.engine.remote  # noqa: F401
    import workflows.tasks  # noqa: F401
    from workflows import clock
    from workflows.engine.leases import claim, claim_step

    try:
        connection.ensure_connection()
        if connection.vendor == "postgresql":
            now = clock.now()
            claim(NO_ROW, now)
            claim_step(NO_ROW, now)
    except DatabaseFailure:
        log.info("worker: warm-up skipped; the database is not reachable yet", exc_info=True)
    except Exception:  # a signal receiver's error would stop the worker process from starting
        log.warning("worker: warm-up failed; the first claim will do its work", exc_info=True)
