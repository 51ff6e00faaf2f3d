"""Database work for code on an event loop, run on the thread that owns the connection.

The replay's event loop runs on the calling thread: the worker's thread with its
connection in a worker, the test's thread with its open transaction in a test. Django
refuses ORM calls on a thread whose event loop is running, so a database job runs with
the loop set aside (``_loop_set_aside``) for its duration: it blocks the loop, as it would
block the thread it ran on anyway, and the replay's coroutines wait for the connection in
the order they asked for it. Before this, the loop ran in a helper thread and each job
crossed to the connection's thread and back: two thread hand-offs per database call, a
third of the engine's CPU per step.

A write may also be deferred (``defer``): the caller does not wait for it, and it is
committed together with the next job when that job says it can take it (``absorbs``:
a step's result with the next step's start, one commit instead of two), or before any
other job, or after ``FLUSH_AFTER_SECONDS`` with no job at all. Its error, if any, is
raised to the job after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")

# How long a deferred write may wait for a job to ride along with: the window in which a
# killed worker loses a finished step's result (the step then runs again, as a step that
# was running when the worker died does).
FLUSH_AFTER_SECONDS = 0.002

log = logging.getLogger("workflows.engine")


@dataclass
class Deferred:
    """A write whose caller does not wait for it: ``fn(*args)``, run later on the loop's thread."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]

    def write(self) -> None:
        with _loop_set_aside():
            self.fn(*self.args)


def absorbs(fn: Callable[..., T]) -> Callable[..., T]:
    """Mark a job function that takes the deferred write as ``deferred=`` (and commits it itself)."""
    fn.absorbs_deferred = True  # type: ignore[attr-defined]
    return fn


@contextlib.contextmanager
def _loop_set_aside() -> Iterator[None]:
    """Run synchronous database code on the loop's thread: the loop is not running meanwhile.

    Django's guard against ORM calls inside a coroutine (``async_unsafe``) asks asyncio for
    the thread's running loop. The job does block that loop, deliberately, so for its
    duration the thread says it has none; the loop itself is untouched.
    """
    running = asyncio._get_running_loop()
    if running is None:
        yield
        return
    asyncio._set_running_loop(None)
    try:
        yield
    finally:
        asyncio._set_running_loop(running)


class DatabaseBridge:
    def __init__(self) -> None:
        self._deferred: Deferred | None = None
        self._deferred_error: BaseException | None = None
        self._flush_timer: asyncio.TimerHandle | None = None

    def defer(self, fn: Callable[..., Any], *args: Any) -> None:
        """Queue ``fn(*args)`` without waiting for it (see the module's docstring)."""
        if self._deferred is not None:
            self._flush_quietly(keep_error=True)
        self._deferred = Deferred(fn, args)
        self._flush_timer = asyncio.get_running_loop().call_later(FLUSH_AFTER_SECONDS, self._flush_quietly, True)

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)`` now, on this thread's connection, and return (or raise) its result."""
        if self._deferred_error is not None:
            error, self._deferred_error = self._deferred_error, None
            raise error
        deferred = self._take_deferred()
        with _loop_set_aside():
            if deferred is not None:
                if getattr(fn, "absorbs_deferred", False):
                    return fn(*args, deferred=deferred, **kwargs)
                deferred.write()
            return fn(*args, **kwargs)

    async def settled(self) -> None:
        """Let the branches that are ready run up to their next wait (their database work included)."""
        await asyncio.sleep(0)

    def serve(self, coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
        """Run ``coroutine_factory()`` on this thread's event loop; returns its result."""
        try:
            # The caller may itself be running inside a loop (a notebook, Playwright's sync
            # API): set aside while this blocking call runs ours, as a database job is.
            with _loop_set_aside():
                return _thread_runner().run(_alone(coroutine_factory), context=contextvars.copy_context())
        finally:
            self._flush_quietly()

    def _take_deferred(self) -> Deferred | None:
        deferred, self._deferred = self._deferred, None
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        return deferred

    def _flush_quietly(self, keep_error: bool = False) -> None:
        """Write the deferred write now; its error waits for the next job (or is logged at the end)."""
        deferred = self._take_deferred()
        if deferred is None:
            return
        try:
            deferred.write()
        except BaseException as exc:  # noqa: BLE001 (handed to the next job, or logged)
            if keep_error:
                self._deferred_error = exc
            else:
                log.warning("a deferred write failed after its run ended: %r", exc)


_runners = threading.local()


def _thread_runner() -> asyncio.Runner:
    """This thread's event loop, kept from one claim to the next.

    ``asyncio.run`` builds a loop and tears it down (a selector, a socket pair, their
    file descriptors): 0.35 ms of CPU per call here, against 0.11 ms for a run on a kept
    loop, and every claim of every instance paid it. Each run gets what ``asyncio.run``
    gave it: a fresh copy of the caller's context variables (``serve``) and no task left
    over from the run before (``_alone``).
    """
    runner = getattr(_runners, "runner", None)
    if runner is None:
        # With a loop factory the runner does not make its loop the thread's current one,
        # so code outside the runs sees the thread as it was.
        runner = _runners.runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
    return runner


async def _alone(coroutine_factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine, then cancel what it left on the loop (as ``asyncio.run`` does), so
    no task of one instance's run wakes up in the next one's."""
    try:
        return await coroutine_factory()
    finally:
        current = asyncio.current_task()
        left = [task for task in asyncio.all_tasks() if task is not current]
        for task in left:
            task.cancel()
        if left:
            await asyncio.gather(*left, return_exceptions=True)
