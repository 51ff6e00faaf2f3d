"""Where plain-function code runs: step callbacks and ``def run`` methods, off the event loop.

They run in a thread pool so they can use the ORM (Django refuses it on a thread running an
event loop) and so several steps of one instance can run at once (fan-out with gather).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.db import close_old_connections, transaction

callback_pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="workflow-step")


def call_in_thread(fn: Callable, args: tuple) -> Any:
    """Call ``fn`` in a pool thread, closing the thread's connection if it went stale meanwhile."""
    try:
        return fn(*args)
    finally:
        close_old_connections()


def in_savepoint(fn: Callable, *args: Any) -> Any:
    """Call ``fn`` inside a savepoint, so a failing SQL statement does not abort the caller's transaction."""
    with transaction.atomic():
        return fn(*args)
